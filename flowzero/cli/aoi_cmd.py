"""`flowzero convert-shp`: shapefile AOIs (any CRS with a .prj) as WGS84 GeoJSON files."""

from __future__ import annotations

from pathlib import Path

import click

from flowzero.cli.output import emit_json, json_option, print_table
from flowzero.errors import UsageError


@click.command("convert-shp")
@click.option("--shp", "shp_path", required=True, metavar="PATH",
              type=click.Path(exists=True, path_type=Path),
              help="A .shp file, or a folder whose .shp files are all converted.")
@click.option("--output", "output_dir", default="./geojsons", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path), help="Folder for the .geojson files.")
@json_option
def convert_shp(shp_path: Path, output_dir: Path, as_json: bool) -> None:
    """Convert shapefiles to WGS84 GeoJSON (one Feature per record, attributes kept).

    The .prj is honoured (e.g. California Teale Albers); a shapefile without one is taken as WGS84 with a
    warning. Each polygon is validated, so a file that converts is one that `submit` accepts.
    """
    from flowzero.aoi import convert_shapefile

    if shp_path.is_dir():
        sources = sorted(p for p in shp_path.iterdir() if p.suffix.lower() == ".shp")
        if not sources:
            raise UsageError(f"no .shp files in {shp_path}")
    else:
        sources = [shp_path]
    results = [convert_shapefile(source, output_dir) for source in sources]
    if as_json:
        emit_json([{"source": str(r.source), "output": str(r.output), "aoi_name": r.aoi_name,
                    "features": r.features, "area_sqkm": r.area_sqkm} for r in results])
        return
    print_table("Converted shapefiles", ["source", "output", "AOI name", "features", "area km²"],
                [(r.source, r.output, r.aoi_name, r.features, f"{r.area_sqkm:.4f}") for r in results])


def register(cli: click.Group) -> None:
    cli.add_command(convert_shp)
