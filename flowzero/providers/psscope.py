"""Built-in provider ``psscope``: PlanetScope scenes, searched, selected per cadence, clipped to the AOI.

A plugin module like any third-party one: the commands reach :class:`PSScopeProvider` through the registry.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from flowzero.errors import UsageError
from flowzero.hookspecs import hookimpl
from flowzero.models import Order

if TYPE_CHECKING:
    from flowzero.aoi import AOI
    from flowzero.config import Config
    from flowzero.ordering.plan import PlannedOrder
    from flowzero.ordering.providers import SceneSearch

ITEM_TYPE = "PSScene"


class PSScopeProvider:
    """PlanetScope scenes: one best scene per day/week/month covering the AOI, ordered clipped to it."""

    name: ClassVar[str] = "psscope"
    description: ClassVar[str] = "PlanetScope scenes (PSScene), best per cadence, clipped to the AOI"
    kind: ClassVar[str] = "scenes"
    order_type: ClassVar[str] = "PSScope"

    def __init__(self, client: Any, config: Config) -> None:
        self.client = client
        self.config = config

    def search(self, aoi: AOI, start: date, end: date, *, cadence: str = "daily",
               num_bands: str = "four_bands", bundle: str | None = None) -> SceneSearch:
        """Search every page, drop scenes under ``downloads.min_coverage_pct``, keep the best per interval."""
        # Imported here: this built-in plugin loads at `flowzero --help`, which does not load these.
        from flowzero.aoi import clip_geometry  # noqa: PLC0415
        from flowzero.ordering.providers import SceneSearch  # noqa: PLC0415
        from flowzero.planet.filters import build_search_filter  # noqa: PLC0415
        from flowzero.selection import (  # noqa: PLC0415
            CADENCES,
            choose_bundle,
            day_summary,
            filter_by_coverage,
            scenes_from_results,
            select_best,
        )

        if end < start:
            raise UsageError(f"the end date {end.isoformat()} is before the start date {start.isoformat()}",
                             hint="swap --start-date and --end-date")
        if cadence not in CADENCES:
            raise UsageError(f"unknown cadence '{cadence}': choose one of {', '.join(CADENCES)}")
        asset, product_bundle = choose_bundle(num_bands, start, bundle)
        clip = clip_geometry(aoi.geometry)
        downloads = self.config.downloads
        search_filter = build_search_filter(clip, start, end, downloads.cloud_cover_max, asset)
        # A result that cannot be a scene is skipped and reported; it does not sink the others.
        scenes, skipped = scenes_from_results(self.client.search([ITEM_TYPE], search_filter), aoi.geometry)
        eligible = filter_by_coverage(scenes, downloads.min_coverage_pct)
        return SceneSearch(
            aoi_name=aoi.name, area_sqkm=aoi.area_sqkm, start=start, end=end, cadence=cadence,
            num_bands=num_bands, asset=asset, product_bundle=product_bundle, found=len(scenes),
            eligible=len(eligible), selected=select_best(eligible, cadence), clip=clip, skipped=skipped,
            days=day_summary(scenes, downloads.min_coverage_pct), min_coverage_pct=downloads.min_coverage_pct,
        )

    def plan(self, search: SceneSearch, *, batch_id: str | None = None,
             suffix: str | None = None) -> list[PlannedOrder]:
        """One clipped order per at most 500 selected scenes (names ``...-partN`` when split)."""
        from flowzero.ordering.plan import plan_scene_orders  # noqa: PLC0415 (start-up, as in search)
        from flowzero.selection import interval_key  # noqa: PLC0415

        # What each delivered item's STAC entry and the coverage calendar need: its period, coverage and cloud.
        scenes = {s.id: {"acquired": s.acquired, "period": interval_key(s.acquired, search.cadence),
                         "coverage_pct": round(s.coverage_pct, 2), "cloud_cover": s.cloud_cover}
                  for s in search.selected}
        template = Order(
            order_id="", aoi_name=search.aoi_name, order_type=self.order_type, batch_id=batch_id,
            start_date=search.start.isoformat(), end_date=search.end.isoformat(), num_bands=search.num_bands,
            product_bundle=search.product_bundle, clipped=search.clip is not None,
            aoi_area_sqkm=round(search.area_sqkm, 6), scenes_found=search.found,
            batch_order=batch_id is not None,
            metadata={"cadence": search.cadence, "asset": search.asset, "item_type": ITEM_TYPE,
                      "scenes_eligible": search.eligible, "scenes": scenes, "clip": search.clip},
        )
        return plan_scene_orders(template, [s.id for s in search.selected], search.clip, suffix=suffix)


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    register(PSScopeProvider)
