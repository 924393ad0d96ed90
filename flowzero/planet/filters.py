"""Data API search filters, built as plain dicts (Planet's typed-filter JSON), with no I/O.

Dates are whole days and both ends are inclusive: ``start`` 2024-01-01 and ``end`` 2024-01-31 search
``2024-01-01T00:00:00Z`` to ``2024-01-31T23:59:59Z`` (UTC), so a month needs no "day after" arithmetic.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flowzero.errors import UsageError


def _day(value: date) -> date:
    """A datetime is a date too; keep only its day so the range stays whole days."""
    return value.date() if isinstance(value, datetime) else value


def and_filter(*filters: dict[str, Any]) -> dict[str, Any]:
    """All of ``filters`` must match."""
    return {"type": "AndFilter", "config": list(filters)}


def geometry_filter(geometry: dict[str, Any]) -> dict[str, Any]:
    """Items whose footprint intersects ``geometry`` (a GeoJSON geometry in WGS84)."""
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise UsageError("the search geometry must be a GeoJSON geometry (a mapping with a 'type')")
    return {"type": "GeometryFilter", "field_name": "geometry", "config": geometry}


def date_range_filter(start: date, end: date, field_name: str = "acquired") -> dict[str, Any]:
    """Items acquired from the start of ``start`` to the end of ``end`` (UTC, both days inclusive)."""
    first, last = _day(start), _day(end)
    if first > last:
        raise UsageError(f"the start date {first.isoformat()} is after the end date {last.isoformat()}")
    return {
        "type": "DateRangeFilter",
        "field_name": field_name,
        "config": {"gte": f"{first.isoformat()}T00:00:00Z", "lte": f"{last.isoformat()}T23:59:59Z"},
    }


def cloud_cover_filter(cloud_cover_max: float) -> dict[str, Any]:
    """Items with at most ``cloud_cover_max`` cloud, a fraction 0..1 as Planet stores it (0.1 = 10 %)."""
    if not 0.0 <= cloud_cover_max <= 1.0:
        raise UsageError(
            f"cloud cover maximum {cloud_cover_max} is not a fraction between 0 and 1",
            hint="write 10 % as 0.1",
        )
    return {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": float(cloud_cover_max)}}


def asset_filter(*assets: str) -> dict[str, Any]:
    """Items that have every one of ``assets`` (e.g. ``ortho_analytic_4b_sr``)."""
    if not assets or not all(assets):
        raise UsageError("an asset filter needs at least one asset name")
    return {"type": "AssetFilter", "config": list(assets)}


def string_in_filter(field_name: str, values: list[str]) -> dict[str, Any]:
    """Items whose ``field_name`` is one of ``values``."""
    return {"type": "StringInFilter", "field_name": field_name, "config": list(values)}


def build_search_filter(
    geometry: dict[str, Any], start: date, end: date, cloud_cover_max: float, asset: str
) -> dict[str, Any]:
    """The filter flowzero searches with: over the AOI, in the days ``start``..``end`` inclusive, cloud cover
    at most ``cloud_cover_max`` (fraction 0..1), with ``asset`` available and only ``standard`` quality (no
    test scenes)."""
    return and_filter(
        geometry_filter(geometry),
        date_range_filter(start, end),
        cloud_cover_filter(cloud_cover_max),
        asset_filter(asset),
        string_in_filter("quality_category", ["standard"]),
    )
