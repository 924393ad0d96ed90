"""The pacer (flowzero.pacing): spacing per class, the shared 16-byte file, 429 back-off and recovery, the budget.

Arithmetic is checked with an injected clock; sharing between processes with real processes on one file.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from flowzero.pacing import (
    BACKOFF,
    MAX_BACKOFF_FACTOR,
    PACE_FRACTION,
    RECOVERY_STEPS,
    Pacer,
    RateLimiter,
    RateLimits,
    ThrottleBudget,
    key_scope,
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_slots_are_spaced_one_over_the_rate_apart() -> None:
    clock = Clock()
    pacer = Pacer(4.0, clock=clock)
    waits = [pacer.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    clock.now += 10  # idle for a while: the next request goes at once, no burst is saved up
    assert pacer.reserve() == 0.0
    assert pacer.reserve() == pytest.approx(0.25)


def test_a_slot_is_taken_when_it_comes_so_a_late_start_pushes_the_next() -> None:
    """Planet counts arrivals: a request woken late must not start closer than the spacing to the next one."""
    clock = Clock(100.0)
    pacer = Pacer(4.0, clock=clock)
    assert pacer.take_when_due() == 0.0  # taken at 100.0; the next may start at 100.25
    clock.now = 100.1
    assert pacer.take_when_due() == pytest.approx(0.15)  # not yet: nothing taken
    clock.now = 100.4  # this waiter woke 0.15 s late
    assert pacer.take_when_due() == 0.0
    clock.now = 100.5  # a reserved slot would have let the next one start here, 0.1 s after the late one
    assert pacer.take_when_due() == pytest.approx(0.15)
    clock.now = 100.65
    assert pacer.take_when_due() == 0.0


def test_a_waiter_that_takes_nothing_leaves_the_shared_file_alone(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a taken slot or a 429 changes the file (a lost round costs no write, in Python as in the Rust core)."""
    writes: list[bytes] = []
    real_pwrite = os.pwrite

    def counting_pwrite(fd: int, data: bytes, offset: int) -> int:
        writes.append(bytes(data))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", counting_pwrite)
    clock, path = Clock(100.0), tmp_path / "class"
    pacer = Pacer(4.0, path, clock=clock)
    assert pacer.take_when_due() == 0.0
    assert len(writes) == 1 and path.read_bytes() == writes[0]
    clock.now = 100.1
    assert pacer.take_when_due() == pytest.approx(0.15)  # not due: nothing taken, nothing written
    assert len(writes) == 1
    clock.now = 100.3
    assert pacer.take_when_due() == 0.0
    assert len(writes) == 2 and path.read_bytes() == writes[1] != writes[0]


def test_waiters_that_lose_the_race_wait_for_the_next_slot() -> None:
    clock = Clock(100.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    pacer = Pacer(4.0, clock=clock, sleep=sleep)
    starts = []
    for _ in range(3):
        pacer.wait()
        starts.append(clock.now)
    assert starts == pytest.approx([100.0, 100.25, 100.5]) and slept == pytest.approx([0.25, 0.25])

    stuck = Pacer(4.0, clock=Clock(100.0), sleep=lambda seconds: None)  # a clock that never moves
    stuck.wait()
    stuck.wait()  # loses every round, then takes a reserved slot: the wait still ends


def test_a_429_stretches_the_spacing_and_slots_win_it_back(tmp_path: Path) -> None:
    clock = Clock()
    pacer = Pacer(10.0, tmp_path / "class", clock=clock)
    assert pacer.reserve() == 0.0
    assert pacer.throttled(None) >= 0.1 * BACKOFF  # interval 0.1 -> 0.125, plus up to half of it as jitter
    assert pacer.throttles == 1
    for _ in range(20):
        pacer.throttled(None)
    _, interval = struct.unpack("<dd", (tmp_path / "class").read_bytes())
    assert interval == pytest.approx(0.1 * MAX_BACKOFF_FACTOR)  # capped
    clock.now += 100
    for _ in range(200):
        pacer.reserve()
        clock.now += 1
    _, interval = struct.unpack("<dd", (tmp_path / "class").read_bytes())
    assert interval == pytest.approx(0.1)  # additive increase brought the full rate back


def test_the_rust_core_changes_the_shared_file_as_python_does() -> None:
    """Both kinds of process read and write one pacing file per class: they must stretch and ease it alike."""
    native = pytest.importorskip("flowzero._fast")
    assert (native.PACE_BACKOFF, native.PACE_RECOVERY_STEPS, native.PACE_MAX_BACKOFF_FACTOR) == (
        BACKOFF, RECOVERY_STEPS, MAX_BACKOFF_FACTOR)


def test_retry_after_pushes_the_next_slot_for_every_user_of_the_class(tmp_path: Path) -> None:
    clock = Clock()
    first, second = Pacer(5.0, tmp_path / "f", clock=clock), Pacer(5.0, tmp_path / "f", clock=clock)
    assert first.throttled(3.0) == pytest.approx(3.0)
    assert second.reserve() == pytest.approx(3.0)  # the other pacer (process) waits too


def test_garbage_or_stale_files_are_read_as_a_fresh_start(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "f"
    for content in (b"", b"junk", struct.pack("<dd", float("nan"), float("nan")),
                    struct.pack("<dd", clock.now + 10_000, -1.0)):
        path.write_bytes(content)
        assert Pacer(2.0, path, clock=clock).reserve() == 0.0


def test_an_unwritable_folder_falls_back_to_pacing_this_process(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    pacer = Pacer(4.0, blocker / "sub" / "class", clock=Clock())
    assert pacer.reserve() == 0.0 and pacer.reserve() == pytest.approx(0.25)
    assert pacer.path is None


def test_limits_come_from_the_config_with_flowzeros_margin() -> None:
    limits = RateLimits()
    assert limits.rate("orders_get") == pytest.approx(3 * PACE_FRACTION)
    assert limits.rate("downloads") == pytest.approx(5 * PACE_FRACTION)
    assert RateLimits.unpaced().rate("data") == 0
    limiter = RateLimiter(RateLimits(orders_get=0), scope="s")
    assert limiter.pacer("orders_get") is None and limiter.pacer("downloads") is not None
    with pytest.raises(ValueError):
        limiter.pacer("nonsense")


def test_the_key_never_appears_in_the_file_names() -> None:
    scope = key_scope("PLAK-secret-key", "https://api.planet.com:443")
    assert "PLAK" not in scope and len(scope) == 16
    assert scope != key_scope("PLAK-other-key", "https://api.planet.com:443")
    assert scope != key_scope("PLAK-secret-key", "http://127.0.0.1:8000")


def test_the_budget_counts_waits_asked_for_and_time_passed() -> None:
    clock = Clock()
    budget = ThrottleBudget(10.0, clock)
    assert budget.charge(4.0) and budget.charge(4.0)
    assert not budget.charge(4.0)  # 12 > 10
    assert budget.refusals == 3
    clock.now += 30
    assert budget.spent == 30 and not ThrottleBudget(10.0, clock).charge(11.0)


_WORKER = """
import json, sys, time
from pathlib import Path
from flowzero.pacing import Pacer
pacer = Pacer(float(sys.argv[2]), Path(sys.argv[1]))
starts = []
for _ in range(int(sys.argv[3])):
    slot, now = pacer.take_slot()  # the slot this request was given (when it wakes up may lag on a busy machine)
    starts.append(slot)
    time.sleep(max(0.0, slot - now))
print(json.dumps(starts))
"""


def test_three_processes_on_one_file_keep_the_rate_together(tmp_path: Path) -> None:
    """Real processes, one shared file: the slots given to all three interleave, spaced 1/rate apart."""
    rate, each = 20.0, 8
    path = tmp_path / "rate" / "downloads"
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(path), str(rate), str(each)],
                                stdout=subprocess.PIPE, text=True) for _ in range(3)]
    starts = sorted(t for w in workers for t in json.loads(w.communicate(timeout=60)[0]))
    assert all(w.returncode == 0 for w in workers)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 3 * each
    assert min(gaps) >= 1 / rate - 1e-5  # never two slots closer than the spacing (float rounding aside)
    assert (starts[-1] - starts[0]) >= (3 * each - 1) / rate - 1e-4
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
