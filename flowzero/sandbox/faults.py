"""Fault switches and the request log, shared by every handler thread.

Counters ("the next N requests") are decremented under one lock, so N concurrent requests see exactly N
faults.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from flowzero.sandbox.limits import PLANET_RATES

OUTCOMES = ("success", "partial", "failed", "cancelled")

# name -> (kind, default). Kinds: count (int >= 0), statuses (a count, or a list of 4xx/5xx statuses),
# flag (bool), number (int >= 0), rates (false, true for Planet's, or {endpoint class: requests/s}),
# per_class (a number of ms for every endpoint class, or {endpoint class: ms}).
_SWITCHES: dict[str, tuple[str, Any]] = {
    "rate_limit": ("count", 0),  # next N API requests: 429 with Retry-After
    "retry_after": ("number", 1),  # seconds in that Retry-After header
    "server_errors": ("statuses", 503),  # next N API requests: 503 (or each status of a given list in turn)
    "download_errors": ("statuses", 503),  # the same for download requests
    "drop_mid_body": ("count", 0),  # next N downloads: connection reset at 50 % of the body
    "short_body": ("count", 0),  # next N downloads: full Content-Length, clean close after 75 % of the body
    "flip_byte": ("count", 0),  # next N downloads: the middle byte of the body is flipped
    "ignore_range": ("flag", False),  # answer ranged GETs with 200 and the whole body
    "slow_ms": ("number", 0),  # delay before every response
    "create_order_delay_ms": ("number", 0),  # delay before an order POST creates the order (not listed meanwhile)
    "expire_links": ("flag", False),  # one-shot: every download link issued so far expires now
    "order_polls_per_state": ("number", 1),  # order GETs per step queued -> running -> final; 0: at once
    # Planet as it really is (flowzero.sandbox.limits): per-key, per-endpoint rates in a sliding window ...
    "planet_limits": ("rates", None),
    "planet_limits_retry_after": ("flag", False),  # ... whose 429s carry Retry-After (Planet's often do not)
    "latency_ms": ("per_class", None),  # server time per endpoint class, e.g. {"data": 500, "orders_get": 150}
    "redirect_downloads": ("flag", False),  # download links answer 302 to a storage host on another origin
}


class Faults:
    """The current switches; ``apply`` validates and sets them, ``take`` consumes one count atomically."""

    def __init__(self, polls_per_state: int = 1) -> None:
        self._lock = threading.Lock()
        self._default_polls = polls_per_state
        self._values: dict[str, Any] = {}
        self._outcomes: deque[str] = deque()
        self.reset()

    def reset(self) -> None:
        """Every switch back to its default; queued order outcomes are dropped too."""
        with self._lock:
            self._values = {name: ([] if kind == "statuses" else default)
                            for name, (kind, default) in _SWITCHES.items()}
            self._values["order_polls_per_state"] = self._default_polls
            self._outcomes.clear()

    def apply(self, switches: dict[str, Any]) -> dict[str, Any]:
        """Set switches (all or none: a bad value raises ValueError); returns the new state.

        ``expire_links`` is an action rather than a state: it is reported back as True once and the caller
        acts on it (see :meth:`pop_expire_links`).
        """
        parsed = {name: _parse(name, value) for name, value in switches.items()}
        with self._lock:
            self._values.update(parsed)
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = {k: (type(v)(v) if isinstance(v, (list, dict)) else v) for k, v in self._values.items()}
            data["next_order_outcomes"] = list(self._outcomes)
            return data

    def take(self, name: str) -> bool:
        """True if the counter ``name`` was above zero (and is now one less)."""
        with self._lock:
            if self._values[name] > 0:
                self._values[name] -= 1
                return True
            return False

    def take_status(self, name: str) -> int | None:
        """The next queued error status of ``server_errors`` / ``download_errors``, if any."""
        with self._lock:
            queue = self._values[name]
            return queue.pop(0) if queue else None

    def get(self, name: str) -> Any:
        with self._lock:
            return self._values[name]

    def pop_expire_links(self) -> bool:
        with self._lock:
            fired, self._values["expire_links"] = self._values["expire_links"], False
            return bool(fired)

    def queue_outcome(self, outcome: str, count: int = 1) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        with self._lock:
            self._outcomes.extend([outcome] * count)

    def next_outcome(self) -> str:
        with self._lock:
            return self._outcomes.popleft() if self._outcomes else "success"


def _parse(name: str, value: Any) -> Any:
    if name not in _SWITCHES:
        raise ValueError(f"unknown fault switch {name!r} (known: {', '.join(sorted(_SWITCHES))})")
    kind, default = _SWITCHES[name]
    if kind in ("rates", "per_class"):
        return _per_class(name, kind, value)
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return value
    if kind == "statuses":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return [default] * value
        if isinstance(value, list) and all(isinstance(s, int) and 400 <= s <= 599 for s in value):
            return list(value)
        raise ValueError(f"{name} must be a count or a list of HTTP error statuses, not {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")


def _per_class(name: str, kind: str, value: Any) -> dict[str, float] | None:
    """A ``rates`` or ``per_class`` switch as {endpoint class: number}, or None when off."""
    if value is None or value is False:
        return None
    if value is True and kind == "rates":
        return dict(PLANET_RATES)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 and kind == "per_class":
        return {endpoint: float(value) for endpoint in PLANET_RATES}
    if isinstance(value, dict) and all(k in PLANET_RATES and isinstance(v, (int, float))
                                       and not isinstance(v, bool) and v >= 0 for k, v in value.items()):
        return {k: float(v) for k, v in value.items()}
    what = "true, false or" if kind == "rates" else "a number of ms or"
    raise ValueError(f"{name} must be {what} an object of endpoint class: number "
                     f"(classes: {', '.join(PLANET_RATES)}), not {value!r}")


class RequestLog:
    """The last requests (method, path without its query, status), newest last, for tests to assert on."""

    def __init__(self, size: int = 20000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._entries.append({"method": method, "path": path, "status": status, "time": time.time()})

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
