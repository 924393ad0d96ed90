"""Dates in, pieces out: parse user dates, split long date ranges and long item lists into orderable chunks.

Planet orders are easier to retry and to track when a long period is ordered in pieces of a few months, and an
order may hold at most 500 items. Everything here is pure so the rules can be tested exactly.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from flowzero.errors import UsageError

PLANET_MAX_ITEMS_PER_ORDER = 500

_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# Dates flowzero takes: far wider than any imagery (a gage's record may start long before Planet's archive), and
# far from the calendar's end (year 9999), so chunk ends and "the day after" never overflow.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)


def parse_date(text: str | date, what: str = "date") -> date:
    """``YYYY-MM-DD`` (a ``date`` passes through) -> ``date``; anything else, or a date outside
    EARLIEST_DATE..LATEST_DATE, is a UsageError naming ``what``.

    The message names what was parsed (``--start-date``, a gage's column) so the user knows where to look.
    """
    if isinstance(text, date):
        day = text.date() if isinstance(text, datetime) else text
    else:
        raw = "" if text is None else str(text).strip()
        match = _ISO_DATE.match(raw)
        if not match:
            raise UsageError(f"invalid {what} '{raw[:40]}': expected a date as YYYY-MM-DD",
                             hint="for example 2024-06-30")
        try:
            day = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError as exc:
            raise UsageError(f"invalid {what} '{raw}': {exc}", hint="check the month and day") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise UsageError(f"invalid {what} {day.isoformat()}: dates must lie between {EARLIEST_DATE.isoformat()} "
                         f"and {LATEST_DATE.isoformat()}", hint="check the year")
    return day


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the end of a shorter month (Jan 31 + 1 -> Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def split_date_range(start: date, end: date, max_months: int = 6) -> list[tuple[date, date]]:
    """Contiguous, non-overlapping inclusive ranges covering ``start..end``, each at most ``max_months`` long.

    Each chunk ends the day before the same day ``max_months`` later (2024-01-01..2024-12-31 with 6 gives
    Jan-Jun and Jul-Dec). After a clamped month end (Aug 31 + 6 -> Feb 28) later chunks start on the 28th:
    a chunk may come out shorter, never longer.
    """
    if max_months < 1:
        raise UsageError(f"invalid chunk length {max_months}: must be at least 1 month")
    if end < start:
        raise UsageError(f"the end date {end.isoformat()} is before the start date {start.isoformat()}",
                         hint="swap the dates")
    touched = (end.year - start.year) * 12 + end.month - start.month + 1
    max_months = min(max_months, touched)  # more months than the range touches: one chunk (and no overflow)
    chunks: list[tuple[date, date]] = []
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(end, add_months(chunk_start, max_months) - timedelta(days=1))
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end + timedelta(days=1)
    return chunks


def split_items(ids: Iterable[str], limit: int = PLANET_MAX_ITEMS_PER_ORDER) -> list[list[str]]:
    """Item ids in order-sized batches of at most ``limit``; duplicates are dropped (first occurrence kept).

    Ordering the same item twice costs quota twice, so a repeated id is never passed on.
    """
    if limit < 1:
        raise UsageError(f"invalid item limit {limit}: must be at least 1")
    unique = list(dict.fromkeys(ids))
    return [unique[i:i + limit] for i in range(0, len(unique), limit)]
