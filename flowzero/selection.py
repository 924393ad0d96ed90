"""Which PlanetScope scenes to order: AOI coverage, one best scene per day/week/month, bundles and quota.

Pure functions on :class:`flowzero.models.Scene` and plain dicts, so the ordering rules can be tested without
a server. Coverage is a ratio of geodesic areas on the WGS84 ellipsoid, the same measure as an AOI's area.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Union

from flowzero.errors import UsageError
from flowzero.models import Scene

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

CADENCES = ("daily", "weekly", "monthly")
NUM_BANDS = ("four_bands", "eight_bands")
EIGHT_BAND_FIRST_YEAR = 2021  # PlanetScope SuperDove 8-band surface reflectance is ordered from 2021 on

FOUR_BAND = ("ortho_analytic_4b_sr", "analytic_sr_udm2")
EIGHT_BAND = ("ortho_analytic_8b_sr", "analytic_8b_sr_udm2")

# The search asset that an order bundle needs (PSScene), so that a --bundle override searches for scenes that
# can actually deliver it.
BUNDLE_ASSETS: dict[str, str] = {
    "analytic_sr_udm2": "ortho_analytic_4b_sr",
    "analytic_8b_sr_udm2": "ortho_analytic_8b_sr",
    "analytic_udm2": "ortho_analytic_4b",
    "analytic_8b_udm2": "ortho_analytic_8b",
    "analytic_3b_udm2": "ortho_analytic_3b",
    "visual": "ortho_visual",
    "basic_analytic_udm2": "basic_analytic_4b",
    "basic_analytic_8b_udm2": "basic_analytic_8b",
}

COVERAGE_DIGITS = 2  # coverage is compared at 0.01 percentage-point precision

AOIGeometry = Union["BaseGeometry", dict]

_ACQUIRED = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def acquired_datetime(acquired: str) -> datetime:
    """Planet's ``acquired`` timestamp (RFC 3339, any number of fraction digits) as an aware UTC datetime.

    Parsed rather than compared as text: ``...09Z`` sorts after ``...09.67Z`` as a string but is earlier.
    """
    match = _ACQUIRED.match(acquired.strip()) if isinstance(acquired, str) else None
    if not match:
        raise UsageError(f"invalid acquired timestamp {acquired!r}: expected RFC 3339 "
                         "(e.g. 2024-06-01T18:30:00Z)")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                          micro, tzinfo=tz)
    except ValueError as exc:
        raise UsageError(f"invalid acquired timestamp {acquired!r}: {exc}") from None
    return parsed.astimezone(timezone.utc)


def acquired_date(acquired: str) -> date:
    """The UTC calendar day of an ``acquired`` timestamp."""
    return acquired_datetime(acquired).date()


def _as_shape(geometry: AOIGeometry) -> BaseGeometry:
    from shapely.geometry import shape

    if isinstance(geometry, dict):
        return shape(geometry)
    return geometry


def _area(geometry: BaseGeometry) -> float:
    from flowzero.aoi import geodesic_area_sqkm  # noqa: PLC0415 (start-up: flowzero.api loads this)

    return geodesic_area_sqkm(geometry)


def coverage_pct(footprint: AOIGeometry, aoi_geometry: AOIGeometry) -> float:
    """How much of the AOI (0-100 %) a footprint covers, by geodesic area."""
    aoi = _as_shape(aoi_geometry)
    aoi_area = _area(aoi)
    if aoi_area <= 0:
        raise UsageError("the AOI has no area, coverage cannot be computed")
    shape_ = _as_shape(footprint)
    if shape_.is_empty:
        return 0.0
    if not shape_.is_valid:
        from shapely import make_valid

        shape_ = make_valid(shape_)
    overlap = shape_.intersection(aoi)
    if overlap.is_empty:
        return 0.0
    return max(0.0, min(100.0, 100.0 * _area(overlap) / aoi_area))


class BadSearchResult(UsageError):
    """A search result that cannot be a scene (not an object, no text id, a malformed time, cloud cover or
    footprint): the search skips it, says so, and keeps the others."""


def _cloud_cover(value: Any, label: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadSearchResult(f"search result {label}: cloud_cover {value!r} is not a number")
    return float(value)


def scene_from_feature(feature: Any, aoi_geometry: AOIGeometry) -> Scene:
    """A Data API search feature -> :class:`Scene` with its coverage of the AOI; BadSearchResult if it cannot be."""
    from shapely.errors import ShapelyError

    if not isinstance(feature, dict):
        raise BadSearchResult(f"search result {str(feature)[:40]!r} is not a JSON object")
    ident = feature.get("id")
    label = repr(ident)[:60]
    props = feature.get("properties") or {}
    geometry = feature.get("geometry") or {}
    if not isinstance(props, dict) or not isinstance(geometry, dict):
        raise BadSearchResult(f"search result {label}: properties and geometry must be JSON objects")
    acquired = props.get("acquired")
    if not isinstance(ident, str) or not ident.strip() or not acquired:
        raise BadSearchResult(f"search result {label} has no id (as text) or acquired time")
    try:
        acquired_datetime(acquired)  # fail early on a malformed timestamp
    except UsageError as exc:
        raise BadSearchResult(f"search result {label}: {exc.message}") from None
    cloud = _cloud_cover(props.get("cloud_cover"), label)
    try:
        coverage = coverage_pct(geometry, aoi_geometry) if geometry else 0.0
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError, ShapelyError) as exc:
        raise BadSearchResult(f"search result {label}: unreadable footprint ({exc})") from None
    return Scene(id=ident, acquired=acquired, cloud_cover=cloud, coverage_pct=coverage, geometry=geometry,
                 properties=props)


def scenes_from_results(features: Iterable[Any], aoi_geometry: AOIGeometry) -> tuple[list[Scene], list[str]]:
    """Every usable search result as a scene, once each (pages may overlap), and why the others were skipped."""
    scenes: dict[str, Scene] = {}
    skipped: list[str] = []
    for feature in features:
        ident = feature.get("id") if isinstance(feature, dict) else None
        if isinstance(ident, str) and ident in scenes:
            continue
        try:
            scene = scene_from_feature(feature, aoi_geometry)
        except BadSearchResult as exc:
            skipped.append(exc.message)
            continue
        scenes[scene.id] = scene
    return list(scenes.values()), skipped


def _rounded(coverage: float) -> float:
    return round(coverage, COVERAGE_DIGITS)


def filter_by_coverage(scenes: Iterable[Scene], min_coverage_pct: float = 98.0) -> list[Scene]:
    """Scenes covering at least ``min_coverage_pct`` of the AOI (compared at 0.01 pp), order kept."""
    if not 0.0 <= min_coverage_pct <= 100.0:
        raise UsageError(f"invalid minimum coverage {min_coverage_pct}: must be between 0 and 100")
    threshold = _rounded(min_coverage_pct)
    return [s for s in scenes if _rounded(s.coverage_pct) >= threshold]


def interval_key(acquired: str | date, cadence: str) -> str:
    """A scene's interval: ``daily`` its date, ``weekly`` the Sunday on/before it, ``monthly`` YYYY-MM."""
    day = acquired if isinstance(acquired, date) else acquired_date(acquired)
    if isinstance(day, datetime):
        day = day.date()
    if cadence == "daily":
        return day.isoformat()
    if cadence == "weekly":
        # date.weekday(): Monday 0 ... Sunday 6; weeks start on Sunday.
        return (day - timedelta(days=(day.weekday() + 1) % 7)).isoformat()
    if cadence == "monthly":
        return f"{day.year:04d}-{day.month:02d}"
    raise UsageError(f"unknown cadence '{cadence}': choose one of {', '.join(CADENCES)}")


def day_summary(scenes: Iterable[Scene], min_coverage_pct: float) -> dict[str, dict[str, Any]]:
    """Per UTC day of acquisition: scenes found, how many reach ``min_coverage_pct``, the best coverage."""
    days: dict[str, dict[str, Any]] = {}
    threshold = _rounded(min_coverage_pct)
    for scene in scenes:
        day = days.setdefault(acquired_date(scene.acquired).isoformat(),
                              {"found": 0, "eligible": 0, "best_coverage_pct": 0.0})
        day["found"] += 1
        day["eligible"] += int(_rounded(scene.coverage_pct) >= threshold)
        day["best_coverage_pct"] = max(day["best_coverage_pct"], _rounded(scene.coverage_pct))
    return dict(sorted(days.items()))


def _order_key(scene: Scene) -> tuple[datetime, str]:
    return acquired_datetime(scene.acquired), scene.id


def select_best(scenes: Iterable[Scene], cadence: str) -> list[Scene]:
    """One scene per interval: highest coverage (at 0.01 pp), ties to the earliest; sorted by acquired."""
    if cadence not in CADENCES:
        raise UsageError(f"unknown cadence '{cadence}': choose one of {', '.join(CADENCES)}")
    best: dict[str, Scene] = {}
    for scene in scenes:
        key = interval_key(scene.acquired, cadence)
        current = best.get(key)
        if current is None or _better(scene, current):
            best[key] = scene
    return sorted(best.values(), key=_order_key)


def _better(candidate: Scene, current: Scene) -> bool:
    cand_cov, cur_cov = _rounded(candidate.coverage_pct), _rounded(current.coverage_pct)
    if cand_cov != cur_cov:
        return cand_cov > cur_cov
    return _order_key(candidate) < _order_key(current)


def choose_bundle(num_bands: str, start: date, bundle_override: str | None = None) -> tuple[str, str]:
    """(search asset, order bundle) for a band choice; 8-band falls back to 4-band before 2021.

    An explicit bundle replaces the order bundle, and the search asset too when the bundle's asset is known.
    """
    if num_bands not in NUM_BANDS:
        raise UsageError(f"unknown band choice '{num_bands}': choose one of {', '.join(NUM_BANDS)}")
    if num_bands == "eight_bands" and start.year >= EIGHT_BAND_FIRST_YEAR:
        asset, bundle = EIGHT_BAND
    else:
        asset, bundle = FOUR_BAND
    if bundle_override:
        bundle = bundle_override.strip()
        asset = BUNDLE_ASSETS.get(bundle, asset)
    return asset, bundle


def quota_hectares(aoi_area_sqkm: float, scenes_selected: int) -> float:
    """Planet quota an order uses: clipped area x scenes, in hectares (1 km² = 100 ha)."""
    return aoi_area_sqkm * scenes_selected * 100.0
