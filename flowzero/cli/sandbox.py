"""`flowzero sandbox serve`: run the local Planet-compatible server in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from flowzero.cli.context import AppContext
from flowzero.cli.serving import serve_in_foreground

DEFAULT_DATA_DIR = "~/.flowzero/sandbox"


def _make_private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents 0700 whatever the umask: the default one is inside
    ~/.flowzero, where the order database lives. Existing folders are left as they are."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for part in reversed(missing):
        try:
            part.mkdir(mode=0o700)
            os.chmod(part, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return  # the sandbox reports an unusable folder itself


@click.group("sandbox")
def sandbox_group() -> None:
    """A local Planet-compatible server for trying flowzero offline, tests and benchmarks."""


@sandbox_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=DEFAULT_DATA_DIR, show_default=True,
              help="Where orders and generated files are kept (reused across restarts).")
@click.option("--file-size", type=click.IntRange(min=8), default=256 * 1024, show_default=True,
              help="Bytes of each delivered image (analytic scene or basemap quad).")
@click.option("--polls-per-state", type=click.IntRange(min=0), default=1, show_default=True,
              help="Order GETs per state step (queued -> running -> final); 0 finishes on the first GET.")
@click.option("--amazon-s3-endpoint", metavar="URL", default=None,
              help="S3 endpoint that stands in for Amazon S3 in amazon_s3 cloud deliveries (AWS is never "
                   "contacted; without it such orders are refused).")
@click.pass_obj
def serve(app: AppContext, port: int, data_dir: str, file_size: int, polls_per_state: int,
          amazon_s3_endpoint: str | None) -> None:
    """Serve the Planet Data, Orders and Basemaps APIs on 127.0.0.1 until Ctrl-C.

    Any API key works except "invalid-key". The lines printed tell flowzero (or Planet's own CLI) where to go.
    """
    from flowzero.sandbox import Sandbox

    folder = Path(os.path.expanduser(data_dir))
    _make_private_folders(folder)
    sandbox = Sandbox(folder, port=port, file_size=file_size, polls_per_state=polls_per_state,
                      amazon_s3_endpoint=amazon_s3_endpoint)

    def announce() -> None:
        for line in (
            f"Planet sandbox listening on {sandbox.url} (data in {folder})",
            f"export FLOWZERO_PLANET_API_URL={sandbox.api_url}",
            f"export FLOWZERO_PLANET_ORDERS_URL={sandbox.orders_url}",
            f"export FLOWZERO_PLANET_BASEMAPS_URL={sandbox.basemaps_url}",
            "export PL_API_KEY=sandbox   # any key except 'invalid-key'",
            f"# Planet's CLI: planet orders --base-url {sandbox.url}/compute/ops ...",
            "Press Ctrl-C to stop.",
        ):
            click.echo(line)
        sys.stdout.flush()

    serve_in_foreground(sandbox, port, announce)
    click.echo("Sandbox stopped.", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(sandbox_group)
