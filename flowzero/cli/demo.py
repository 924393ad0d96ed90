"""`flowzero demo`: a newcomer's first command. The whole flow offline, then what it did and where things are."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flowzero.cli.context import AppContext
from flowzero.cli.db import list_orders
from flowzero.cli.ordering import show_submit
from flowzero.cli.output import info

if TYPE_CHECKING:
    from flowzero.demo import DemoRun


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 1024 / 1024:,.1f} MiB"


def _print_tree(root: str, files: list[tuple[str, int]]) -> None:
    """The delivered files as a tree with sizes (rich; plain text when not a terminal)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(escape(root + "/"))
    branches: dict[tuple[str, ...], Tree] = {(): tree}
    for relative, size in files:
        parts = tuple(relative.split("/"))
        for depth in range(1, len(parts)):
            key = parts[:depth]
            if key not in branches:
                branches[key] = branches[parts[:depth - 1]].add(escape(parts[depth - 1]) + "/")
        branches[parts[:-1]].add(f"{escape(parts[-1])}  [dim]{_size(size)}[/dim]")
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(tree)


def _outcome_lines(run: DemoRun) -> list[str]:
    lines = []
    for o in run.outcomes:
        fresh = len(o.files) - o.skipped
        detail = f"{fresh} file(s) downloaded, {o.skipped} already present and verified"
        if o.failed_files:
            detail += f", {len(o.failed_files)} FAILED ({o.failed_files[0]['file']}: {o.failed_files[0]['error']})"
        lines.append(f"order {o.order_id}: {o.state}, {o.category}: {detail}")
    return lines


def _summary(run: DemoRun, shown: dict[str, str]) -> list[str]:
    images = [(f, s) for f, s in run.files if f.endswith((".tif", ".tiff"))]
    fresh = sum(len(o.files) - o.skipped for o in run.outcomes)
    present = sum(o.skipped for o in run.outcomes)
    kept = len(run.orders) - len(run.new_orders)
    ordered = (f"{len(run.new_orders)} order(s) placed" if run.new_orders
               else f"nothing new ordered ({kept} order(s) already recorded)")
    folders = sorted({f.rsplit("/", 1)[0] for f, _ in images})
    where = f"{shown['imagery']}/{folders[0]}/" if len(folders) == 1 else f"{shown['imagery']}/"
    db = shown["database"]
    return [
        f"Demo finished in {run.seconds:.1f} s: {ordered}; {fresh} file(s) downloaded, {present} already present, "
        f"all verified against the order's checksums.",
        f"  imagery   {where}  ({len(images)} image(s), {_size(sum(s for _, s in images))})",
        f"  database  {db}  (see it again: flowzero --database-path {db} db list-orders)",
        *([f"  catalog   {shown['catalog']}  (STAC: pystac, odc-stac and QGIS read it)"]
          if shown.get("catalog") else []),
        f"  calendar  flowzero --database-path {db} coverage  (which weeks have an image, and why not)",
        f"  AOI       {shown['aoi']}  (a real AOI; the sandbox stands in for Planet: no key, no network)",
        f"  sandbox   {shown['sandbox']}/  (its orders and files; they survive reruns)",
        "Run it again: nothing is ordered twice. With your Planet key (export PL_API_KEY=...) the same commands",
        "order real imagery: flowzero submit --geojson YOUR_AOI.geojson --start-date ... --end-date ...",
    ]


@click.command("demo")
@click.option("--dir", "folder", default="./flowzero-demo", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's sandbox, order database and imagery (reused by a rerun).")
@click.pass_context
def demo(ctx: click.Context, folder: Path) -> None:
    """Try the whole flow offline: a local Planet sandbox, search, order, wait, deliver, the order database.

    Needs no API key and no network, and takes seconds. It orders a month of weekly scenes for a bundled AOI
    (Santa Clara River) from a Planet-compatible sandbox started in this process, downloads and verifies the
    images into DIR/imagery, records the order in DIR/flowzero.db, and shows both. Your own config and order
    database are not touched. A rerun orders nothing again and finds the files already there.
    """
    from flowzero.config import Config
    from flowzero.demo import prepare, run_demo, shown_path

    app: AppContext = ctx.ensure_object(AppContext)
    quiet = app.quiet
    paths = prepare(folder)
    info(f"flowzero demo in {shown_path(paths.root)}: the whole flow against a local Planet sandbox "
         "(no API key, no network).", quiet)

    def say(message: str) -> None:
        info(message, quiet)

    run = run_demo(paths, quiet=quiet, submit=show_submit, show_progress=not quiet and sys.stderr.isatty(), say=say)
    for line in _outcome_lines(run):
        click.echo(line)
    shown = {name: shown_path(getattr(paths, name)) for name in ("aoi", "database", "sandbox", "imagery")}
    if run.catalog:
        shown["catalog"] = shown_path(Path(run.catalog))
    if not quiet:
        info(f"Step 3/3  the order database, as `flowzero --database-path {shown['database']} db list-orders`",
             quiet)

        config = Config()
        config.database_path = str(paths.database)
        ctx.obj = AppContext(quiet=quiet, database_path=str(paths.database), _config=config)
        try:
            ctx.invoke(list_orders, status=None, batch_id=None, aoi_name=None, as_json=False)
        finally:
            ctx.obj.store().close()
        info("Delivered files:", quiet)
        _print_tree(shown["imagery"], run.files)
    for line in _summary(run, shown):
        click.echo(line)
    if run.failed:
        ctx.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(demo)
