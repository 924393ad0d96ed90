"""Built-in provider ``basemap``: Planet Basemaps mosaics, ordered as the quads over the AOI clipped to it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from flowzero.errors import PlanetError, UsageError
from flowzero.hookspecs import hookimpl
from flowzero.models import Order

if TYPE_CHECKING:
    from flowzero.aoi import AOI
    from flowzero.config import Config
    from flowzero.ordering.plan import PlannedOrder


def _day(timestamp: Any) -> str | None:
    return str(timestamp)[:10] if timestamp else None


class BasemapProvider:
    """Planet Basemaps: list mosaics by acquisition date, order one clipped to an AOI."""

    name: ClassVar[str] = "basemap"
    description: ClassVar[str] = "Planet Basemaps mosaics (quads clipped to the AOI)"
    kind: ClassVar[str] = "mosaics"
    order_type: ClassVar[str] = "Basemap (Composite)"

    def __init__(self, client: Any, config: Config) -> None:
        self.client = client
        self.config = config

    def list_mosaics(self, start: date, end: date, name_contains: str | None = None) -> list[dict[str, Any]]:
        """Mosaics whose ``first_acquired`` day lies in ``start..end`` (all pages), oldest first.

        Planet narrows the listing by name and by ``acquired__gt`` (a mosaic that starts on or after ``start``
        also ends after the day before it, whichever date Planet compares); the exact window is applied here.
        """
        if end < start:
            raise UsageError(f"the end date {end.isoformat()} is before the start date {start.isoformat()}",
                             hint="swap --start-date and --end-date")
        after = f"{(start - timedelta(days=1)).isoformat()}T00:00:00Z"
        low, high = start.isoformat(), end.isoformat()
        found = []
        for mosaic in self.client.list_mosaics(name_contains=name_contains or None, acquired_gt=after):
            first = _day(mosaic.get("first_acquired"))
            if first is None or not low <= first <= high:
                continue
            if name_contains and name_contains.lower() not in str(mosaic.get("name", "")).lower():
                continue
            found.append(mosaic)
        found.sort(key=lambda m: (str(m.get("first_acquired")), str(m.get("name"))))
        return found

    def mosaic(self, mosaic_name: str) -> dict[str, Any]:
        """The mosaic called ``mosaic_name``; a UsageError when Planet has none."""
        unknown = UsageError(f"no basemap mosaic named '{mosaic_name}'",
                             hint="run 'flowzero list-basemaps' to see the names")
        try:
            found = self.client.get_mosaic(mosaic_name)
        except PlanetError as exc:
            if exc.status_code == 404:
                raise unknown from None
            raise
        if not found or found.get("name", mosaic_name) != mosaic_name:
            raise unknown
        return found

    def plan(self, aoi: AOI, mosaic_name: str, *, suffix: str | None = None) -> list[PlannedOrder]:
        """The one order of ``mosaic_name`` over the AOI, recorded with the mosaic's acquisition dates."""
        # Imported here: this built-in plugin loads at `flowzero --help`, which does not load these.
        from flowzero.aoi import clip_geometry  # noqa: PLC0415
        from flowzero.ordering.plan import plan_basemap_order  # noqa: PLC0415

        mosaic = self.mosaic(mosaic_name)
        clip = clip_geometry(aoi.geometry)
        template = Order(
            order_id="", aoi_name=aoi.name, order_type=self.order_type, mosaic_name=mosaic_name,
            start_date=_day(mosaic.get("first_acquired")), end_date=_day(mosaic.get("last_acquired")),
            aoi_area_sqkm=round(aoi.area_sqkm, 6), clipped=True,
            metadata={"mosaic_id": mosaic.get("id"), "interval": mosaic.get("interval"), "clip": clip},
        )
        return [plan_basemap_order(template, clip, suffix=suffix)]


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    register(BasemapProvider)
