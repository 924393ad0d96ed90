"""The Rust core at the source's limits: Planet's rate limit (pacing, 429 as flow control, the throttle budget,
a rate file shared by two batches), redirects to another origin, a trickling source, bodies of unknown size, and
the typed reason every failure reports."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from flowzero.downloaders.base import DownloadOptions
from flowzero.downloaders.fast import FastDownloader
from flowzero.models import FailureReason, TransferJob, TransferResult
from tests.fixtures.fileserver import FileServer
from tests.fixtures.loopback import LoopbackServer, QuietHandler


def blob(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def run(jobs: list[TransferJob], **options: object) -> list[TransferResult]:
    settings: dict[str, object] = {"max_workers": 4, "timeout": 10.0, "max_retries": 3, **options}
    return FastDownloader(DownloadOptions(**settings)).transfer(jobs)  # type: ignore[arg-type]


class RateLimitedSource:
    """Serves ``files`` at /f/<name>, admitting GETs at most ``rate`` per second (10 % slack); otherwise 429 with
    Planet's body and no Retry-After. ``always_429`` refuses everything."""

    def __init__(self, rate: float, always_429: bool = False) -> None:
        self.spacing = 0.9 / rate
        self.always_429 = always_429
        self.files: dict[str, bytes] = {}
        self.admitted: list[float] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._http = LoopbackServer(self._handler()).start()

    def add(self, name: str, data: bytes) -> TransferJob:
        self.files[name] = data
        return TransferJob(url=f"{self._http.url}/f/{name}?token=T", destination="", size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), name=name)

    def achieved_rate(self) -> float:
        span = self.admitted[-1] - self.admitted[0]
        return (len(self.admitted) - 1) / span if span > 0 else float("inf")

    def close(self) -> None:
        self._http.close()

    def _admit(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self.always_429 or (self.admitted and now - self.admitted[-1] < self.spacing):
                self.refused += 1
                return False
            self.admitted.append(now)
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        source = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if not source._admit():
                    body = b"max rate reached: retry-in 200ms"
                    self.send_response(429)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data = source.files[self.path.split("?")[0].removeprefix("/f/")]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def limited() -> Iterator[RateLimitedSource]:
    source = RateLimitedSource(rate=10)
    yield source
    source.close()


def jobs_for(source: RateLimitedSource, folder: Path, count: int, prefix: str = "r") -> list[TransferJob]:
    jobs = []
    for i in range(count):
        job = source.add(f"{prefix}{i}.tif", blob(2000, i))
        job.destination = str(folder / job.name)
        jobs.append(job)
    return jobs


def test_paced_downloads_stay_within_the_rate(limited: RateLimitedSource, tmp_path: Path) -> None:
    results = run(jobs_for(limited, tmp_path, 12), download_rate=10.0)
    assert all(r.ok for r in results), [r.error for r in results]
    assert limited.achieved_rate() <= 10 * 1.1
    assert limited.refused <= 1  # pacing, not refusals, keeps the rate


def test_429s_are_flow_control_not_failures(limited: RateLimitedSource, tmp_path: Path) -> None:
    started = time.monotonic()
    results = run(jobs_for(limited, tmp_path, 8), max_retries=0)  # no pacing, no retries for real errors
    assert all(r.ok for r in results), [r.error for r in results]
    assert limited.refused >= 1
    assert sum(r.reason is None for r in results) == 8
    assert time.monotonic() - started < 10
    from flowzero import _fast  # the core counts the refusals each file met, for Python to report

    again = [_fast.Job(j.url, f"{j.destination}.again", size=j.size, sha256=j.sha256) for j in jobs_for(
        limited, tmp_path, 8, prefix="n")]
    answers = _fast.transfer(again, max_workers=4, max_retries=0)
    assert all(a.ok and a.reason is None for a in answers) and sum(a.throttled for a in answers) >= 1


def test_the_throttle_budget_ends_a_file_as_rate_limited(tmp_path: Path) -> None:
    source = RateLimitedSource(rate=10, always_429=True)
    try:
        [job] = jobs_for(source, tmp_path, 1)
        started = time.monotonic()
        [result] = FastDownloader(DownloadOptions(timeout=5.0, throttle_budget=0.5)).transfer([job])
    finally:
        source.close()
    assert not result.ok and result.reason is FailureReason.RATE_LIMITED
    assert "429" in (result.error or "") and source.refused >= 2
    assert time.monotonic() - started < 5
    assert not (tmp_path / job.name).exists()


def test_two_batches_sharing_a_rate_file_share_the_rate(limited: RateLimitedSource, tmp_path: Path) -> None:
    rate_file = tmp_path / "pacing" / "planet-key"
    batches = [jobs_for(limited, tmp_path, 6, prefix=p) for p in ("a", "b")]
    outcomes: list[list[TransferResult]] = []
    threads = [threading.Thread(target=lambda b=b: outcomes.append(
        run(b, download_rate=10.0, rate_file=str(rate_file), max_workers=3))) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 2 and all(r.ok for results in outcomes for r in results)
    assert limited.achieved_rate() <= 10 * 1.1 and limited.refused <= 1
    assert rate_file.stat().st_size == 16 and rate_file.stat().st_mode & 0o777 == 0o600


class Recorder:
    """The storage host behind a redirect: serves one body, records each request's headers."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.headers: list[dict[str, str]] = []
        recorder = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                recorder.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", str(len(recorder.data)))
                self.end_headers()
                self.wfile.write(recorder.data)

        self._http = LoopbackServer(Handler).start()
        self.url = self._http.url.replace("127.0.0.1", "localhost")  # another origin

    def close(self) -> None:
        self._http.close()


def test_redirects_to_another_origin_never_carry_credentials(tmp_path: Path) -> None:
    data = blob(5000)
    storage = Recorder(data)
    seen: list[dict[str, str]] = []

    class Link(QuietHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(302)
            self.send_header("Location", f"{storage.url}/blob?signature=S")
            self.send_header("Content-Length", "0")
            self.end_headers()

    api = LoopbackServer(Link).start()
    try:
        url = api.url.replace("http://", "http://planet-user:planet-secret@") + "/download?token=T"
        job = TransferJob(url=url, destination=str(tmp_path / "r.tif"), size=len(data),
                          sha256=hashlib.sha256(data).hexdigest())
        [result] = run([job])
    finally:
        api.close()
        storage.close()
    assert result.ok, result.error
    assert seen[0]["authorization"] == "Basic " + base64.b64encode(b"planet-user:planet-secret").decode()
    assert storage.headers and all("authorization" not in h for h in storage.headers)
    assert (tmp_path / "r.tif").read_bytes() == data


def test_a_trickling_source_is_a_stall_resumed_with_range(tmp_path: Path) -> None:
    data = blob(300_000)
    ranges: list[str | None] = []

    class Trickle(QuietHandler):
        def do_GET(self) -> None:
            ranges.append(self.headers.get("Range"))
            start = int(ranges[-1].removeprefix("bytes=").rstrip("-")) if ranges[-1] else 0
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            try:
                if start:
                    self.wfile.write(data[start:])
                    return
                self.wfile.write(data[:100_000])
                for i in range(100_000, 100_100):  # then a byte every 0.1 s: the read timeout never fires
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                self.close_connection = True

    server = LoopbackServer(Trickle).start()
    try:
        job = TransferJob(url=f"{server.url}/t", destination=str(tmp_path / "t.tif"), size=len(data),
                          sha256=hashlib.sha256(data).hexdigest())
        started = time.monotonic()
        [result] = run([job], timeout=1.0)
    finally:
        server.close()
    assert result.ok, result.error
    assert time.monotonic() - started < 5
    assert ranges[0] is None and ranges[1] is not None and int(ranges[1][6:-1]) >= 100_000
    assert (tmp_path / "t.tif").read_bytes() == data


def test_a_body_of_unknown_size_is_capped(fileserver: FileServer, tmp_path: Path) -> None:
    fileserver.add("big.bin", blob(5000))
    job = TransferJob(url=fileserver.url("big.bin"), destination=str(tmp_path / "big.bin"))
    [result] = run([job], max_unknown_size=1000)
    assert not result.ok and result.reason is FailureReason.TOO_LARGE
    assert "1000 bytes" in (result.error or "") and not (tmp_path / "big.bin").exists()
    [fits] = run([job], max_unknown_size=5000)
    assert fits.ok and fits.bytes == 5000


def test_every_failure_says_why(fileserver: FileServer, tmp_path: Path) -> None:
    def job(name: str, data: bytes, **fields: object) -> TransferJob:
        manifest = fileserver.add(name, data)
        values = {"size": manifest["size"], "sha256": manifest["sha256"], **fields}
        return TransferJob(url=fileserver.url(name), destination=str(tmp_path / name), **values)  # type: ignore[arg-type]

    gone, bad, big, missing, fine = (job("gone.tif", b"x" * 10), job("bad.tif", blob(100)),
                                     job("big.tif", blob(100), size=50), job("nf.tif", b"y"), job("ok.tif", b"z"))
    fileserver.faults.statuses["gone.tif"] = [410]
    fileserver.faults.corrupt["bad.tif"] = 2
    fileserver.faults.statuses["nf.tif"] = [404]
    results = run([gone, bad, big, missing, fine])
    assert [r.reason for r in results] == [FailureReason.EXPIRED_LINK, FailureReason.CHECKSUM,
                                           FailureReason.TOO_LARGE, FailureReason.OTHER, None]
    assert "may have expired" in (results[0].error or "")  # said in words too, for people
    assert fileserver.count("bad.tif") == 2  # a checksum failure is fetched once more
