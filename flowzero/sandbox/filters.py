"""Planet's Data API filter language, validated and evaluated server-side like Planet does.

Supported: AndFilter, OrFilter, NotFilter, GeometryFilter (intersects), DateRangeFilter, RangeFilter,
StringInFilter, NumberInFilter, AssetFilter (all listed assets present), UpdateFilter, and PermissionFilter
(accepted and ignored: every sandbox user may download everything). Anything malformed is a 400 with a
message.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.prepared import prep

from flowzero.sandbox.api import ApiError, bad_request, parse_time

Predicate = Callable[[dict[str, Any]], bool]
_BOUNDS = ("gte", "gt", "lte", "lt")


def parse_geometry(value: Any, where: str) -> BaseGeometry:
    """A GeoJSON geometry (or Feature / FeatureCollection) as a valid shapely geometry, else a 400."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if isinstance(value, dict) and value.get("type") == "FeatureCollection":
        parts = [parse_geometry(f, where) for f in value.get("features") or []]
        if not parts:
            raise bad_request(f"{where}: the FeatureCollection has no features", where)
        return unary_union(parts)
    if not isinstance(value, dict) or "type" not in value or "coordinates" not in value:
        raise bad_request(f"{where}: expected a GeoJSON geometry with 'type' and 'coordinates'", where)
    try:
        geom = shape(value)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise bad_request(f"{where}: invalid GeoJSON geometry ({exc})", where) from None
    if geom.is_empty:
        raise bad_request(f"{where}: the geometry is empty", where)
    if not geom.is_valid:
        raise bad_request(f"{where}: the geometry is not valid (self-intersecting or badly closed)", where)
    return geom


def _field_value(feature: dict[str, Any], field: str) -> Any:
    if field == "id":
        return feature.get("id")
    return feature.get("properties", {}).get(field)


def _comparisons(config: Any, where: str, convert: Callable[[Any, str], Any]) -> list[tuple[str, Any]]:
    if not isinstance(config, dict) or not config or set(config) - set(_BOUNDS):
        raise bad_request(f"{where}: config must be an object with some of gte, gt, lte, lt", where)
    return [(op, convert(value, f"{where}.{op}")) for op, value in config.items()]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"{where}: expected a number, got {value!r}", where)
    return float(value)


def _in_bounds(value: Any, checks: list[tuple[str, Any]]) -> bool:
    for op, bound in checks:
        if op == "gte" and not value >= bound:
            return False
        if op == "gt" and not value > bound:
            return False
        if op == "lte" and not value <= bound:
            return False
        if op == "lt" and not value < bound:
            return False
    return True


def _field_name(spec: dict[str, Any], where: str) -> str:
    name = spec.get("field_name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{where}: field_name is required", where)
    return name


def compile_filter(spec: Any, where: str = "filter") -> Predicate:
    """A predicate over Data API features; raises ApiError(400) for a filter Planet would reject."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise bad_request(f"{where}: each filter must be an object with a 'type'", where)
    kind, config = spec["type"], spec.get("config")
    if kind in ("AndFilter", "OrFilter"):
        if not isinstance(config, list):
            raise bad_request(f"{where}: {kind} config must be a list of filters", where)
        parts = [compile_filter(sub, f"{where}.config[{i}]") for i, sub in enumerate(config)]
        if kind == "AndFilter":
            return lambda f: all(p(f) for p in parts)
        return lambda f: any(p(f) for p in parts)
    if kind == "NotFilter":
        inner = compile_filter(config, f"{where}.config")
        return lambda f: not inner(f)
    if kind == "GeometryFilter":
        area = prep(parse_geometry(config, f"{where}.config"))
        return lambda f: bool(f.get("geometry")) and area.intersects(shape(f["geometry"]))
    if kind in ("DateRangeFilter", "UpdateFilter"):
        field = _field_name(spec, where)
        checks = _comparisons(config, f"{where}.config", parse_time)

        def in_dates(f: dict[str, Any]) -> bool:
            value = _field_value(f, field)
            return isinstance(value, str) and _in_bounds(parse_time(value, field), checks)

        return in_dates
    if kind == "RangeFilter":
        field = _field_name(spec, where)
        checks = _comparisons(config, f"{where}.config", _number)

        def in_range(f: dict[str, Any]) -> bool:
            value = _field_value(f, field)
            return isinstance(value, (int, float)) and _in_bounds(value, checks)

        return in_range
    if kind in ("StringInFilter", "NumberInFilter"):
        field = _field_name(spec, where)
        wanted_type = str if kind == "StringInFilter" else (int, float)
        if not isinstance(config, list) or not all(isinstance(v, wanted_type) for v in config):
            raise bad_request(f"{where}: {kind} config must be a list of "
                              f"{'strings' if kind == 'StringInFilter' else 'numbers'}", where)
        values = set(config)
        return lambda f: _field_value(f, field) in values
    if kind == "AssetFilter":
        if not isinstance(config, list) or not config or not all(isinstance(v, str) for v in config):
            raise bad_request(f"{where}: AssetFilter config must be a non-empty list of asset names", where)
        needed = set(config)
        return lambda f: needed <= set(f.get("assets", ()))
    if kind == "PermissionFilter":
        return lambda f: True
    raise bad_request(f"{where}: unknown filter type {kind!r}", where)


def _walk(spec: Any, negated: bool = False) -> list[tuple[dict[str, Any], bool]]:
    """Every leaf filter with whether it sits under a NotFilter."""
    if not isinstance(spec, dict):
        return []
    kind = spec.get("type")
    if kind in ("AndFilter", "OrFilter") and isinstance(spec.get("config"), list):
        return [leaf for sub in spec["config"] for leaf in _walk(sub, negated)]
    if kind == "NotFilter":
        return _walk(spec.get("config"), not negated)
    return [(spec, negated)]


def search_area(request: dict[str, Any]) -> BaseGeometry:
    """The area to generate scenes around: the request's ``geometry`` and its GeometryFilters, united."""
    parts = []
    if request.get("geometry") is not None:
        parts.append(parse_geometry(request["geometry"], "geometry"))
    for leaf, negated in _walk(request.get("filter")):
        if leaf.get("type") == "GeometryFilter" and not negated:
            parts.append(parse_geometry(leaf.get("config"), "GeometryFilter.config"))
    if not parts:
        raise ApiError(400, "the sandbox generates scenes around the searched area: add a GeometryFilter "
                            "(or a 'geometry') to the search", {"filter": [{"message": "no GeometryFilter"}]})
    return unary_union(parts)


def acquired_window(request: dict[str, Any], earliest: datetime) -> tuple[datetime, datetime]:
    """The widest acquired window the filter can match (earliest..now when it does not bound one side)."""
    lows: list[datetime] = []
    highs: list[datetime] = []
    unbounded_low = unbounded_high = False
    found = False
    for leaf, negated in _walk(request.get("filter")):
        if leaf.get("type") != "DateRangeFilter" or leaf.get("field_name") != "acquired" or negated:
            continue
        raw = leaf.get("config")
        config: dict[str, Any] = raw if isinstance(raw, dict) else {}
        found = True
        low = config.get("gte", config.get("gt"))
        high = config.get("lte", config.get("lt"))
        if low is None:
            unbounded_low = True
        else:
            lows.append(parse_time(low, "DateRangeFilter.config"))
        if high is None:
            unbounded_high = True
        else:
            highs.append(parse_time(high, "DateRangeFilter.config"))
    now = datetime.now(timezone.utc)
    start = earliest if not found or unbounded_low or not lows else min(lows)
    end = now if not found or unbounded_high or not highs else max(highs)
    return start, end
