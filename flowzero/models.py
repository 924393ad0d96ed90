"""Small dataclasses that cross layers: orders, scenes, transfer jobs and their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Optional

# Planet's order states, defined here once; the last four are final.
OrderState = Literal["queued", "running", "success", "partial", "failed", "cancelled"]
ORDER_STATES: tuple[OrderState, ...] = ("queued", "running", "success", "partial", "failed", "cancelled")
FINAL_STATES: frozenset[str] = frozenset({"success", "partial", "failed", "cancelled"})
PENDING_STATES: tuple[OrderState, ...] = ("queued", "running")
# An order that ended in these may be placed again; in any other it counts as "already ordered" ("unknown" is what
# an imported record without a recognisable status gets, so old history blocks re-ordering too).
REORDERABLE_STATES: tuple[OrderState, ...] = ("failed", "cancelled")
NOT_REORDERABLE_STATES: tuple[str, ...] = ("queued", "running", "success", "partial", "unknown")


@dataclass
class Order:
    """One recorded order, as the order store keeps it."""

    order_id: str
    aoi_name: str
    order_type: str = "PSScope"
    batch_id: Optional[str] = None
    start_date: Optional[str] = None
    end_date: Optional[str] = None
    status: str = "queued"
    num_bands: Optional[str] = None
    product_bundle: Optional[str] = None
    clipped: bool = True
    aoi_area_sqkm: Optional[float] = None
    scenes_selected: Optional[int] = None
    scenes_found: Optional[int] = None
    quota_hectares: Optional[float] = None
    batch_order: bool = False
    mosaic_name: Optional[str] = None
    order_name: Optional[str] = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: Optional[str] = None
    updated_at: Optional[str] = None


@dataclass
class SearchRecord:
    """One scene search as the order store keeps it: what was asked (AOI, dates, cadence), what Planet had.

    ``days`` maps each day with scenes to ``{"found", "eligible", "best_coverage_pct"}``; a day of the range
    absent from it had no scene at all. Recorded when ``submit`` / ``batch-submit`` search, so the coverage
    calendar tells "searched, no imagery" from "never asked".
    """

    aoi_name: str
    start_date: str
    end_date: str
    cadence: str
    found: int
    eligible: int
    selected: int
    batch_id: Optional[str] = None
    product_bundle: Optional[str] = None
    min_coverage_pct: Optional[float] = None
    days: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_id: str = ""
    searched_at: Optional[str] = None


@dataclass
class Scene:
    """One PlanetScope search result with its coverage of the AOI (0-100 %)."""

    id: str
    acquired: str
    cloud_cover: float
    coverage_pct: float
    geometry: dict[str, Any] = field(default_factory=dict, repr=False)
    properties: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class TransferJob:
    """One file to move: from a (tokenised) source URL to a destination key or path, with what to verify."""

    url: str
    destination: str
    size: Optional[int] = None
    md5: Optional[str] = None
    sha256: Optional[str] = None
    name: str = ""


class FailureReason(str, Enum):
    """Why a transfer failed, as a value (never matched in error text). Delivery acts on it: ``EXPIRED_LINK``
    makes it fetch the order again for fresh links; ``CHECKSUM`` is fetched once more; ``AUTH`` stops the run."""

    EXPIRED_LINK = "expired_link"  # the source refused the link (401/403/410): fresh links may cure it
    CHECKSUM = "checksum"  # the bytes do not match the manifest's size or digest
    AUTH = "auth"  # the destination refused the credentials
    RATE_LIMITED = "rate_limited"  # the source kept answering 429 until the time budget ran out
    TOO_LARGE = "too_large"  # the source sent (or announced) more bytes than allowed
    OTHER = "other"


@dataclass
class TransferResult:
    """What happened to one :class:`TransferJob`; a failed one says why in ``reason`` (and ``error`` in words)."""

    job: TransferJob
    ok: bool
    skipped: bool = False
    bytes: int = 0
    seconds: float = 0.0
    digest: Optional[str] = None
    error: Optional[str] = None
    reason: Optional[FailureReason] = None

    def __post_init__(self) -> None:
        if not self.ok and self.reason is None:
            self.reason = FailureReason.OTHER
