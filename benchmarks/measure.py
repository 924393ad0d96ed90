"""Measuring one run: a subprocess per run (through launch.py), so its CPU and memory are its own.

CPU seconds are the change in ``getrusage(RUSAGE_CHILDREN)`` across the run (user + system of the whole client
process tree: a contender and whatever it spawns, e.g. s5cmd). Peak RSS is the ``ru_maxrss`` that ``wait4``
reports for that child (the largest single process of its tree). The servers are not in that tree: their CPU
during the run (the sandbox inside this driver, the S3 server from /proc) is recorded beside it, because on a
small machine they share the cores with the client and that sharing bounds what any client can reach.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LAUNCHER = Path(__file__).resolve().parent / "launch.py"
MB = 1_000_000  # throughput and CPU per MB use decimal megabytes (bytes / 1e6); sizes are MiB


class RunFailed(Exception):
    """A contender exited non-zero or delivered the wrong bytes; the message says which and why."""


@dataclass
class Sample:
    """One measured run."""

    wall_s: float
    cpu_s: float  # user + system
    peak_rss_mib: float
    bytes: int
    user_s: float = 0.0
    sys_s: float = 0.0
    server_cpu_s: float = 0.0  # the servers' CPU (sandbox, S3 server) during the run

    @property
    def mb_s(self) -> float:
        return self.bytes / MB / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms_per_mb(self) -> float:
        return self.cpu_s * 1000 / (self.bytes / MB) if self.bytes else 0.0

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "mb_s": round(self.mb_s, 1), "cpu_ms_per_mb": round(self.cpu_ms_per_mb, 3)}


def run_measured(argv: Sequence[str], nbytes: int, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, log: Path | None = None, timeout: float = 1800.0) -> Sample:
    """Run ``argv`` to completion through launch.py and measure it; RunFailed (with its output's tail) if it fails."""
    log = log or Path(os.devnull)
    report = Path(tempfile.mkstemp(prefix="flowzero-bench-", suffix=".json")[1])
    launcher = [sys.executable, "-I", "-S", str(LAUNCHER), str(report), "--", *argv]
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(launcher, env=dict(env) if env is not None else None, cwd=cwd,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise RunFailed(f"{Path(argv[0]).name} took longer than {timeout:.0f} s and was killed") from None
        try:
            figures = json.loads(report.read_text())
        except (OSError, ValueError):
            raise RunFailed(f"{Path(argv[0]).name} could not be started: {_tail(log)}") from None
    finally:
        report.unlink(missing_ok=True)
    if figures["status"] != 0:
        raise RunFailed(f"{Path(argv[0]).name} exited with status {figures['status']}: {_tail(log)}")
    return Sample(wall_s=figures["wall_s"], cpu_s=figures["cpu_s"], peak_rss_mib=figures["maxrss_kib"] / 1024,
                  bytes=nbytes, user_s=figures["user_s"], sys_s=figures["sys_s"])


def run_beside_servers(argv: Sequence[str], nbytes: int, s3_server_pid: int | None, **kwargs: Any) -> Sample:
    """:func:`run_measured`, with the servers' CPU during the run in ``server_cpu_s`` (see :func:`servers_cpu_s`)."""
    before = servers_cpu_s(s3_server_pid)
    sample = run_measured(argv, nbytes, **kwargs)
    sample.server_cpu_s = round(servers_cpu_s(s3_server_pid) - before, 3)
    return sample


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def servers_cpu_s(s3_server_pid: int | None) -> float:
    """CPU seconds the servers have used so far: the sandbox (threads of this driver process) and the S3 server."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    return own + (process_cpu_s(s3_server_pid) if s3_server_pid is not None else 0.0)


def _tail(log: Path, limit: int = 400) -> str:
    try:
        text = log.read_bytes()[-4000:].decode("utf-8", "replace")
    except OSError:
        return "(no output)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (" | ".join(lines[-3:]) or "(no output)")[-limit:]


def median_sample(samples: Sequence[Sample]) -> dict[str, float]:
    """Medians of each figure over the repeated runs (each figure's own median)."""
    return {
        "mb_s": round(statistics.median(s.mb_s for s in samples), 1),
        "wall_s": round(statistics.median(s.wall_s for s in samples), 3),
        "cpu_s": round(statistics.median(s.cpu_s for s in samples), 3),
        "user_s": round(statistics.median(s.user_s for s in samples), 3),
        "sys_s": round(statistics.median(s.sys_s for s in samples), 3),
        "cpu_ms_per_mb": round(statistics.median(s.cpu_ms_per_mb for s in samples), 3),
        "server_cpu_ms_per_mb": round(statistics.median(s.server_cpu_s * 1000 / (s.bytes / MB)
                                                        for s in samples if s.bytes), 3),
        "peak_rss_mib": round(max(s.peak_rss_mib for s in samples), 1),
        "spread_pct": round(_spread(samples), 1),
    }


def marginal_cpu(full: Sequence[Sample], one: Sequence[Sample]) -> dict[str, float]:
    """CPU per MB net of fixed costs, from pairs of runs (all files, then one file) of the same contender.

    Per round: marginal = (cpu_all - cpu_one) / (MB_all - MB_one) and fixed = cpu_one - MB_one * marginal
    (interpreter start-up, imports, clients, the order lookup); the sustained rate is likewise
    (MB_all - MB_one) / (wall_all - wall_one). Medians over the rounds.
    """
    marginal, user, system, fixed, sustained = [], [], [], [], []
    for a, b in zip(full, one):
        extra_mb = (a.bytes - b.bytes) / MB
        if extra_mb <= 0:
            continue
        rate = (a.cpu_s - b.cpu_s) / extra_mb
        marginal.append(rate * 1000)
        user.append((a.user_s - b.user_s) / extra_mb * 1000)
        system.append((a.sys_s - b.sys_s) / extra_mb * 1000)
        fixed.append(b.cpu_s - b.bytes / MB * rate)
        if a.wall_s > b.wall_s:
            sustained.append(extra_mb / (a.wall_s - b.wall_s))
    if not marginal:
        return {}
    figures = {"marginal_cpu_ms_per_mb": round(statistics.median(marginal), 3),
               "marginal_user_ms_per_mb": round(statistics.median(user), 3),
               "marginal_sys_ms_per_mb": round(statistics.median(system), 3),
               "fixed_cpu_s": round(statistics.median(fixed), 3)}
    if sustained:  # the rate once started: what a large order approaches
        figures["sustained_mb_s"] = round(statistics.median(sustained), 1)
    return figures


def _spread(samples: Sequence[Sample]) -> float:
    """(max - min) / median of the throughputs, in percent: how noisy this contender was."""
    rates = [s.mb_s for s in samples]
    middle = statistics.median(rates)
    return (max(rates) - min(rates)) / middle * 100 if middle else 0.0


def digest_floor(sample: bytes, algorithms: Sequence[str] = ("sha256", "md5"),
                 min_seconds: float = 0.3) -> dict[str, float]:
    """CPU ms per MB of each digest over ``sample`` (hashlib, one core, this process's thread CPU time)."""
    floor: dict[str, float] = {}
    view = memoryview(sample)
    for name in algorithms:
        digest = hashlib.new(name)
        hashed = 0
        started = time.thread_time()
        while time.thread_time() - started < min_seconds or hashed < len(sample):
            for offset in range(0, len(view), 1 << 20):
                digest.update(view[offset:offset + (1 << 20)])
            hashed += len(sample)
        spent = time.thread_time() - started
        floor[f"{name}_ms_per_mb"] = round(spent * 1000 / (hashed / MB), 3)
    return floor
