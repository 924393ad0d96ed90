"""Planet-specific errors that callers branch on (importing this module pulls in nothing heavy)."""

from __future__ import annotations

from flowzero.errors import PlanetError


class OrderSubmissionUncertain(PlanetError):
    """An order request may have reached Planet but no answer came back (read timeout, dropped reply, 5xx).

    Sending it again could order (and pay for) the same imagery twice, so the client never does. The ordering
    layer reconciles instead: it lists orders named ``order_name`` and adopts the one it finds, if any.
    """

    def __init__(self, order_name: str, reason: str, status_code: int | None = None) -> None:
        super().__init__(
            f"order '{order_name}' may or may not have been created: {reason}",
            hint="flowzero checks Planet for an order of this name before ordering it again",
            status_code=status_code,
        )
        self.order_name = order_name
        self.reason = reason


class ResponseTooLarge(PlanetError):
    """An answer larger than the client reads (flowzero.planet.client.MAX_BODY_BYTES): refused, never buffered."""
