"""Who holds a claim, whether it is still alive, and keeping its lease: shared by order intents and delivery claims.

A holder is named ``host:pid:random`` (:func:`worker_id`): unique per run, and it tells a person where the holder
runs. A claim lapses when its lease runs out unless its holder renews it (:class:`LeaseKeeper`); a holder on this
machine whose process is gone (:func:`holder_is_gone`) may be taken over at once, without waiting for the lease.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Sequence
from typing import Callable

from flowzero.errors import FlowzeroError

Say = Callable[[str], None]


def worker_id() -> str:
    """``host:pid:random``: unique per run, and tells a person where the holder of a claim runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def process_alive(pid: int) -> bool:
    """True if ``pid`` runs on this machine (or cannot be told apart from a running process)."""
    if pid <= 0:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def holder_is_gone(worker: str) -> bool:
    """Whether a claim's holder was a run on this machine whose process no longer exists (killed, crashed).

    Its claim need not run out first: a rerun right after a crash takes over at once. Holders on other
    machines, or whose process may still run, keep their lease.
    """
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


class LeaseKeeper:
    """Renews the leases of the claims in hand every third of a lease, from a background thread.

    ``renew(key)`` renews one claim and says whether it is still ours; ``what`` names the claims in messages
    ("order", "order intent").
    """

    def __init__(self, renew: Callable[[str], bool], lease_seconds: float, keys: Sequence[str], say: Say,
                 what: str = "order") -> None:
        self._renew = renew
        self._lease = lease_seconds
        self._keys = set(keys)
        self._keys_lock = threading.Lock()
        self._say = say
        self._what = what
        self._stop = threading.Event()
        self._lost: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="flowzero-lease", daemon=True)

    def add(self, key: str) -> None:
        """Keep renewing ``key`` too (a claim taken while the keeper runs)."""
        with self._keys_lock:
            self._keys.add(key)

    def discard(self, key: str) -> None:
        """Stop renewing ``key`` (its claim is being given back)."""
        with self._keys_lock:
            self._keys.discard(key)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            with self._keys_lock:
                in_hand = sorted(self._keys)
            for key in in_hand:
                if key in self._lost:
                    continue
                try:
                    kept = self._renew(key)
                except FlowzeroError as exc:
                    self._say(f"could not renew the claim on {self._what} {key}: {exc.message}")
                    continue
                if not kept:
                    self._lost.add(key)
                    self._say(f"lost the claim on {self._what} {key} (its lease ran out); another run may take it")
