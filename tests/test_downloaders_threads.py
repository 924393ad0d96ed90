"""The ``threads`` downloader against a local HTTP server and moto's S3 server: bytes, skips and faults."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from flowzero.downloaders import http as http_module
from flowzero.downloaders.base import DownloadOptions
from flowzero.downloaders.threads import ThreadsDownloader
from flowzero.models import TransferJob, TransferResult
from tests.fixtures.fileserver import FileServer
from tests.fixtures.s3 import S3Bucket

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_module, "BACKOFF_BASE", 0.01)


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating bytes (a flipped byte anywhere changes the digest)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def job_for(server: FileServer, name: str, data: bytes, destination: str,
            digest: str = "sha256") -> TransferJob:
    info = server.add(name, data)
    return TransferJob(url=server.url(name), destination=destination, size=len(data),
                       sha256=info["sha256"] if digest == "sha256" else None,
                       md5=info["md5"] if digest in ("md5", "sha256") else None, name=name)


class Recorder:
    """A progress callback that also takes per-file reports, like the CLI's progress bar."""

    def __init__(self) -> None:
        self.bytes = 0
        self.files: list[TransferResult] = []

    def __call__(self, n: int) -> None:
        self.bytes += n

    def file_done(self, result: TransferResult) -> None:
        self.files.append(result)


def run(jobs: list[TransferJob], **options: object) -> list[TransferResult]:
    settings: dict[str, object] = {"max_workers": 4, "max_retries": 4, "timeout": 10, **options}
    opts = DownloadOptions(**settings)  # type: ignore[arg-type]
    return ThreadsDownloader(opts).transfer(jobs)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.part")]


# -- local destination ---------------------------------------------------------------------------------------


def test_local_files_arrive_byte_for_byte_and_rerun_skips(fileserver: FileServer, tmp_path: Path) -> None:
    blobs = {f"scene_{i}.tif": payload(200_000 + i * 1000, seed=i) for i in range(5)}
    jobs = [job_for(fileserver, name, data, str(tmp_path / "out" / name)) for name, data in blobs.items()]
    jobs[1].sha256 = None  # verified by md5 when the manifest has no sha256
    recorder = Recorder()

    results = run(jobs, progress=recorder)

    assert [r.ok for r in results] == [True] * 5
    assert [r.job for r in results] == jobs  # same order as the jobs
    for name, data in blobs.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert results[0].digest == hashlib.sha256(blobs["scene_0.tif"]).hexdigest()
    assert results[1].digest == hashlib.md5(blobs["scene_1.tif"]).hexdigest()
    assert recorder.bytes == sum(len(d) for d in blobs.values())
    assert len(recorder.files) == 5
    assert leftovers(tmp_path) == []

    before = len(fileserver.requests)
    again = run(jobs)
    assert all(r.ok and r.skipped for r in again)
    assert len(fileserver.requests) == before  # nothing fetched

    forced = run(jobs, overwrite=True)
    assert all(r.ok and not r.skipped for r in forced)
    assert len(fileserver.requests) == before + 5


def test_corrupted_local_file_is_refetched(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(50_000)
    target = tmp_path / "a.tif"
    job = job_for(fileserver, "a.tif", data, str(target))
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, wrong content

    [result] = run([job])

    assert result.ok and not result.skipped
    assert target.read_bytes() == data
    assert fileserver.count("a.tif") == 1


def test_mid_body_drop_resumes_with_range(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(3 * MIB)
    job = job_for(fileserver, "big.tif", data, str(tmp_path / "big.tif"))
    fileserver.faults.drop_after["big.tif"] = [MIB + 123]

    [result] = run([job])

    assert result.ok, result.error
    assert (tmp_path / "big.tif").read_bytes() == data
    ranges = [(rng, status) for name, rng, status in fileserver.requests if name == "big.tif"]
    assert ranges[0] == (None, 200)
    assert ranges[1][1] == 206 and ranges[1][0].startswith("bytes=") and ranges[1][0] != "bytes=0-"


def test_server_ignoring_range_restarts_cleanly(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(2 * MIB, seed=7)
    job = job_for(fileserver, "r.tif", data, str(tmp_path / "r.tif"))
    fileserver.faults.drop_after["r.tif"] = [MIB]
    fileserver.faults.ignore_range["r.tif"] = 1
    recorder = Recorder()

    [result] = run([job], progress=recorder)

    assert result.ok, result.error  # the hash was reset with the file: no false mismatch
    assert (tmp_path / "r.tif").read_bytes() == data
    second = [(rng, status) for name, rng, status in fileserver.requests if name == "r.tif"][1]
    assert second[0] is not None and second[1] == 200
    assert recorder.bytes == len(data)  # the restarted bytes were taken back


def test_flipped_byte_fails_and_leaves_nothing(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(100_000)
    target = tmp_path / "bad.tif"
    job = job_for(fileserver, "bad.tif", data, str(target))
    fileserver.faults.corrupt["bad.tif"] = 2  # the refetch is corrupt too

    [result] = run([job])

    assert not result.ok
    assert "sha256 mismatch" in (result.error or "")
    assert not target.exists()
    assert leftovers(tmp_path) == []
    assert fileserver.count("bad.tif") == 2  # refetched once, then a failure


def test_one_flipped_byte_is_healed_by_the_refetch(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(100_000, seed=3)
    job = job_for(fileserver, "once.tif", data, str(tmp_path / "once.tif"))
    fileserver.faults.corrupt["once.tif"] = 1

    [result] = run([job])

    assert result.ok
    assert (tmp_path / "once.tif").read_bytes() == data


def test_5xx_is_retried_and_404_is_not(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(10_000)
    good = job_for(fileserver, "flaky.tif", data, str(tmp_path / "flaky.tif"))
    fileserver.faults.statuses["flaky.tif"] = [503, 500]
    missing = TransferJob(url=fileserver.url("gone.tif"), destination=str(tmp_path / "gone.tif"), size=5,
                          name="gone.tif")

    flaky, gone = run([good, missing])

    assert flaky.ok and (tmp_path / "flaky.tif").read_bytes() == data
    assert fileserver.count("flaky.tif") == 3
    assert not gone.ok and "HTTP 404" in (gone.error or "")
    assert fileserver.count("gone.tif") == 1
    assert "SECRET-TOKEN" not in (gone.error or "")


def test_retries_give_up_with_a_clear_error(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "down.tif", b"x" * 10, str(tmp_path / "down.tif"))
    fileserver.faults.statuses["down.tif"] = [503] * 10

    [result] = run([job], max_retries=2)

    assert not result.ok and "gave up after 3 attempts (HTTP 503)" in (result.error or "")
    assert not (tmp_path / "down.tif").exists()


# -- S3 destination ------------------------------------------------------------------------------------------


def s3_run(bucket: S3Bucket, jobs: list[TransferJob], **options: object) -> list[TransferResult]:
    return run(jobs, s3_endpoint_url=bucket.endpoint_url, s3_region="us-east-1", part_size=5 * MIB, **options)


def test_s3_small_and_multipart_uploads_verified_and_skipped(fileserver: FileServer,
                                                             s3_bucket: S3Bucket) -> None:
    small, large = payload(300_000, seed=1), payload(11 * MIB + 17, seed=2)
    jobs = [
        job_for(fileserver, "small.tif", small, f"s3://{s3_bucket.name}/p/small.tif"),
        job_for(fileserver, "large.tif", large, f"s3://{s3_bucket.name}/p/large.tif", digest="md5"),
    ]

    results = s3_run(s3_bucket, jobs)

    assert all(r.ok for r in results), [r.error for r in results]
    assert s3_bucket.get("p/small.tif") == small
    assert s3_bucket.get("p/large.tif") == large
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="p/large.tif")
    assert head["Metadata"]["md5"] == hashlib.md5(large).hexdigest()
    assert head["ContentType"] == "image/tiff"
    assert s3_bucket.multipart_uploads() == []

    before = len(fileserver.requests)
    again = s3_run(s3_bucket, jobs)
    assert all(r.ok and r.skipped for r in again)
    assert len(fileserver.requests) == before

    forced = s3_run(s3_bucket, jobs, overwrite=True)
    assert all(r.ok and not r.skipped for r in forced)
    assert len(fileserver.requests) == before + 2


def test_s3_object_without_recorded_digest_is_replaced(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(40_000)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="x.tif", Body=b"\0" * len(data))
    job = job_for(fileserver, "x.tif", data, f"s3://{s3_bucket.name}/x.tif")

    [result] = s3_run(s3_bucket, [job])

    assert result.ok and not result.skipped
    assert s3_bucket.get("x.tif") == data


def test_s3_multipart_resumes_after_a_drop(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(7 * MIB, seed=9)
    job = job_for(fileserver, "m.tif", data, f"s3://{s3_bucket.name}/m.tif")
    fileserver.faults.drop_after["m.tif"] = [6 * MIB]

    [result] = s3_run(s3_bucket, [job])

    assert result.ok, result.error
    assert s3_bucket.get("m.tif") == data
    assert [s for n, _, s in fileserver.requests if n == "m.tif"] == [200, 206]


@pytest.mark.parametrize("size", [50_000, 6 * MIB])
def test_s3_flipped_byte_leaves_no_object_and_no_upload(fileserver: FileServer, s3_bucket: S3Bucket,
                                                         size: int) -> None:
    data = payload(size)
    job = job_for(fileserver, "bad.tif", data, f"s3://{s3_bucket.name}/bad.tif")
    fileserver.faults.corrupt["bad.tif"] = 2

    [result] = s3_run(s3_bucket, [job])

    assert not result.ok and "mismatch" in (result.error or "")
    assert s3_bucket.keys() == []
    assert s3_bucket.multipart_uploads() == []


def test_no_temp_files_when_the_destination_folder_is_created(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "deep.tif", b"abc", str(tmp_path / "a" / "b c" / "deep.tif"))
    [result] = run([job])
    assert result.ok
    assert os.listdir(tmp_path / "a" / "b c") == ["deep.tif"]


def test_ctrl_c_stops_running_transfers_and_leaves_no_partial_file(fileserver: FileServer,
                                                                   tmp_path: Path) -> None:
    slow = job_for(fileserver, "slow.tif", payload(2 * MIB, seed=5), str(tmp_path / "slow.tif"))
    fileserver.faults.slow["slow.tif"] = 0.1  # about 3.2 s for the whole body
    trigger = job_for(fileserver, "trigger.tif", payload(200_000, seed=6), str(tmp_path / "trigger.tif"))

    class InterruptOnce:
        def __call__(self, n: int) -> None:
            pass

        def file_done(self, result: TransferResult) -> None:
            if result.job.name == "trigger.tif":  # another file is done: the user presses Ctrl-C now
                os.kill(os.getpid(), signal.SIGINT)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run([slow, trigger], progress=InterruptOnce(), max_workers=2)

    assert time.monotonic() - started < 2.0  # the slow download did not run to its end
    assert not (tmp_path / "slow.tif").exists()
    assert leftovers(tmp_path) == []
