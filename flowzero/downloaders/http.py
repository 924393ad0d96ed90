"""Stream one URL into a sink with retries: resume with Range where the server answers 206, restart on 200.

Every request start waits for its slot in the download class's :class:`~flowzero.pacing.Pacer` (Planet allows
5 download requests/s per key). A 429 is flow control: the pacer slows down, the request is sent again, and it
does not use up the retries; only ``throttle_budget`` seconds of refusals fail a file. Transport errors (dropped
connections, timeouts, a stalled source) and 408/425/5xx answers are retried with exponential backoff (honouring
Retry-After); other 4xx answers fail at once (an expired download link will not heal: delivery fetches fresh
ones). Nothing the source sends is trusted: a body longer than the manifest says (or, with no size known, than
``max_unknown_size``) is refused as soon as it shows. Every byte is hashed exactly once as it is written.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import httpx

from flowzero.aws import httpx_verify
from flowzero.downloaders.sinks import Sink
from flowzero.downloaders.verify import StreamHasher
from flowzero.errors import TransferError
from flowzero.models import FailureReason, TransferJob
from flowzero.pacing import Pacer, ThrottleBudget, refusal_wait
from flowzero.planet.retry import throttle_hint
from flowzero.transient import DOWNLOAD_BACKOFF_BASE, DOWNLOAD_BACKOFF_CAP, RETRYABLE_STATUSES

RETRY_STATUS = RETRYABLE_STATUSES - {429}  # 429 is flow control here (see stream_to_sink)
EXPIRED_STATUS = frozenset({401, 403, 410})  # a refused link: fresh links from the order may cure it
BACKOFF_BASE = DOWNLOAD_BACKOFF_BASE  # seconds; tests lower it
BACKOFF_MAX = DOWNLOAD_BACKOFF_CAP
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class Cancelled(TransferError):
    """The run is being stopped (Ctrl-C): the transfer ends now and its sink is aborted."""


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Throttled(Exception):
    def __init__(self, hint: float | None) -> None:
        super().__init__("HTTP 429")
        self.hint = hint


@dataclass
class StreamRules:
    """How hard to try and what to accept, from :class:`~flowzero.downloaders.base.DownloadOptions`."""

    max_retries: int = 5
    pacer: Optional[Pacer] = None
    throttle_budget: float = 600.0
    max_unknown_size: int = 4 * 1024**3
    min_speed: int = 1024  # bytes/s below which, for ``stall_seconds``, the source counts as stalled
    stall_seconds: float = 60.0


def make_http_client(max_workers: int, timeout: float) -> httpx.Client:
    """One pooled client for all workers; identity encoding so byte offsets mean file offsets. It carries no
    credentials at all: download links authorize with their token, and redirects lead to storage hosts."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        limits=httpx.Limits(max_connections=max_workers * 2, max_keepalive_connections=max_workers),
        follow_redirects=True,
        headers={"Accept-Encoding": "identity", "User-Agent": "flowzero"},
        verify=httpx_verify(),
    )


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): Retry-After, else the downloads' "equal jitter"
    backoff (flowzero.transient; the Rust core's is the same)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), BACKOFF_MAX)
    return min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX) * (0.5 + random.random() / 2)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def stream_to_sink(client: httpx.Client, job: TransferJob, sink: Sink, hasher: StreamHasher, rules: StreamRules,
                   progress: Callable[[int], None] | None = None, cancel: threading.Event | None = None) -> None:
    """Fetch ``job.url`` completely into ``sink``; raises :class:`TransferError` (with its ``reason``) when the
    file cannot be had. ``cancel`` is checked between chunks and while waiting, so a stopped run ends at once."""
    cancel = cancel or threading.Event()
    name = job.name or "file"
    attempt = 0
    budget = ThrottleBudget(rules.throttle_budget)
    while True:
        if rules.pacer is not None:
            rules.pacer.wait(cancel)
        try:
            _attempt(client, job, sink, hasher, rules, progress, cancel)
            return
        except _Throttled as exc:
            wait = refusal_wait(rules.pacer, exc.hint, backoff_delay(budget.refusals + 1))
            if not budget.charge(wait):
                raise TransferError(f"{name}: rate limited (HTTP 429) for {budget.spent:.0f} s, beyond "
                                    f"planet.throttle_budget ({rules.throttle_budget:g} s)",
                                    reason=FailureReason.RATE_LIMITED) from None
            if rules.pacer is None and cancel.wait(wait):
                raise Cancelled(f"{name}: cancelled") from None
        except (_Retry, httpx.TransportError) as exc:
            attempt += 1
            reason = str(exc) if isinstance(exc, _Retry) else f"{type(exc).__name__}"
            if attempt > rules.max_retries:
                raise TransferError(f"{name}: gave up after {attempt} attempts ({reason})") from None
            if cancel.wait(backoff_delay(attempt, exc.retry_after if isinstance(exc, _Retry) else None)):
                raise Cancelled(f"{name}: cancelled") from None
        if cancel.is_set():
            raise Cancelled(f"{name}: cancelled")


def _restart(sink: Sink, hasher: StreamHasher, progress: Callable[[int], None] | None) -> None:
    if progress and sink.offset:
        progress(-sink.offset)
    sink.reset()
    hasher.reset()


def _too_large(job: TransferJob, message: str) -> TransferError:
    return TransferError(f"{job.name or 'file'}: {message}", reason=FailureReason.TOO_LARGE)


def _check_status(response: httpx.Response, job: TransferJob, sink: Sink, hasher: StreamHasher,
                  progress: Callable[[int], None] | None) -> None:
    """Decide from the status whether (and from where) to read the body; raise what the answer means."""
    status = response.status_code
    if status == 206 and sink.offset:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != sink.offset:
            _restart(sink, hasher, progress)
            raise _Retry("server resumed at the wrong offset")
    elif status in (200, 206):
        if sink.offset:  # the server ignored Range: start over cleanly
            _restart(sink, hasher, progress)
    elif status == 416:
        _restart(sink, hasher, progress)
        raise _Retry("range not satisfiable")
    elif status == 429:
        raise _Throttled(throttle_hint(response.headers, _start_of_body(response)))
    elif status in RETRY_STATUS:
        raise _Retry(f"HTTP {status}", _retry_after(response))
    elif status in EXPIRED_STATUS:
        raise TransferError(f"{job.name or 'file'}: HTTP {status} (the download link may have expired)",
                            reason=FailureReason.EXPIRED_LINK)
    else:
        raise TransferError(f"{job.name or 'file'}: HTTP {status}")


def _attempt(client: httpx.Client, job: TransferJob, sink: Sink, hasher: StreamHasher, rules: StreamRules,
             progress: Callable[[int], None] | None, cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled(f"{job.name or 'file'}: cancelled")
    headers = {"Range": f"bytes={sink.offset}-"} if sink.offset else {}
    limit = job.size if job.size is not None else rules.max_unknown_size
    with client.stream("GET", job.url, headers=headers) as response:
        _check_status(response, job, sink, hasher, progress)
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and sink.offset + int(announced) > limit:
            raise _too_large(job, f"the source announces {sink.offset + int(announced):,} bytes, "
                                  f"{_limit_text(job, limit)}")
        # Chunks as they arrive (at most 64 KiB each): asking httpx for bigger chunks makes it hold back what
        # it has read until a chunk is full, and a dropped connection would then lose those bytes instead of
        # resuming after them. Small reads also let a cancel be noticed promptly.
        window_start, window_bytes = time.monotonic(), 0
        for chunk in response.iter_raw():
            if cancel.is_set():
                raise Cancelled(f"{job.name or 'file'}: cancelled")
            if sink.offset + len(chunk) > limit:
                raise _too_large(job, f"the source sent more than {limit:,} bytes, {_limit_text(job, limit)}")
            sink.write(chunk)
            hasher.update(chunk)
            if progress:
                progress(len(chunk))
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= rules.stall_seconds:
                if window_bytes < rules.min_speed * (now - window_start):
                    raise _Retry(f"stalled: {window_bytes} bytes in {now - window_start:.0f} s")
                window_start, window_bytes = now, 0
    if job.size is not None and sink.offset < job.size:
        raise _Retry(f"short body: {sink.offset} of {job.size} bytes")


def _start_of_body(response: httpx.Response, limit: int = 4096) -> str:
    """The first bytes of a streamed error answer (Planet's 429 says how long to wait), never more."""
    data = b""
    for chunk in response.iter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace")


def _limit_text(job: TransferJob, limit: int) -> str:
    if job.size is not None:
        return f"the manifest says {job.size:,}"
    return f"more than downloads.max_unknown_size_mib allows for a file of unknown size ({limit:,} bytes)"
