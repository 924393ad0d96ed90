"""Polling many orders within Planet's order-GET rate: oldest pending first, each on its own backoff.

Planet allows 3 order GETs per second per key. With 300 orders pending, asking about all of them at once would
only earn 429s; :class:`Poller` keeps one schedule instead: every order has a time it is next due (the first poll
at once, then :data:`FIRST_INTERVAL` doubling up to the client's ``poll_max``), of the orders due the one created
first is asked next (so the oldest orders finish first and their delivery starts early), and the client's pacer
spaces the GETs. A few threads keep requests in flight, so the rate and not the latency bounds the pace.

Orders that reach a final state (or are only being looked at, without ``--wait``, or run out of time) come out of
:meth:`Poller.finished` in batches as they are done, so their delivery overlaps with the polls of the others. A
``prepare`` callback readies each finished order for delivery in the polling thread (its manifest is fetched
there), so the main thread's downloads go on meanwhile. Orders can be added while it runs (:meth:`Poller.add`;
:meth:`Poller.seal` says no more will come); when every order in hand has been asked about and none is finished,
:meth:`Poller.finished` yields an empty batch, the caller's cue to take on more.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from flowzero.errors import FlowzeroError
from flowzero.models import FINAL_STATES, Order
from flowzero.redact import redact

POLL_THREADS = 4
FIRST_INTERVAL = 0.5  # seconds before an order is asked about again; doubles each time it is still pending
WAVE = 8  # finished orders handed over at most at once: one downloader run; the rest wait for the next one
_TICK = 0.1  # seconds between looks for Ctrl-C while the main thread waits

Say = Callable[[str], None]


@dataclass
class Polled:
    """One order as the last poll left it: Planet's JSON, or the error that stopped asking."""

    order_id: str
    record: Optional[Order]
    order_json: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    status_code: Optional[int] = None  # Planet's HTTP status when the poll failed
    timed_out: bool = False


@dataclass
class _Due:
    due: float
    age: tuple[str, int]  # (created_at, position): of the orders due, the one created first is asked first
    order_id: str
    record: Optional[Order]
    interval: float
    last_state: Optional[str] = None


class Poller:
    """Polls ``targets`` in background threads; the caller takes finished ones from :meth:`finished`."""

    def __init__(self, planet: Any, targets: Sequence[tuple[str, Optional[Order]]] = (), *, wait: bool,
                 timeout: Optional[float], say: Say, clock: Callable[[], float] = time.monotonic,
                 sealed: bool = True, prepare: Callable[[Polled], Any] = lambda polled: polled) -> None:
        self._planet = planet
        self._prepare = prepare
        self._wait = wait
        self._say = say
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._interval_max = float(getattr(planet, "poll_max", 30.0))
        self._pending: list[_Due] = []
        self._added = 0
        self._in_flight = 0
        self._sealed = False
        self._unfinished_polls = 0  # polls since an order last finished (or more were added)
        self._hungry_sent = False
        self._cond = threading.Condition()
        self._picking = threading.Lock()  # one thread at a time chooses the next order (see _next)
        self._stop = threading.Event()
        self._done: queue.Queue[Any] = queue.Queue()  # prepared orders; None: every order in hand still pending
        self.add(targets)
        if sealed:
            self.seal()
        self._threads = [threading.Thread(target=self._run, name=f"flowzero-poll-{i}", daemon=True)
                         for i in range(POLL_THREADS)]

    def add(self, targets: Sequence[tuple[str, Optional[Order]]]) -> None:
        """More orders to poll, due at once (created first, asked first)."""
        now = self._clock()
        with self._cond:
            for order_id, record in targets:
                created = (record.created_at or "") if record is not None else ""
                self._pending.append(_Due(now, (created or "~", self._added), order_id, record, FIRST_INTERVAL))
                self._added += 1
            if targets:
                self._unfinished_polls, self._hungry_sent = 0, False
            self._cond.notify_all()

    def seal(self) -> None:
        """No more orders will be added: :meth:`finished` ends once every one added is handed over."""
        with self._cond:
            self._sealed = True
            self._cond.notify_all()

    def __enter__(self) -> Poller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(timeout=5)

    def stop(self) -> None:
        """Stop polling (Ctrl-C); a GET in flight is abandoned through the client's cancel."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def finished(self) -> Iterator[list[Any]]:
        """Batches of finished orders, each as soon as at least one is ready (up to :data:`WAVE` of those ready by
        then: while this run delivers them, another run sharing the batch may claim the rest); an empty batch when
        every order in hand is still pending (see the module docstring)."""
        handed = 0
        while True:
            with self._cond:
                if self._sealed and handed >= self._added:
                    return
            try:
                first = self._done.get(timeout=_TICK)  # short waits: Ctrl-C reaches the main thread at once
            except queue.Empty:
                continue
            if first is None:
                yield []
                continue
            batch = [first]
            while len(batch) < WAVE:
                try:
                    item = self._done.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            handed += len(batch)
            yield batch

    # -- the polling threads ---------------------------------------------------------------------------------

    def _next(self) -> Optional[_Due]:
        """The next order to ask about, chosen when its GET may go (None: nothing left, or stopping).

        One thread at a time waits for an order to be due, then for the rate's next slot, and only then picks
        the oldest order due: an order asked about half a second ago and due again is not stuck behind orders
        the other threads committed to earlier, so the first orders finish (and their downloads start) early."""
        hold_slot = getattr(self._planet, "hold_slot", None)  # a client without pacing: choose at once
        with self._picking:
            if not self._wait_until_due():
                return None
            if hold_slot is not None:
                hold_slot("orders_get")
            with self._cond:
                if self._stop.is_set():
                    return None
                now = self._clock()
                # Only the picking thread removes entries, so the one found due is still there.
                entry = min((e for e in self._pending if e.due <= now), key=lambda e: e.age)
                self._pending.remove(entry)
                self._in_flight += 1
                return entry

    def _wait_until_due(self) -> bool:
        """Block until an order is due (True), or there is nothing left to ask about or we stop (False)."""
        with self._cond:
            while not self._stop.is_set():
                if not self._pending:
                    if self._in_flight == 0 and self._sealed:
                        return False
                    self._cond.wait(_TICK)  # a poll in flight may put its order back, or more may be added
                    continue
                now = self._clock()
                earliest = min(e.due for e in self._pending)
                if earliest <= now:
                    return True
                self._cond.wait(min(earliest - now, 1.0))
            return False

    def _run(self) -> None:
        while True:
            entry = self._next()
            if entry is None:
                return
            try:
                self._poll(entry)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _finish(self, polled: Polled) -> None:
        try:
            self._done.put(self._prepare(polled))
        except Exception as exc:  # prepare reports its own failures; anything else still ends this order
            self._done.put(self._prepare(Polled(polled.order_id, polled.record,
                                                error=redact(f"{type(exc).__name__}: {exc}"))))

    def _poll(self, entry: _Due) -> None:
        try:
            order_json = self._planet.get_order(entry.order_id)
        except FlowzeroError as exc:
            self._finish(Polled(entry.order_id, entry.record, error=redact(exc.message),
                                status_code=getattr(exc, "status_code", None)))
            return
        except Exception as exc:  # one order's surprise must not sink the batch
            self._finish(Polled(entry.order_id, entry.record, error=redact(f"{type(exc).__name__}: {exc}")))
            return
        state = str(order_json.get("state", "")) if isinstance(order_json, dict) else ""
        if self._wait and state != entry.last_state:
            self._say(f"order {entry.order_id}: {redact(state) or '?'}")
        now = self._clock()
        final = state in FINAL_STATES or not isinstance(order_json, dict)
        if final or not self._wait:
            with self._cond:
                self._unfinished_polls, self._hungry_sent = 0, False
            self._finish(Polled(entry.order_id, entry.record, order_json))
            return
        if self._deadline is not None and now >= self._deadline:
            self._finish(Polled(entry.order_id, entry.record, order_json, timed_out=True))
            return
        due = now + entry.interval
        if self._deadline is not None:
            due = min(due, self._deadline)
        entry.due, entry.last_state = due, state
        entry.interval = min(entry.interval * 2, self._interval_max)
        with self._cond:
            self._pending.append(entry)
            self._unfinished_polls += 1
            if not self._sealed and not self._hungry_sent and self._unfinished_polls >= len(self._pending):
                self._hungry_sent = True
                self._done.put(None)  # every order in hand asked about, none finished: the caller may add more
            self._cond.notify_all()
