"""`flowzero generate-aoi`: a local map page to draw AOIs and save them as WGS84 GeoJSON files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flowzero.cli.context import AppContext
from flowzero.cli.serving import serve_in_foreground
from flowzero.errors import UsageError

DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"  # = flowzero.webaoi.DEFAULT_TILES


def _tiles(value: str) -> str:
    if value.lower() in ("", "none", "off"):
        return ""
    if not value.startswith(("http://", "https://")) or not all(p in value for p in ("{z}", "{x}", "{y}")):
        raise UsageError(f"--tiles {value!r} is not a tile URL template",
                         hint="give http(s)://.../{z}/{x}/{y}.png, or 'none' for a plain background")
    return value


@click.command("generate-aoi")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--output", "output_dir", default="./geojsons", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path), help="Folder the AOIs are saved in.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser; just print the address.")
@click.option("--tiles", default=DEFAULT_TILES, show_default=True, metavar="URL|none",
              help="Background map tiles; 'none' for a plain background with a lon/lat grid.")
@click.pass_obj
def generate_aoi(app: AppContext, port: int, output_dir: Path, no_browser: bool, tiles: str) -> None:
    """Draw AOIs on a map in your browser and save them as GeoJSON (until Ctrl-C).

    Draw a polygon or rectangle, see its area in km², name it and save it as NAME.geojson in --output
    (WGS84; an existing name is only replaced after you confirm). The page works offline: without map
    tiles it shows a plain background with a longitude/latitude grid.
    """
    from flowzero.webaoi import AoiEditor

    editor = AoiEditor(output_dir, port=port, tiles=_tiles(tiles))

    def announce() -> None:
        click.echo(f"AOI editor at {editor.url} (saving to {output_dir.resolve()})")
        click.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()
        if not no_browser:
            import webbrowser

            if not webbrowser.open(editor.url):
                click.echo(f"No browser could be opened: visit {editor.url}", err=True)

    serve_in_foreground(editor, port, announce)
    saved = len(editor.folder.list())
    if not app or not app.quiet:
        click.echo(f"AOI editor stopped; {saved} AOI file(s) in {output_dir}.", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(generate_aoi)
