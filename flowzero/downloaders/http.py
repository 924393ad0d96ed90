"""Stream one URL into a sink with retries: resume with Range where the server answers 206, restart on 200.

Transport errors (dropped connections, timeouts) and 408/425/429/5xx answers are retried with exponential
backoff (honouring Retry-After); other 4xx answers fail at once (an expired download link will not heal).
Every byte is hashed exactly once as it is written; a restart resets the hash with the sink.
"""

from __future__ import annotations

import random
import re
import threading
from typing import Callable

import httpx

from flowzero.aws import httpx_verify
from flowzero.downloaders.sinks import Sink
from flowzero.downloaders.verify import EXPIRED_MARK, StreamHasher
from flowzero.errors import TransferError
from flowzero.models import TransferJob

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5  # seconds; tests lower it
BACKOFF_MAX = 30.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class Cancelled(TransferError):
    """The run is being stopped (Ctrl-C): the transfer ends now and its sink is aborted."""


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def make_http_client(max_workers: int, timeout: float) -> httpx.Client:
    """One pooled client for all workers; identity encoding so byte offsets mean file offsets."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        limits=httpx.Limits(max_connections=max_workers * 2, max_keepalive_connections=max_workers),
        follow_redirects=True,
        headers={"Accept-Encoding": "identity", "User-Agent": "flowzero"},
        verify=httpx_verify(),
    )


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential with jitter, or Retry-After."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), BACKOFF_MAX)
    return min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX) * (0.5 + random.random() / 2)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def stream_to_sink(client: httpx.Client, job: TransferJob, sink: Sink, hasher: StreamHasher,
                   max_retries: int, progress: Callable[[int], None] | None = None,
                   cancel: threading.Event | None = None) -> None:
    """Fetch ``job.url`` completely into ``sink``; raises :class:`TransferError` once retries are spent.

    ``cancel`` is checked between chunks and during backoff, so a stopped run ends within one chunk."""
    cancel = cancel or threading.Event()
    attempt = 0
    while True:
        try:
            _attempt(client, job, sink, hasher, progress, cancel)
            return
        except (_Retry, httpx.TransportError) as exc:
            attempt += 1
            reason = str(exc) if isinstance(exc, _Retry) else f"{type(exc).__name__}"
            if attempt > max_retries:
                name = job.name or "file"
                raise TransferError(f"{name}: gave up after {attempt} attempts ({reason})") from None
            if cancel.wait(backoff_delay(attempt, exc.retry_after if isinstance(exc, _Retry) else None)):
                raise Cancelled(f"{job.name or 'file'}: cancelled") from None


def _restart(sink: Sink, hasher: StreamHasher, progress: Callable[[int], None] | None) -> None:
    if progress and sink.offset:
        progress(-sink.offset)
    sink.reset()
    hasher.reset()


def _attempt(client: httpx.Client, job: TransferJob, sink: Sink, hasher: StreamHasher,
             progress: Callable[[int], None] | None, cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled(f"{job.name or 'file'}: cancelled")
    headers = {"Range": f"bytes={sink.offset}-"} if sink.offset else {}
    with client.stream("GET", job.url, headers=headers) as response:
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
        elif status in RETRY_STATUS:
            raise _Retry(f"HTTP {status}", _retry_after(response))
        else:
            expired = status in (401, 403, 410)
            hint = f" ({EXPIRED_MARK})" if expired else ""
            raise TransferError(f"{job.name or 'file'}: HTTP {status}{hint}")
        # Chunks as they arrive (at most 64 KiB each): asking httpx for bigger chunks makes it hold back what
        # it has read until a chunk is full, and a dropped connection would then lose those bytes instead of
        # resuming after them. Small reads also let a cancel be noticed promptly.
        for chunk in response.iter_raw():
            if cancel.is_set():
                raise Cancelled(f"{job.name or 'file'}: cancelled")
            sink.write(chunk)
            hasher.update(chunk)
            if progress:
                progress(len(chunk))
    if job.size is not None and sink.offset < job.size:
        raise _Retry(f"short body: {sink.offset} of {job.size} bytes")
