"""What an imagery provider plugin is: a class registered through ``register_providers``.

A provider turns an AOI and a request (dates, bands, a mosaic...) into :class:`PlannedOrder` objects;
placing them exactly once is the job of :mod:`flowzero.ordering.submit`, the same for every provider. The
commands look providers up by kind (``flowzero.plugins.provider_for(SCENES, name)``: the one installed, or the one
``--provider`` names), never by import or by a name written in the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Protocol

from flowzero.models import Scene, SearchRecord
from flowzero.selection import quota_hectares

if TYPE_CHECKING:
    from flowzero.config import Config
    from flowzero.ordering.plan import PlannedOrder


SCENES = "scenes"  # SceneProvider: search and select scenes, order the selection
MOSAICS = "mosaics"  # MosaicProvider: list ready-made mosaics, order one over an AOI


class Provider(Protocol):
    """Every provider: a name (its key in the registry, what ``--provider`` selects), a description, what kind of
    provider it is (:data:`SCENES` or :data:`MOSAICS`), and the order type its orders are recorded under."""

    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str]
    order_type: ClassVar[str]

    def __init__(self, client: Any, config: Config) -> None: ...


@dataclass
class SceneSearch:
    """The outcome of a scene search over one AOI and date range, before anything is ordered."""

    aoi_name: str
    area_sqkm: float
    start: date
    end: date
    cadence: str
    num_bands: str
    asset: str
    product_bundle: str
    found: int  # search results (all pages)
    eligible: int  # of which cover at least downloads.min_coverage_pct of the AOI
    selected: list[Scene] = field(default_factory=list)
    clip: Optional[dict[str, Any]] = field(default=None, repr=False)  # the geometry orders are clipped to
    skipped: list[str] = field(default_factory=list)  # why each search result that was no usable scene was left out
    days: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # selection.day_summary
    min_coverage_pct: Optional[float] = None

    def record(self, batch_id: Optional[str] = None) -> SearchRecord:
        """The search as the order store keeps it (for the coverage calendar)."""
        return SearchRecord(
            aoi_name=self.aoi_name, start_date=self.start.isoformat(), end_date=self.end.isoformat(),
            cadence=self.cadence, found=self.found, eligible=self.eligible, selected=len(self.selected),
            batch_id=batch_id, product_bundle=self.product_bundle, min_coverage_pct=self.min_coverage_pct,
            days=self.days)

    @property
    def quota_hectares(self) -> float:
        return quota_hectares(self.area_sqkm, len(self.selected))


class SceneProvider(Provider, Protocol):
    """A provider of individual scenes (PSScope): search and select, then plan orders for the selection."""

    def search(self, aoi: Any, start: date, end: date, *, cadence: str = "daily",
               num_bands: str = "four_bands", bundle: str | None = None) -> SceneSearch:
        """Search every page, drop scenes under the minimum coverage, keep the best per cadence interval."""
        ...

    def plan(self, search: SceneSearch, *, batch_id: str | None = None,
             suffix: str | None = None) -> list[PlannedOrder]:
        """The orders (split at Planet's item limit) that would deliver ``search.selected``."""
        ...


class MosaicProvider(Provider, Protocol):
    """A provider of ready-made mosaics (Basemaps): list them, plan an order of one over an AOI."""

    def list_mosaics(self, start: date, end: date, name_contains: str | None = None) -> list[dict[str, Any]]:
        """Mosaics whose first acquisition falls within ``start..end``, all pages."""
        ...

    def plan(self, aoi: Any, mosaic_name: str, *, suffix: str | None = None) -> list[PlannedOrder]:
        """The order of ``mosaic_name`` clipped to ``aoi``."""
        ...
