"""Planet's APIs: the HTTP client (Data, Orders v2, Basemaps), search filters and retry rules.

Importing this package is cheap; :class:`PlanetClient` (which needs httpx) is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowzero.planet.errors import OrderSubmissionUncertain
from flowzero.planet.filters import build_search_filter

if TYPE_CHECKING:
    from flowzero.planet.client import PlanetClient

__all__ = ["OrderSubmissionUncertain", "PlanetClient", "build_search_filter"]


def __getattr__(name: str) -> Any:
    if name == "PlanetClient":
        from flowzero.planet.client import PlanetClient

        return PlanetClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
