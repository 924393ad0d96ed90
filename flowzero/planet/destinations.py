"""Planet's Destinations API: a bucket's credentials registered with Planet once, then named by reference.

Orders that deliver to ``{"destination": {"ref": "pl:destinations/..."}}`` carry no secret at all, which is why
docs/scaling-out.md (Cloud delivery) recommends registering a destination. The API lives next to the Orders API
(``https://api.planet.com/destinations/v1``); its address is derived from ``planet.orders_url`` so the sandbox is
used whenever the orders are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flowzero.errors import PlanetError
from flowzero.planet.errors import OrderSubmissionUncertain
from flowzero.redact import add_secret

if TYPE_CHECKING:
    from flowzero.planet.client import PlanetClient

DESTINATIONS_PATH = "/destinations/v1"
SECRET_PARAMETERS = frozenset({"access_key_id", "secret_access_key", "aws_access_key_id", "aws_secret_access_key"})


def destinations_url(orders_url: str) -> str:
    """``https://host/compute/ops/orders/v2`` -> ``https://host/destinations/v1``."""
    parts = urlsplit(orders_url)
    return f"{parts.scheme}://{parts.netloc}{DESTINATIONS_PATH}"


class DestinationsClient:
    """Register, list and find destinations through a :class:`PlanetClient` (its auth, retries, redaction)."""

    def __init__(self, planet: PlanetClient, url: str | None = None) -> None:
        self.planet = planet
        self.url = (url or destinations_url(planet.orders_url)).rstrip("/")

    def list(self) -> list[dict[str, Any]]:
        """Every destination of the organisation (Planet answers them on one page)."""
        response = self.planet._request("GET", self.url, endpoint="destinations")
        data = self.planet._json(response, f"GET {self.url}")
        found = data.get("destinations") if isinstance(data, dict) else None
        return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []

    def find(self, ref: str) -> dict[str, Any] | None:
        """The destination whose ``pl:ref`` is ``ref``, if it is registered."""
        return next((d for d in self.list() if d.get("pl:ref") == ref), None)

    def create(self, kind: str, parameters: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """Register a destination; Planet checks it can write to the bucket before it answers."""
        for key in SECRET_PARAMETERS & set(parameters):
            add_secret(str(parameters[key]))
        body: dict[str, Any] = {"type": kind, "parameters": parameters}
        if name:
            body["name"] = name
        try:
            response = self.planet._request("POST", self.url, endpoint="destinations", json=body, idempotent=False,
                                          order_name=name or "")
        except OrderSubmissionUncertain:
            raise PlanetError("Planet did not confirm the new destination",
                              hint="check with `flowzero destinations list` before registering it again") from None
        return self.planet._json(response, f"POST {self.url}")
