"""How the coverage calendar is shown: a rich heat map, a self-contained HTML page, a PNG. One palette for all.

The HTML page has no external resource (no CDN, no script): its CSS is inline, so it opens offline and can be
mailed as one file. Each cell carries ``data-gage``, ``data-period`` and ``data-state`` and a tooltip saying why.
"""

from __future__ import annotations

import html
import sys
from typing import TYPE_CHECKING

from flowzero.coverage import STATES, Calendar, Cell
from flowzero.errors import UsageError

if TYPE_CHECKING:
    from rich.text import Text

COLORS = {"delivered": "#1a9850", "ordered": "#4575b4", "failed": "#d73027", "not-selected": "#fdae61",
          "no-scenes": "#bdbdbd", "not-searched": "#f7f7f7"}
LABELS = {"delivered": "delivered", "ordered": "ordered (pending at Planet)", "failed": "failed or cancelled",
          "not-selected": "scenes, none ordered", "no-scenes": "searched, no scene covers enough",
          "not-searched": "never searched"}


def _short(period: str, cadence: str) -> str:
    return period[5:] if cadence in ("daily", "weekly") else period


def print_heat_map(calendar: Calendar) -> None:
    """Gages down, periods across, one coloured square per cell (delivered ones show their coverage)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Coverage ({calendar.cadence}, {calendar.start} to {calendar.end})", show_lines=False,
                  pad_edge=False, padding=(0, 0))
    table.add_column("gage", no_wrap=True)
    for period in calendar.periods:
        table.add_column(_short(period, calendar.cadence), justify="center", no_wrap=True)
    for gage, row in calendar.cells.items():
        table.add_row(gage, *[_square(cell) for cell in row])
    legend = Text()
    for state in COLORS:
        legend.append("■", style=COLORS[state])
        legend.append(f" {LABELS[state]}   ")
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 400)
    console.print(table)
    console.print(legend)


def _square(cell: Cell) -> Text:
    from rich.text import Text

    if cell.state == "delivered":
        shown = "" if cell.coverage_pct is None else f"{cell.coverage_pct:.0f}"
        return Text(f"{shown:>3}", style=f"bold white on {COLORS['delivered']}")
    return Text(" ■ ", style=COLORS[cell.state])


def html_page(calendar: Calendar) -> str:
    """The calendar as one self-contained HTML document."""
    head = "".join(f'<th scope="col">{html.escape(_short(p, calendar.cadence))}</th>' for p in calendar.periods)
    rows = []
    for gage, row in calendar.cells.items():
        cells = "".join(_html_cell(cell) for cell in row)
        rows.append(f'<tr><th scope="row">{html.escape(gage)}</th>{cells}</tr>')
    legend = "".join(f'<li><span class="swatch state-{s}" data-state="{s}"></span>{html.escape(LABELS[s])} '
                     f'<b>{n}</b></li>' for s, n in calendar.counts().items())
    styles = "\n".join(f".state-{state} {{ background: {color}; }}" for state, color in COLORS.items())
    title = f"flowzero coverage, {calendar.cadence}, {calendar.start} to {calendar.end}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: separate; border-spacing: 2px; }}
th {{ font-weight: 500; font-size: 11px; color: #555; }}
th[scope=row] {{ text-align: right; padding-right: 8px; font-size: 13px; color: #222; }}
td.cell {{ width: 34px; height: 24px; text-align: center; font-size: 10px; color: #fff; border: 1px solid #ddd; }}
td.state-not-searched, td.state-no-scenes, td.state-not-selected {{ color: #333; }}
ul.legend {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 18px; }}
.swatch {{ display: inline-block; width: 14px; height: 14px; border: 1px solid #999; margin-right: 6px;
          vertical-align: -2px; }}
{styles}
</style></head>
<body>
<h1>Coverage calendar</h1>
<p>{html.escape(title)}: {len(calendar.cells)} gage(s) x {len(calendar.periods)} period(s).
Hover a cell to see why.</p>
<table id="calendar"><thead><tr><th></th>{head}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<ul class="legend" id="legend">{legend}</ul>
</body></html>
"""


def _html_cell(cell: Cell) -> str:
    text = f"{cell.coverage_pct:.0f}" if cell.state == "delivered" and cell.coverage_pct is not None else ""
    tip = f"{cell.gage} {cell.period}: {cell.state}" + (f", {cell.detail}" if cell.detail else "")
    return (f'<td class="cell state-{cell.state}" data-gage="{html.escape(cell.gage)}" '
            f'data-period="{cell.period}" data-state="{cell.state}" title="{html.escape(tip)}">{text}</td>')


def write_png(calendar: Calendar, path: str) -> None:
    """The heat map as a PNG (matplotlib, the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch
    except ImportError:
        raise UsageError("--png needs matplotlib, which is not installed",
                         hint="pip install 'flowzero[plot]'") from None

    index = {state: n for n, state in enumerate(STATES)}
    grid = [[index[c.state] for c in row] for row in calendar.cells.values()]
    width = max(6.0, 0.35 * len(calendar.periods) + 2.5)
    figure, axes = plt.subplots(figsize=(width, 1.2 + 0.4 * len(grid)))
    axes.imshow(grid, cmap=ListedColormap([COLORS[s] for s in STATES]), vmin=0, vmax=len(STATES) - 1,
                aspect="auto")
    axes.set_yticks(range(len(grid)), list(calendar.cells))
    axes.set_xticks(range(len(calendar.periods)), [_short(p, calendar.cadence) for p in calendar.periods],
                    rotation=90, fontsize=7)
    for y, row in enumerate(calendar.cells.values()):
        for x, cell in enumerate(row):
            if cell.state == "delivered" and cell.coverage_pct is not None:
                axes.text(x, y, f"{cell.coverage_pct:.0f}", ha="center", va="center", fontsize=6, color="white")
    axes.set_title(f"Coverage ({calendar.cadence}, {calendar.start} to {calendar.end})")
    figure.legend(handles=[Patch(facecolor=COLORS[s], edgecolor="#999", label=LABELS[s]) for s in STATES],
                  loc="lower center", ncol=3, fontsize=7, frameon=False)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    try:
        figure.savefig(path, dpi=150)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
