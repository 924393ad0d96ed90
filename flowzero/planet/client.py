"""One HTTP client for Planet's Data, Orders v2 and Basemaps APIs (or the local sandbox that mimics them).

One :class:`PlanetClient` per process: it holds a pooled ``httpx.Client`` sized for concurrent status checks,
paces every request to its endpoint class's rate (:mod:`flowzero.pacing`; a 429 slows the class and is retried
within ``throttle_budget`` seconds without using up the retries), authenticates with the API key as the basic-auth
user name on the configured Planet origins only (never on download links or any other host), retries transient
failures (see :mod:`flowzero.planet.retry`), follows each API's pagination within bounds, reads no body larger than
:data:`MAX_BODY_BYTES`, and turns every failure into a :class:`~flowzero.errors.PlanetError` whose text never
contains the key or a download token.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import quote, urlsplit

import httpx

from flowzero import __version__
from flowzero.errors import AuthError, PlanetError, UsageError
from flowzero.models import FINAL_STATES
from flowzero.pacing import Pacer, RateLimiter, RateLimits, ThrottleBudget, key_scope, refusal_wait
from flowzero.planet.errors import OrderSubmissionUncertain, ResponseTooLarge
from flowzero.planet.retry import (
    NOT_SENT_ERRORS,
    REFUSED_STATUSES,
    RETRYABLE_STATUSES,
    RetryPolicy,
    backoff_delay,
    build_retrying,
    throttle_hint,
)
from flowzero.redact import RedactingFilter, add_secret, redact, redact_url

if TYPE_CHECKING:
    from flowzero.config import Config

__all__ = ["MAX_PAGE_SIZE", "OrderSubmissionUncertain", "PlanetClient"]

log = logging.getLogger("flowzero.planet")

MAX_PAGE_SIZE = 250
POOL_SIZE = 16
_DETAIL_LIMIT = 400
MAX_BODY_BYTES = 64 * 1024 * 1024  # an API answer or manifest larger than this is refused, never held in memory
MAX_PAGES = 2000  # 500,000 scenes at 250 a page; a longer chain of next links is a server gone wrong
LONG_WAIT = 10.0  # seconds: a 429 wait longer than this is said out loud
# Planet's ids (order ids are UUIDs): one path segment, never a way to another path.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the unit credentials are scoped to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def path_segment(value: str, what: str) -> str:
    """``value`` as one URL path segment, or a UsageError if it is not an id Planet could have issued."""
    text = str(value)
    if not _ID.match(text) or ".." in text:
        raise UsageError(f"{redact(text)[:80]!r} is not a valid {what}",
                         hint=f"a {what} is letters, digits, '-', '_', '.' or ':' (e.g. a UUID)")
    return quote(text, safe="")


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
        rate_limits: RateLimits | None = None,
        throttle_budget: float = 600.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise AuthError("no Planet API key", hint="set PL_API_KEY or pass --api-key")
        add_secret(api_key)
        _guard_library_logs()
        self._cancelled = threading.Event()
        self._held = threading.local()  # .pacer: a slot this thread waited for ahead of its request (hold_slot)
        sleep = self._interruptible_sleep if sleep is None else sleep
        self.api_url = api_url.rstrip("/")
        self.orders_url = orders_url.rstrip("/")
        self.basemaps_url = basemaps_url.rstrip("/")
        # The key goes to these origins only: not to download links, storage hosts or any link a body names.
        self._origins = {origin(u) for u in (self.api_url, self.orders_url, self.basemaps_url)}
        self._auth = httpx.BasicAuth(api_key, "")
        self.policy = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max,
                                  retry_after_cap=retry_after_cap, sleep=sleep)
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self.throttle_budget = throttle_budget
        # No limits given: not paced (unit tests, embedding code); from_config always passes the configured ones.
        self.limiter = RateLimiter(rate_limits or RateLimits.unpaced(),
                                   key_scope(api_key, "{}://{}:{}".format(*origin(self.orders_url))))
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.Client(
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
            "timeout": planet.timeout, "max_retries": planet.max_retries, "rate_limits": planet.rate_limits,
            "throttle_budget": planet.throttle_budget,
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
        """Release pooled connections (and the pacing files)."""
        self._http.close()
        self.limiter.close()

    # -- transport -----------------------------------------------------------------------------------------

    def hold_slot(self, endpoint: str) -> None:
        """Wait for the next slot of ``endpoint``'s class now; this thread's next request of that class uses it.

        For a caller that decides *what* to ask only when it may ask: the poller picks the order most due at its
        slot, not the one that was most due when it joined the queue for it."""
        pacer = self.limiter.pacer(endpoint)
        if pacer is not None:
            pacer.wait(self._cancelled)
        self._held.pacer = pacer

    def _attempt(self, method: str, url: str, download: bool, pacer: Optional[Pacer],
                 follow_redirects: bool = False, **kwargs: Any) -> httpx.Response:
        """One paced request; the body is read here, within :data:`MAX_BODY_BYTES`."""
        # Built (an order's JSON can be large) before the slot is taken, so that it is sent as the slot starts.
        request = self._http.build_request(method, url, **kwargs)
        shown = redact_url(str(request.url)) if download else redact(str(request.url))
        auth = self._auth if not download and origin(str(request.url)) in self._origins else None
        held = getattr(self._held, "pacer", None)
        if pacer is not None and held is pacer:
            self._held.pacer = None  # its slot was waited for in hold_slot
        elif pacer is not None:
            pacer.wait(self._cancelled)
        if self._cancelled.is_set():
            raise PlanetError("stopped: the run was interrupted")
        started = time.perf_counter()
        try:
            response = self._http.send(request, auth=auth, follow_redirects=follow_redirects, stream=True)
            try:
                content = _read_capped(response, f"{method} {_endpoint(url)}")
            finally:
                response.close()
        except httpx.TransportError as exc:
            log.debug("%s %s -> %s (%d ms)", method, shown, type(exc).__name__,
                      (time.perf_counter() - started) * 1000)
            raise
        log.debug("%s %s -> %d (%d ms)", method, shown, response.status_code,
                  (time.perf_counter() - started) * 1000)
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              request=response.request)

    def _request(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        idempotent: bool = True,
        download: bool = False,
        order_name: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with pacing and retries; return a 2xx response or raise the PlanetError that explains the failure.

        ``endpoint`` is the rate-limit class (flowzero.pacing.ENDPOINT_CLASSES). A 429 is flow control: the class
        slows down and the request is sent again, for up to ``throttle_budget`` seconds, without using up the
        retries meant for real failures. ``download`` marks URLs that carry tokens (sent without the key, their
        query string never logged). A non-idempotent request (creating an order) that may have reached the
        server raises OrderSubmissionUncertain."""
        label = f"{method} {_endpoint(url)}"
        pacer = self.limiter.pacer(endpoint)
        budget = ThrottleBudget(self.throttle_budget, self._clock)
        while True:
            retrying = build_retrying(self.policy, idempotent, label)
            try:
                response: httpx.Response = retrying(self._attempt, method, url, download, pacer, **kwargs)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise PlanetError(f"{label}: {redact(str(exc))}",
                                  hint="planet.*_url settings need http:// or https://") from None
            except ResponseTooLarge as exc:
                if not idempotent:  # the order may exist all the same: settled by name, never re-sent
                    raise OrderSubmissionUncertain(order_name, exc.message) from None
                raise
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {redact(str(exc)) or 'no detail'}"
                if not idempotent and not isinstance(exc, NOT_SENT_ERRORS):
                    raise OrderSubmissionUncertain(order_name, f"{label} got no answer ({reason})") from exc
                tries = self.policy.max_retries + 1
                raise PlanetError(f"could not reach Planet: {label} failed {tries} time(s) ({reason})",
                                  hint="check the network and planet.*_url settings; rerun to resume") from exc
            if response.status_code != 429:
                return self._check(response, label, idempotent, order_name)
            self._wait_out_refusal(response, label, pacer, budget)

    def _wait_out_refusal(self, response: httpx.Response, label: str, pacer: Optional[Pacer],
                          budget: ThrottleBudget) -> None:
        """After a 429: slow the class down (or back off, unpaced) and wait, unless that breaks the budget."""
        hint = throttle_hint(response.headers, response.text)
        wait = refusal_wait(pacer, hint, backoff_delay(self.policy, budget.refusals + 1))
        if not budget.charge(wait):
            if hint is not None and hint > budget.seconds - budget.spent:
                why = (f"Planet asks to wait {hint:,.0f} s (Retry-After), more than the "
                       f"{max(budget.seconds - budget.spent, 0):,.0f} s left")
            else:
                why = f"Planet kept answering HTTP 429 for {budget.spent:,.1f} s"
            raise PlanetError(f"{label}: rate limited (HTTP 429): {why} of planet.throttle_budget "
                              f"({budget.seconds:g} s)",
                              hint="another program may be using the same API key; rerun later to resume",
                              status_code=429)
        if wait >= LONG_WAIT:
            log.warning("%s: rate limited (HTTP 429); Planet asks to wait %.0f s, waiting", label, wait)
        else:
            log.info("%s: HTTP 429 (rate limited), retrying in %.2f s", label, wait)
        if pacer is None:
            self._sleep(wait)

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

    def _get_json(self, url: str, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self._request("GET", url, endpoint=endpoint, params=params), f"GET {_endpoint(url)}")

    def _pages(self, first: httpx.Response, endpoint: str, items_key: str, next_key: str
               ) -> Iterator[dict[str, Any]]:
        """Items of every page, following ``_links[next_key]`` with GET until it is absent or null.

        Bounded, since nothing a server sends is trusted: a next link to another origin is refused (it would
        receive the key), at most :data:`MAX_PAGES` pages are read, and a page that brings nothing new ends it."""
        label = f"{first.request.method} {_endpoint(str(first.request.url))}"
        home = origin(str(first.request.url))
        seen_links: set[str] = set()
        seen_ids: set[str] = set()
        page = self._json(first, label)
        for _ in range(MAX_PAGES):
            items = page.get(items_key) if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise PlanetError(f"{label}: the answer has no '{items_key}' list", hint="is planet.*_url right?")
            ids = {str(i.get("id")) for i in items if isinstance(i, dict)}
            fresh = not ids <= seen_ids or any(not isinstance(i, dict) for i in items)
            seen_ids |= ids
            yield from items
            links = page.get("_links")
            next_url = links.get(next_key) if isinstance(links, dict) else None
            if not next_url or not isinstance(next_url, str) or next_url in seen_links or not fresh:
                return
            if origin(next_url) != home:
                raise PlanetError(f"{label}: the next page is on another host ({redact(next_url.partition('?')[0])});"
                                  " refused, so the API key is not sent there")
            seen_links.add(next_url)
            page = self._get_json(next_url, endpoint)
        raise PlanetError(f"{label}: more than {MAX_PAGES} pages; stopped",
                          hint="narrow the request (dates, AOI) or check planet.*_url")

    # -- Data API ------------------------------------------------------------------------------------------

    def search(self, item_types: list[str], search_filter: dict, page_size: int = MAX_PAGE_SIZE
               ) -> Iterator[dict[str, Any]]:
        """Every feature matching ``search_filter`` (quick-search, all pages)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise UsageError(f"page size {page_size} is out of range (1..{MAX_PAGE_SIZE})")
        first = self._request("POST", f"{self.api_url}/quick-search", endpoint="data",
                              params={"_page_size": page_size},
                              json={"item_types": list(item_types), "filter": search_filter})
        return self._pages(first, "data", "features", "_next")

    # -- Orders v2 -----------------------------------------------------------------------------------------

    def create_order(self, request: dict) -> dict:
        """Submit an order. Never re-sent once it may have reached Planet: then OrderSubmissionUncertain."""
        name = str(request.get("name") or "")
        response = self._request("POST", self.orders_url, endpoint="orders_create", json=request,
                                 idempotent=False, order_name=name)
        return self._json(response, f"POST {_endpoint(self.orders_url)}")

    def get_order(self, order_id: str) -> dict:
        """The order as Planet describes it now (state, ``_links.results`` ...)."""
        return self._get_json(f"{self.orders_url}/{path_segment(order_id, 'order id')}", "orders_get")

    def cancel_order(self, order_id: str) -> dict:
        """Cancel a queued order (Planet cannot cancel a running one)."""
        url = f"{self.orders_url}/{path_segment(order_id, 'order id')}"
        return self._json(self._request("PUT", url, endpoint="orders_cancel"), f"PUT {_endpoint(url)}")

    def list_orders(self, name: str | None = None) -> Iterator[dict[str, Any]]:
        """Every order (all pages), or only those named ``name``."""
        params = {"name": name} if name else None
        first = self._request("GET", self.orders_url, endpoint="orders_list", params=params)
        return self._pages(first, "orders_list", "orders", "next")

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
        first = self._request("GET", self.basemaps_url, endpoint="basemaps", params=params)
        return self._pages(first, "basemaps", "mosaics", "_next")

    def get_mosaic(self, name: str) -> dict:
        """The mosaic named exactly ``name``."""
        answer = self._get_json(self.basemaps_url, "basemaps", params={"name__is": name})
        found = answer.get("mosaics") if isinstance(answer, dict) else None
        found = [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []
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
        first = self._request("GET", f"{self.basemaps_url}/{path_segment(mosaic_id, 'mosaic id')}/quads",
                              endpoint="basemaps",
                              params={"bbox": f"{lx},{ly},{ux},{uy}", "_page_size": MAX_PAGE_SIZE})
        return self._pages(first, "basemaps", "items", "_next")

    # -- anything else -------------------------------------------------------------------------------------

    def get_json(self, url: str) -> Any:
        """A JSON document behind a download link, e.g. an order's manifest.json: its URL carries a token, so it
        is sent without the API key, paced as a download and logged without its query string. Redirects (to
        storage) are followed."""
        response = self._request("GET", url, endpoint="downloads", download=True, follow_redirects=True)
        return self._json(response, f"GET {_endpoint(url)}")


def _read_capped(response: httpx.Response, label: str) -> bytes:
    """The whole body, or a PlanetError as soon as it passes :data:`MAX_BODY_BYTES` (announced or sent)."""
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > MAX_BODY_BYTES:
        raise ResponseTooLarge(f"{label}: the answer is {int(announced):,} bytes, more than the "
                               f"{MAX_BODY_BYTES // (1024 * 1024)} MiB flowzero reads; refused",
                               status_code=response.status_code)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ResponseTooLarge(f"{label}: the answer is larger than the {MAX_BODY_BYTES // (1024 * 1024)} MiB "
                                   "flowzero reads; refused", status_code=response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)
