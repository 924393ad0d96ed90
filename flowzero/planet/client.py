"""One HTTP client for Planet's Data, Orders v2 and Basemaps APIs (or the local sandbox that mimics them).

One :class:`PlanetClient` per process: it holds a pooled ``httpx.Client`` sized for concurrent status checks,
authenticates with the API key as the basic-auth user name, retries transient failures (see
:mod:`flowzero.planet.retry`), follows each API's pagination, and turns every failure into a
:class:`~flowzero.errors.PlanetError` whose text never contains the key or a download token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

import httpx

from flowzero import __version__
from flowzero.errors import AuthError, PlanetError, UsageError
from flowzero.models import FINAL_STATES
from flowzero.planet.errors import OrderSubmissionUncertain
from flowzero.planet.retry import (
    NOT_SENT_ERRORS,
    REFUSED_STATUSES,
    RETRYABLE_STATUSES,
    RetryPolicy,
    build_retrying,
)
from flowzero.redact import RedactingFilter, add_secret, redact, redact_url

if TYPE_CHECKING:
    from flowzero.config import Config

__all__ = ["MAX_PAGE_SIZE", "OrderSubmissionUncertain", "PlanetClient"]

log = logging.getLogger("flowzero.planet")

MAX_PAGE_SIZE = 250
POOL_SIZE = 16
_DETAIL_LIMIT = 400


def _endpoint(url: str) -> str:
    """A URL as it may appear in an error: no query string (tokens, page markers), secrets redacted."""
    return redact(url.partition("?")[0])


def _error_detail(response: httpx.Response) -> str:
    """Planet's own explanation from an error body: ``message``, ``general[]`` and ``field{}`` entries as it
    returns them, else the body text, trimmed and redacted."""
    parts: list[str] = []
    try:
        body = response.json()
    except ValueError:
        body = None

    def text_of(entry: Any) -> str:
        if isinstance(entry, dict):
            return str(entry.get("message") or entry.get("detail") or "").strip()
        return str(entry).strip()

    if isinstance(body, dict):
        for key in ("message", "detail"):
            if isinstance(body.get(key), str) and body[key].strip():
                parts.append(body[key].strip())
        for entry in body.get("general") or []:
            if text_of(entry):
                parts.append(text_of(entry))
        fields = body.get("field")
        if isinstance(fields, dict):
            for name, entries in fields.items():
                for entry in entries if isinstance(entries, list) else [entries]:
                    if text_of(entry):
                        parts.append(f"{name}: {text_of(entry)}")
        for entry in body.get("errors") or []:
            if text_of(entry):
                parts.append(text_of(entry))
    detail = "; ".join(dict.fromkeys(parts)) or " ".join(response.text.split())
    if len(detail) > _DETAIL_LIMIT:
        detail = detail[: _DETAIL_LIMIT - 3] + "..."
    return redact(detail)


# httpx logs every request URL at INFO (download URLs carry tokens); httpcore logs response headers at DEBUG.
_LIBRARY_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


def _guard_library_logs() -> None:
    """Redact what httpx and httpcore log, whoever configures logging (the CLI, a test, an embedding app)."""
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


class PlanetClient:
    """Planet's APIs with pooling, retries and pagination. Use :meth:`from_config`; close it when done."""

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str,
        orders_url: str,
        basemaps_url: str,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_cap: float = 120.0,
        poll_interval: float = 2.0,
        poll_max: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise AuthError("no Planet API key", hint="set PL_API_KEY or pass --api-key")
        add_secret(api_key)
        _guard_library_logs()
        self._cancelled = threading.Event()
        sleep = self._interruptible_sleep if sleep is None else sleep
        self.api_url = api_url.rstrip("/")
        self.orders_url = orders_url.rstrip("/")
        self.basemaps_url = basemaps_url.rstrip("/")
        self.policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max,
                                  retry_after_cap=retry_after_cap, sleep=sleep)
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
            auth=httpx.BasicAuth(api_key, ""),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
            headers={"User-Agent": f"flowzero/{__version__}", "Accept": "application/json"},
            transport=transport,
        )

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise PlanetError("stopped: the run was interrupted")

    def cancel(self) -> None:
        """Wake every thread sleeping in a poll or a retry backoff and make it stop (used on Ctrl-C)."""
        self._cancelled.set()

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> PlanetClient:
        """The client for ``config`` (URLs, timeout, retries); ``options`` override constructor defaults."""
        planet = config.planet
        settings: dict[str, Any] = {
            "api_url": planet.api_url, "orders_url": planet.orders_url, "basemaps_url": planet.basemaps_url,
            "timeout": planet.timeout, "max_retries": planet.max_retries,
        }
        settings.update(options)
        return cls(config.api_key, **settings)

    def __repr__(self) -> str:
        return f"PlanetClient(api_url={self.api_url!r}, orders_url={self.orders_url!r})"

    def __enter__(self) -> PlanetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    # -- transport -----------------------------------------------------------------------------------------

    def _attempt(self, method: str, url: str, download: bool, follow_redirects: bool = False,
                 **kwargs: Any) -> httpx.Response:
        request = self._http.build_request(method, url, **kwargs)
        shown = redact_url(str(request.url)) if download else redact(str(request.url))
        started = time.perf_counter()
        try:
            response = self._http.send(request, follow_redirects=follow_redirects)
        except httpx.TransportError as exc:
            log.debug("%s %s -> %s (%d ms)", method, shown, type(exc).__name__,
                      (time.perf_counter() - started) * 1000)
            raise
        log.debug("%s %s -> %d (%d ms)", method, shown, response.status_code,
                  (time.perf_counter() - started) * 1000)
        return response

    def _request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool = True,
        download: bool = False,
        order_name: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise the PlanetError that explains the failure.

        ``download`` marks URLs that carry tokens (their query string is never logged). A non-idempotent
        request (creating an order) that may have reached the server raises OrderSubmissionUncertain."""
        label = f"{method} {_endpoint(url)}"
        retrying = build_retrying(self.policy, idempotent, label)
        try:
            response: httpx.Response = retrying(self._attempt, method, url, download, **kwargs)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PlanetError(f"{label}: {redact(str(exc))}",
                              hint="planet.*_url settings need http:// or https://") from None
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {redact(str(exc)) or 'no detail'}"
            if not idempotent and not isinstance(exc, NOT_SENT_ERRORS):
                raise OrderSubmissionUncertain(order_name, f"{label} got no answer ({reason})") from exc
            tries = self.policy.max_retries + 1
            raise PlanetError(f"could not reach Planet: {label} failed {tries} time(s) ({reason})",
                              hint="check the network and planet.*_url settings; rerun to resume") from exc
        return self._check(response, label, idempotent, order_name)

    def _check(self, response: httpx.Response, label: str, idempotent: bool, order_name: str
               ) -> httpx.Response:
        status = response.status_code
        if status < 300:
            return response
        if status == 401:
            raise AuthError("Planet rejected the API key (HTTP 401)",
                            hint="check PL_API_KEY or --api-key", status_code=401)
        detail = _error_detail(response)
        if not idempotent and status in RETRYABLE_STATUSES - REFUSED_STATUSES:
            raise OrderSubmissionUncertain(order_name, f"{label} -> HTTP {status}: {detail}",
                                           status_code=status)
        if status in RETRYABLE_STATUSES:
            raise PlanetError(
                f"{label} still failing after {self.policy.max_retries} retries "
                f"(last: HTTP {status}: {detail})",
                hint="Planet is busy or unavailable; rerun later to resume", status_code=status,
            )
        hint = "check the request; the message above is Planet's" if status in (400, 422) else None
        raise PlanetError(f"{label} -> HTTP {status}: {detail}", hint=hint, status_code=status)

    def _json(self, response: httpx.Response, label: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PlanetError(f"{label} returned a response that is not JSON") from None

    def _get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self._request("GET", url, params=params), f"GET {_endpoint(url)}")

    def _pages(self, first: httpx.Response, items_key: str, next_key: str) -> Iterator[dict[str, Any]]:
        """Items of every page, following ``_links[next_key]`` with GET until it is absent or null."""
        seen: set[str] = set()
        page = self._json(first, f"{first.request.method} {_endpoint(str(first.request.url))}")
        while True:
            yield from page.get(items_key) or []
            next_url = (page.get("_links") or {}).get(next_key)
            if not next_url or next_url in seen:
                return
            seen.add(next_url)
            page = self._get_json(next_url)

    # -- Data API ------------------------------------------------------------------------------------------

    def search(self, item_types: list[str], search_filter: dict, page_size: int = MAX_PAGE_SIZE
               ) -> Iterator[dict[str, Any]]:
        """Every feature matching ``search_filter`` (quick-search, all pages)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise UsageError(f"page size {page_size} is out of range (1..{MAX_PAGE_SIZE})")
        first = self._request("POST", f"{self.api_url}/quick-search", params={"_page_size": page_size},
                              json={"item_types": list(item_types), "filter": search_filter})
        return self._pages(first, "features", "_next")

    # -- Orders v2 -----------------------------------------------------------------------------------------

    def create_order(self, request: dict) -> dict:
        """Submit an order. Never re-sent once it may have reached Planet: then OrderSubmissionUncertain."""
        name = str(request.get("name") or "")
        response = self._request("POST", self.orders_url, json=request, idempotent=False, order_name=name)
        return self._json(response, f"POST {_endpoint(self.orders_url)}")

    def get_order(self, order_id: str) -> dict:
        """The order as Planet describes it now (state, ``_links.results`` ...)."""
        return self._get_json(f"{self.orders_url}/{order_id}")

    def cancel_order(self, order_id: str) -> dict:
        """Cancel a queued order (Planet cannot cancel a running one)."""
        url = f"{self.orders_url}/{order_id}"
        return self._json(self._request("PUT", url), f"PUT {_endpoint(url)}")

    def list_orders(self, name: str | None = None) -> Iterator[dict[str, Any]]:
        """Every order (all pages), or only those named ``name``."""
        params = {"name": name} if name else None
        first = self._request("GET", self.orders_url, params=params)
        return self._pages(first, "orders", "next")

    def wait_order(self, order_id: str, timeout: float | None = None,
                   on_state: Callable[[dict], None] | None = None) -> dict:
        """Poll until the order reaches a final state (success, partial, failed, cancelled) and return it.

        Polls back off from ``poll_interval`` doubling to ``poll_max``; ``on_state`` is called with the order
        whenever its state changes; after ``timeout`` seconds a PlanetError is raised (the order keeps
        going)."""
        deadline = None if timeout is None else self._clock() + timeout
        interval = self.poll_interval
        last_state: str | None = None
        while True:
            order = self.get_order(order_id)
            state = str(order.get("state", ""))
            if state != last_state:
                last_state = state
                if on_state is not None:
                    on_state(order)
            if state in FINAL_STATES:
                return order
            delay = interval
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise PlanetError(f"order {order_id} is still {state or 'pending'} after {timeout:g} s",
                                      hint="it keeps running at Planet; check it again later")
                delay = min(delay, remaining)
            self._sleep(delay)
            interval = min(interval * 2, self.poll_max)

    # -- Basemaps v1 ---------------------------------------------------------------------------------------

    def list_mosaics(self, name_contains: str | None = None, acquired_gt: str | None = None,
                     acquired_lt: str | None = None) -> Iterator[dict[str, Any]]:
        """Every basemap mosaic matching the filters (all pages)."""
        params: dict[str, Any] = {"_page_size": MAX_PAGE_SIZE}
        for key, value in (("name__contains", name_contains), ("acquired__gt", acquired_gt),
                           ("acquired__lt", acquired_lt)):
            if value:
                params[key] = value
        first = self._request("GET", self.basemaps_url, params=params)
        return self._pages(first, "mosaics", "_next")

    def get_mosaic(self, name: str) -> dict:
        """The mosaic named exactly ``name``."""
        found = self._get_json(self.basemaps_url, params={"name__is": name}).get("mosaics") or []
        if not found:
            raise PlanetError(f"no basemap mosaic named '{name}'", status_code=404,
                              hint="list the mosaics you can use with name__contains, e.g. 'global_monthly'")
        return next((m for m in found if m.get("name") == name), found[0])

    def list_quads(self, mosaic_id: str, bbox: tuple[float, float, float, float]) -> Iterator[dict[str, Any]]:
        """Every quad of the mosaic intersecting ``bbox`` (lon/lat: lx, ly, ux, uy), all pages."""
        if len(bbox) != 4:
            raise UsageError(f"a bounding box has 4 numbers (lx, ly, ux, uy), got {len(bbox)}")
        lx, ly, ux, uy = (float(v) for v in bbox)
        if lx > ux or ly > uy:
            raise UsageError(f"bounding box {bbox} has its lower corner above or right of its upper corner")
        first = self._request("GET", f"{self.basemaps_url}/{mosaic_id}/quads",
                              params={"bbox": f"{lx},{ly},{ux},{uy}", "_page_size": MAX_PAGE_SIZE})
        return self._pages(first, "items", "_next")

    # -- anything else -------------------------------------------------------------------------------------

    def get_json(self, url: str) -> Any:
        """A JSON document at an absolute URL, e.g. an order's manifest.json (its URL carries a token, so it
        is logged without its query string). Redirects (to storage) are followed."""
        response = self._request("GET", url, download=True, follow_redirects=True)
        return self._json(response, f"GET {_endpoint(url)}")
