"""Pacing requests to Planet's per-endpoint rate limits, shared by every thread and process using one API key.

Planet meters each API key per endpoint class (orders create/get/list/cancel 3 requests/s, downloads 5/s, the Data
API and Basemaps about 10/s, Destinations 3/s) and answers 429 above that. flowzero never aims at the limit: each
class gets a :class:`Pacer` that spaces the starts of its requests ``1 / rate`` apart, where ``rate`` is the
configured limit times :data:`PACE_FRACTION` (arrival jitter on the network must not squeeze four requests into
Planet's one-second window).

The spacing is kept in a small file per (key, class) under ``~/.flowzero/rate/``, locked with ``flock``, so that
several flowzero processes on one machine (three ``batch-check-status`` workers, a ``submit`` beside a delivery)
stay within the key's limits together, and so does the Rust core (``flowzero_fast/src/pace.rs`` reads and writes
the same 16 bytes). The file holds two little-endian f64: ``next_slot``, the unix time before which no request of
the class may start, and ``interval``, the current spacing. A 429 stretches the interval by :data:`BACKOFF` (up to
16 x the base) and pushes ``next_slot`` past Retry-After (or the interval, with jitter); every slot taken wins back
1/10 of the rate: additive increase, multiplicative decrease, which converges for any number of senders, including
processes on other machines that share the key without sharing the file.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

# Endpoint classes Planet meters separately (keys of the ``planet.rate_limits`` config section).
ENDPOINT_CLASSES = ("orders_create", "orders_get", "orders_list", "orders_cancel", "downloads", "data",
                    "basemaps", "destinations")
PACE_FRACTION = 0.95  # of the configured rate: the margin that keeps arrivals inside Planet's window
MAX_BACKOFF_FACTOR = 16.0  # a 429 storm spaces requests at most this many times the base interval
BACKOFF = 1.25  # a 429 stretches the spacing by this much (most 429s of a shared pacer are arrival jitter)
RECOVERY_STEPS = 10  # each slot taken wins back 1/10 of the rate
_STALE_SLOT = 120.0  # a next_slot further ahead than this is a clock jump or garbage: ignored
MIN_REFUSAL_WAIT = 0.05  # seconds: even "Retry-After: 0" is not an invitation to hammer
_TRIES = 16  # rounds a waiter may lose the race for a due slot (to other threads or processes) before reserving one
_RECORD = struct.Struct("<dd")

Sleep = Callable[[float], None]


def _now() -> float:
    return time.time()


@dataclass
class _Spacing:
    """The two numbers of the protocol, normalised against this pacer's base interval."""

    next_slot: float
    interval: float

    @classmethod
    def read(cls, data: bytes, base: float, now: float) -> _Spacing:
        next_slot, interval = _RECORD.unpack(data) if len(data) == _RECORD.size else (0.0, base)
        if not (interval == interval and base <= interval <= base * MAX_BACKOFF_FACTOR):  # NaN, out of range
            interval = base
        if next_slot != next_slot or next_slot > now + _STALE_SLOT:
            next_slot = now
        return cls(next_slot, interval)

    def pack(self) -> bytes:
        return _RECORD.pack(self.next_slot, self.interval)


class Pacer:
    """Spaces the starts of one endpoint class's requests; safe across threads, and across processes with a
    ``path`` (the shared file described in the module docstring). ``rate`` is in requests per second."""

    def __init__(self, rate: float, path: Optional[Path] = None, sleep: Optional[Sleep] = None,
                 clock: Callable[[], float] = _now) -> None:
        if not rate > 0 or rate != rate or rate == float("inf"):
            raise ValueError(f"a pacing rate must be a positive number, not {rate!r}")
        self.rate = rate
        self.base = 1.0 / rate
        self.path = path
        self._sleep = sleep or time.sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._memory = _Spacing(0.0, self.base).pack()
        self._fd: Optional[int] = None
        self.throttles = 0  # 429s reported to this pacer (by this process)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @contextmanager
    def _state(self) -> Iterator[list[_Spacing]]:
        """The spacing, locked for reading and rewriting (flock on the shared file, else this process only); the
        file is written only when the spacing changed (a waiter that takes nothing leaves it alone)."""
        with self._lock:
            fd = self._open()
            if fd is None:
                box = [_Spacing.read(self._memory, self.base, self._clock())]
                yield box
                self._memory = box[0].pack()
                return
            import fcntl  # noqa: PLC0415 (POSIX only: only the shared-file path needs it)

            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = os.pread(fd, _RECORD.size, 0)
                box = [_Spacing.read(data, self.base, self._clock())]
                yield box
                packed = box[0].pack()
                if packed != data:
                    os.pwrite(fd, packed, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> Optional[int]:
        if self.path is None:
            return None
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # an unwritable home: pace this process alone rather than fail the run
                self.path = None
                return None
        return self._fd

    def _taken(self, spacing: _Spacing, now: float) -> tuple[float, _Spacing]:
        """The slot a request taking its turn at ``now`` gets, and the spacing after it (eased towards the base)."""
        slot = max(now, spacing.next_slot)
        recovered = max(self.base, 1.0 / (1.0 / spacing.interval + self.rate / RECOVERY_STEPS))
        return slot, _Spacing(slot + spacing.interval, recovered)

    def take_slot(self) -> tuple[float, float]:
        """Take the next slot: (its unix time, the time it was taken at)."""
        with self._state() as box:
            now = self._clock()
            slot, box[0] = self._taken(box[0], now)
        return slot, now

    def reserve(self) -> float:
        """Take the next slot; the seconds to wait before the request may start (0: now)."""
        slot, now = self.take_slot()
        return slot - now

    def take_when_due(self) -> float:
        """Take the next slot if it has come, at this very time (0.0); else the seconds until it comes, taking
        nothing. A request that starts late pushes the ones after it, instead of bunching up with them."""
        with self._state() as box:
            now = self._clock()
            if now < box[0].next_slot:
                return box[0].next_slot - now
            _, box[0] = self._taken(box[0], now)  # the slot is now: the next one counts from here
        return 0.0

    def wait(self, cancel: Optional[threading.Event] = None) -> None:
        """Block until this request may start (or until ``cancel`` is set).

        Planet counts arrivals, not the slots a client meant: a thread that a busy machine wakes 50 ms late, right
        before one woken on time, would put two requests into less than the spacing. So the slot is taken when it
        has come (:meth:`take_when_due`); waiters that lose the race for it wait for the next one, and after
        :data:`_TRIES` rounds a waiter takes a reserved slot instead, so that the wait always ends."""
        for _ in range(_TRIES):
            delay = self.take_when_due()
            if delay <= 0.0 or self._pause(delay, cancel):
                return
        delay = self.reserve()
        if delay > 0.0:
            self._pause(delay, cancel)

    def _pause(self, seconds: float, cancel: Optional[threading.Event]) -> bool:
        """Sleep; True if the run was cancelled meanwhile."""
        if cancel is not None:
            return cancel.wait(seconds)
        self._sleep(seconds)
        return False

    def throttled(self, retry_after: Optional[float] = None) -> float:
        """A 429 was answered: slow the class down; returns the seconds until the next slot."""
        with self._state() as box:
            spacing = box[0]
            now = self._clock()
            interval = min(spacing.interval * BACKOFF, self.base * MAX_BACKOFF_FACTOR)
            pause = retry_after if retry_after is not None else interval * (1.0 + random.random() / 2.0)
            box[0] = _Spacing(max(spacing.next_slot, now + pause), interval)
            self.throttles += 1
            return box[0].next_slot - now


class ThrottleBudget:
    """How long one request (or one file) may keep meeting 429s: the waits it was asked for and the time that
    passed since the first refusal both count, whichever is more (injected sleeps in tests, real ones in use)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._since: Optional[float] = None
        self._asked = 0.0
        self.refusals = 0

    @property
    def spent(self) -> float:
        passed = 0.0 if self._since is None else self._clock() - self._since
        return max(self._asked, passed)

    def charge(self, wait: float) -> bool:
        """Count one refusal that asks to wait ``wait`` s; False if that would go beyond the budget."""
        if self._since is None:
            self._since = self._clock()
        self.refusals += 1
        if self.spent + wait > self.seconds:
            return False
        self._asked += wait
        return True


def refusal_wait(pacer: Optional[Pacer], hint: Optional[float], backoff: float) -> float:
    """Seconds to wait after a 429: the pacer slows its class down (and says until when), or, unpaced, the
    server's hint (never less than MIN_REFUSAL_WAIT) or else ``backoff``."""
    if pacer is not None:
        return max(pacer.throttled(hint), MIN_REFUSAL_WAIT)
    return backoff if hint is None else max(hint, MIN_REFUSAL_WAIT)


@dataclass
class RateLimits:
    """Requests per second per endpoint class (0: not paced), as the ``planet.rate_limits`` section sets them."""

    orders_create: float = 3.0
    orders_get: float = 3.0
    orders_list: float = 3.0
    orders_cancel: float = 3.0
    downloads: float = 5.0
    data: float = 10.0
    basemaps: float = 10.0
    destinations: float = 3.0

    @classmethod
    def unpaced(cls) -> RateLimits:
        """No class paced (embedding code and unit tests that bring their own server)."""
        return cls(**dict.fromkeys(cls.__dataclass_fields__, 0.0))

    def rate(self, endpoint: str) -> float:
        """The pacing rate of ``endpoint`` (the configured limit times PACE_FRACTION; 0: not paced)."""
        return float(getattr(self, endpoint)) * PACE_FRACTION


def rate_dir() -> Path:
    """Where the shared pacing files live: ``~/.flowzero/rate`` (per user: the key is the user's)."""
    return Path(os.path.expanduser("~/.flowzero/rate"))


def key_scope(api_key: str, origin: str) -> str:
    """A name for one API key at one Planet origin; the key itself is never written anywhere."""
    return hashlib.sha256(f"{origin}\0{api_key}".encode()).hexdigest()[:16]


class RateLimiter:
    """The pacers of one API key, one per endpoint class, made on first use and shared by the whole process."""

    def __init__(self, limits: RateLimits, scope: Optional[str] = None, folder: Optional[Path] = None,
                 sleep: Optional[Sleep] = None) -> None:
        self.limits = limits
        self.scope = scope
        self.folder = folder if folder is not None else rate_dir()
        self._sleep = sleep
        self._pacers: dict[str, Optional[Pacer]] = {}
        self._lock = threading.Lock()

    def file(self, endpoint: str) -> Optional[Path]:
        """The shared file of ``endpoint`` (None when pacing is per process only)."""
        return None if self.scope is None else self.folder / f"{self.scope}-{endpoint}"

    def pacer(self, endpoint: str) -> Optional[Pacer]:
        """The pacer of ``endpoint``, or None when that class is not paced."""
        if endpoint not in ENDPOINT_CLASSES:
            raise ValueError(f"unknown endpoint class {endpoint!r}")
        with self._lock:
            if endpoint not in self._pacers:
                rate = self.limits.rate(endpoint)
                self._pacers[endpoint] = Pacer(rate, self.file(endpoint), self._sleep) if rate > 0 else None
            return self._pacers[endpoint]

    def throttles(self) -> dict[str, int]:
        """429s seen per endpoint class by this process."""
        with self._lock:
            return {name: p.throttles for name, p in self._pacers.items() if p is not None and p.throttles}

    def close(self) -> None:
        with self._lock:
            for pacer in self._pacers.values():
                if pacer is not None:
                    pacer.close()
