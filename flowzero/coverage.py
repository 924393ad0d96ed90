"""The coverage calendar: for each gage and each day, week or month, whether imagery was delivered and why not.

Built from the order store alone: the orders (each ordered scene's period and coverage are recorded when it is
planned) and the searches (``record_search``: what was asked, and per day what Planet had). Pure: the CLI draws
it as a terminal heat map, an HTML page, a PNG or JSON (:mod:`flowzero.cli.coverage`).

A cell is, in this order of precedence:

- ``delivered``: a scene of that period is at a destination (with its coverage of the AOI, in %);
- ``ordered``: a scene of that period is ordered and not delivered yet (queued or running at Planet);
- ``failed``: the only orders for it failed or were cancelled;
- ``not-selected``: searched, scenes were good enough, but none was ordered for this period (the calendar is
  finer than the cadence the search selected with: a weekly search orders one day of seven);
- ``no-scenes``: searched, and no scene covered ``min_coverage_pct`` of the AOI (Planet has no imagery);
- ``not-searched``: never asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Optional

from flowzero import plugins
from flowzero.errors import UsageError
from flowzero.selection import CADENCES, interval_key

if TYPE_CHECKING:
    from flowzero.models import Order, SearchRecord

STATES = ("delivered", "ordered", "failed", "not-selected", "no-scenes", "not-searched")
_PRECEDENCE = {"delivered": 0, "ordered": 1, "failed": 2}


@dataclass
class Cell:
    """One gage in one period."""

    gage: str
    period: str
    state: str
    coverage_pct: Optional[float] = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "state": self.state, "coverage_pct": self.coverage_pct,
                "detail": self.detail}


@dataclass
class Calendar:
    """Gages x periods; ``cells[gage]`` lists one :class:`Cell` per period, in order."""

    cadence: str
    start: date
    end: date
    periods: list[str] = field(default_factory=list)
    cells: dict[str, list[Cell]] = field(default_factory=dict)

    @property
    def gages(self) -> list[str]:
        return list(self.cells)

    def counts(self) -> dict[str, int]:
        found = Counter(c.state for row in self.cells.values() for c in row)
        return {state: found.get(state, 0) for state in STATES}

    def to_dict(self) -> dict[str, Any]:
        return {"cadence": self.cadence, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "states": list(STATES), "periods": self.periods, "counts": self.counts(),
                "gages": [{"gage": g, "cells": [c.to_dict() for c in row]} for g, row in self.cells.items()]}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def periods_between(start: date, end: date, cadence: str) -> list[str]:
    """The period labels (``selection.interval_key``) of every day from ``start`` to ``end``, in order."""
    return list(dict.fromkeys(interval_key(day, cadence) for day in _days(start, end)))


def _item_day(item_id: str) -> date | None:
    try:
        return date(int(item_id[:4]), int(item_id[4:6]), int(item_id[6:8]))
    except ValueError:
        return None


def _order_state(order: Order, item_id: str) -> str:
    meta = order.metadata or {}
    if (order.status or "").lower() in ("failed", "cancelled"):
        return "failed"
    if meta.get("delivered_at") and item_id not in (meta.get("missing") or []):
        return "delivered"
    return "ordered"


def _ordered(orders: Sequence[Order], cadence: str) -> dict[tuple[str, str], Cell]:
    """The best order state per (gage, period), from the scenes each order was planned with."""
    best: dict[tuple[str, str], Cell] = {}
    for order in orders:
        meta = order.metadata or {}
        raw = meta.get("scenes")
        scenes: dict[str, Any] = raw if isinstance(raw, dict) else {}
        for item_id in meta.get("item_ids") or list(scenes):
            day = _item_day(str(item_id))
            if day is None:
                continue
            state = _order_state(order, str(item_id))
            coverage = (scenes.get(item_id) or {}).get("coverage_pct")
            cell = Cell(order.aoi_name, interval_key(day, cadence), state,
                        None if coverage is None else float(coverage), f"{item_id} (order {order.order_id})")
            key = (cell.gage, cell.period)
            current = best.get(key)
            if current is None or (_PRECEDENCE[state], -(cell.coverage_pct or 0)) < (
                    _PRECEDENCE[current.state], -(current.coverage_pct or 0)):
                best[key] = cell
    return best


def _searched(searches: Sequence[SearchRecord], cadence: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (gage, period) searched: scenes found, eligible, the best coverage seen."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for search in searches:
        for day in _days(date.fromisoformat(search.start_date), date.fromisoformat(search.end_date)):
            key = (search.aoi_name, interval_key(day, cadence))
            summary = seen.setdefault(key, {"found": 0, "eligible": 0, "best": 0.0,
                                            "min_coverage_pct": search.min_coverage_pct})
            found = search.days.get(day.isoformat()) or {}
            summary["found"] += int(found.get("found") or 0)
            summary["eligible"] += int(found.get("eligible") or 0)
            summary["best"] = max(summary["best"], float(found.get("best_coverage_pct") or 0.0))
    return seen


def _default_cadence(orders: Sequence[Order], searches: Sequence[SearchRecord]) -> str:
    used = Counter([s.cadence for s in searches] + [str((o.metadata or {}).get("cadence")) for o in orders
                                                    if (o.metadata or {}).get("cadence")])
    return used.most_common(1)[0][0] if used else "weekly"


def _span(orders: Sequence[Order], searches: Sequence[SearchRecord]) -> tuple[date, date] | None:
    days = [date.fromisoformat(d) for o in orders for d in (o.start_date, o.end_date) if d]
    days += [date.fromisoformat(d) for s in searches for d in (s.start_date, s.end_date)]
    return (min(days), max(days)) if days else None


def build_calendar(orders: Sequence[Order], searches: Sequence[SearchRecord], *, cadence: str | None = None,
                   start: date | None = None, end: date | None = None) -> Calendar:
    """The calendar of every gage in ``orders`` and ``searches`` over ``start..end`` (default: their span)."""
    orders = [o for o in orders if plugins.order_kind(o.order_type) != "mosaics"]  # a calendar of scenes
    chosen = cadence or _default_cadence(orders, searches)
    if chosen not in CADENCES:
        raise UsageError(f"unknown cadence '{chosen}': choose one of {', '.join(CADENCES)}")
    span = _span(orders, searches)
    if span is None:
        raise UsageError("no orders or searches are recorded for this selection",
                         hint="submit or batch-submit first, or check --aoi / --batch-id")
    first, last = start or span[0], end or span[1]
    if last < first:
        raise UsageError(f"--end-date {last.isoformat()} is before --start-date {first.isoformat()}")
    calendar = Calendar(chosen, first, last, periods_between(first, last, chosen))
    ordered, searched = _ordered(orders, chosen), _searched(searches, chosen)
    gages = sorted({o.aoi_name for o in orders} | {s.aoi_name for s in searches})
    for gage in gages:
        calendar.cells[gage] = [ordered.get((gage, p)) or _unordered(gage, p, searched.get((gage, p)))
                                for p in calendar.periods]
    return calendar


def _unordered(gage: str, period: str, summary: dict[str, Any] | None) -> Cell:
    if summary is None:
        return Cell(gage, period, "not-searched", detail="never searched")
    found, best = summary["found"], summary["best"]
    if summary["eligible"]:
        return Cell(gage, period, "not-selected", best,
                    f"{summary['eligible']} good scene(s), none ordered for this period")
    threshold = summary.get("min_coverage_pct")
    needed = f" of the {threshold:g}% needed" if threshold is not None else ""
    detail = f"found {found} scene(s), best covered {best:g}%{needed}" if found else "Planet had no scene"
    return Cell(gage, period, "no-scenes", best if found else None, detail)
