"""When and how long to retry a Planet request: transient statuses, transport errors, Retry-After, backoff.

Kept apart from the client so the rules can be read (and tested) on their own. A request is either idempotent
(searches, reads, cancel: any transient failure may be retried) or not (creating an order: only a failure that
proves the server never took the request may be retried). A 429 is not a failure here: the client treats it as
flow control (it slows the endpoint class down and tries again within a time budget, see
:meth:`flowzero.planet.client.PlanetClient._request`), so the retry loop hands it back at once.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

import httpx
import tenacity

from flowzero.transient import REFUSED_STATUSES, RETRYABLE_STATUSES

log = logging.getLogger("flowzero.planet")

# Transport errors raised before a single byte of the request was sent: safe even for creating an order.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                                httpx.UnsupportedProtocol)
# Transport errors that trying again cannot cure (a URL without http://, a request httpx cannot write).
HOPELESS_ERRORS: tuple[type[Exception], ...] = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


@dataclass
class RetryPolicy:
    """How hard to try: ``max_retries`` retries after the first attempt, exponential backoff from
    ``backoff_base`` seconds (doubling, plus up to ``backoff_base`` of jitter) up to ``backoff_max``; a
    server's ``Retry-After`` wins but is capped at ``retry_after_cap``. ``sleep`` is injectable for tests."""

    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_cap: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


def parse_retry_after(value: str | None, cap: float = 120.0, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


_RETRY_IN = re.compile(r"retry-in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


def throttle_hint(headers: httpx.Headers, text: str) -> float | None:
    """How long a 429 asks to wait: ``Retry-After`` (uncapped: the caller weighs it against its budget), else
    the ``retry-in 200ms`` of Planet's message (``text``, the start of the body), else None."""
    after = parse_retry_after(headers.get("Retry-After"), cap=float("inf"))
    if after is not None:
        return after
    match = _RETRY_IN.search(text[:500])
    if match is None:
        return None
    value = float(match.group(1))
    return value / 1000.0 if match.group(2).lower() == "ms" else value


def is_retryable(outcome: httpx.Response | BaseException, idempotent: bool) -> bool:
    """Whether a response or an exception may be retried for a request of this kind (429: never here)."""
    if isinstance(outcome, httpx.Response):
        if outcome.status_code == 429:
            return False
        return outcome.status_code in (RETRYABLE_STATUSES if idempotent else REFUSED_STATUSES)
    if isinstance(outcome, httpx.TransportError) and not isinstance(outcome, HOPELESS_ERRORS):
        return idempotent or isinstance(outcome, NOT_SENT_ERRORS)
    return False


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds before retry number ``attempt``: ``backoff_base`` doubling each time, plus up to
    ``backoff_base`` of random jitter (so parallel clients spread out), never above ``backoff_max``."""
    exponent = min(max(attempt - 1, 0), 62)
    delay = policy.backoff_base * 2.0**exponent + random.uniform(0, policy.backoff_base)
    return min(delay, policy.backoff_max)


def _outcome(state: tenacity.RetryCallState) -> httpx.Response | BaseException:
    assert state.outcome is not None
    exc = state.outcome.exception()
    return exc if exc is not None else state.outcome.result()


def _describe(outcome: httpx.Response | BaseException) -> str:
    if isinstance(outcome, httpx.Response):
        return f"HTTP {outcome.status_code}"
    return type(outcome).__name__


def build_retrying(policy: RetryPolicy, idempotent: bool, label: str) -> tenacity.Retrying:
    """A tenacity loop for one request. The attempt function returns the response (any status) or raises a
    transport error; when retries run out the last response is returned or the last error re-raised, so the
    caller decides what the final failure means."""
    def wait(state: tenacity.RetryCallState) -> float:
        outcome = _outcome(state)
        if isinstance(outcome, httpx.Response):
            after = parse_retry_after(outcome.headers.get("Retry-After"), cap=policy.retry_after_cap)
            if after is not None:
                return after
        return backoff_delay(policy, state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info("%s: %s, retry %d/%d in %.2f s", label, _describe(_outcome(state)), state.attempt_number,
                 policy.max_retries, delay)

    def give_up(state: tenacity.RetryCallState) -> httpx.Response:
        assert state.outcome is not None
        return state.outcome.result()  # the last response, or raises the last transport error

    return tenacity.Retrying(
        sleep=policy.sleep,
        stop=tenacity.stop_after_attempt(max(policy.max_retries, 0) + 1),
        wait=wait,
        retry=lambda state: is_retryable(_outcome(state), idempotent),
        before_sleep=before_sleep,
        retry_error_callback=give_up,
    )
