"""Planet's per-endpoint rate limits as the sandbox enforces them, and the statistics that prove a client kept them.

Planet meters every API key per endpoint class in a sliding window: above the rate it answers 429 with
``{"message": "max rate reached: retry-in 200ms"}``, often without a Retry-After header. With the ``planet_limits``
switch on, the sandbox does the same (one-second window, accepted requests counted; refusals do not use up the
window). Download links carry a token rather than a key, so downloads are metered per sandbox. Whether limits are on
or not, :class:`Meter` counts requests, refusals and the peak rate of each class, served at ``/_sandbox/stats``.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Any, Optional

# Planet's documented requests per second (Orders API page; API mechanics page for Data API / Basemaps).
PLANET_RATES: dict[str, float] = {"orders_create": 3, "orders_get": 3, "orders_list": 3, "orders_cancel": 3,
                                  "downloads": 5, "data": 10, "basemaps": 10, "destinations": 3}
WINDOW = 1.0  # seconds
DOWNLOADS_KEY = "(download tokens)"

_ORDER = re.compile(r"^/compute/ops/orders/v2/[^/]+/?$")
_QUAD_FILE = re.compile(r"^/basemaps/v1/mosaics/[^/]+/quads/[^/]+/full/?$")


def endpoint_class(method: str, path: str) -> Optional[str]:
    """The class Planet meters ``method path`` under, or None (control paths, the storage host)."""
    if path.startswith("/download/") or _QUAD_FILE.match(path):
        return "downloads"
    if path.startswith("/data/"):
        return "data"
    if path.startswith("/basemaps/"):
        return "basemaps"
    if path.startswith("/destinations/"):
        return "destinations"
    if path.startswith("/compute/ops/orders/v2"):
        if _ORDER.match(path):
            return "orders_cancel" if method == "PUT" else "orders_get"
        return "orders_create" if method == "POST" else "orders_list"
    return None


class _ClassMeter:
    def __init__(self) -> None:
        self.accepted: dict[str, deque[float]] = {}  # key -> accepted request times within the window
        self.requests = 0
        self.refused = 0
        self.peak = 0
        self.first: Optional[float] = None
        self.last: Optional[float] = None


class Meter:
    """Counts every metered request; with ``rates`` given, refuses those above them (see :meth:`admit`)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._classes: dict[str, _ClassMeter] = {}
        self.storage_requests = 0
        self.storage_with_authorization = 0

    def admit(self, endpoint: str, key: str, rates: Optional[dict[str, float]]) -> Optional[float]:
        """Record one request; None if it may proceed, else the seconds until the window lets one in."""
        now = self._clock()
        with self._lock:
            meter = self._classes.setdefault(endpoint, _ClassMeter())
            meter.requests += 1
            window = meter.accepted.setdefault(key, deque())
            while window and window[0] <= now - WINDOW:
                window.popleft()
            limit = (rates or {}).get(endpoint)
            if limit is not None and limit > 0 and len(window) >= limit:
                meter.refused += 1
                return max(0.0, window[0] + WINDOW - now)
            window.append(now)
            meter.peak = max(meter.peak, len(window))
            meter.first = now if meter.first is None else meter.first
            meter.last = now
            return None

    def storage(self, authorized: bool) -> None:
        """A request reached the storage host (the target of download redirects)."""
        with self._lock:
            self.storage_requests += 1
            self.storage_with_authorization += int(authorized)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            classes = {
                name: {"requests": m.requests, "refused": m.refused, "accepted": m.requests - m.refused,
                       "peak_per_window": m.peak,
                       "span_seconds": round((m.last or 0.0) - (m.first or 0.0), 3)}
                for name, m in sorted(self._classes.items())
            }
            total = sum(m.requests for m in self._classes.values())
            refused = sum(m.refused for m in self._classes.values())
            return {"window_seconds": WINDOW, "classes": classes, "requests": total, "refused": refused,
                    "storage": {"requests": self.storage_requests,
                                "with_authorization": self.storage_with_authorization}}

    def reset(self) -> None:
        with self._lock:
            self._classes.clear()
            self.storage_requests = 0
            self.storage_with_authorization = 0


def refusal_message(wait: float) -> str:
    """Planet's text for a refused request."""
    return f"max rate reached: retry-in {max(1, round(wait * 1000))}ms"
