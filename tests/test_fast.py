"""The `fast` downloader (Rust core) to local folders: verification, resume/restart, skip, faults."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from flowzero.downloaders.base import DownloadOptions
from flowzero.downloaders.fast import FastDownloader, load_extension, register_downloaders
from flowzero.errors import PluginError
from flowzero.models import TransferJob, TransferResult
from tests.fixtures.fileserver import FileServer

MIB = 1024 * 1024


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def job_for(server: FileServer, name: str, data: bytes, dest: Path, **overrides: object) -> TransferJob:
    manifest = server.add(name, data)
    fields = {"size": manifest["size"], "sha256": manifest["sha256"], "md5": manifest["md5"], **overrides}
    return TransferJob(url=server.url(name), destination=str(dest), name=name, **fields)  # type: ignore[arg-type]


def run(jobs: list[TransferJob], **options: object) -> list[TransferResult]:
    settings: dict[str, object] = {"max_workers": 4, "timeout": 10.0, "max_retries": 3, **options}
    opts = DownloadOptions(**settings)  # type: ignore[arg-type]
    return FastDownloader(opts).transfer(jobs)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".flowzero-tmp-*"))


def test_batch_to_local_files_verified_in_order(fileserver: FileServer, tmp_path: Path) -> None:
    datas = [payload(n, seed=n) for n in (0, 1, 300_000, 2 * MIB + 5)]
    folder = tmp_path / "deep" / "dir"
    jobs = [job_for(fileserver, f"f{i}.tif", d, folder / f"f{i}.tif") for i, d in enumerate(datas)]
    results = run(jobs)
    assert [r.job for r in results] == jobs
    for data, result in zip(datas, results):
        assert result.ok and not result.skipped and result.error is None
        assert result.bytes == len(data)
        assert result.digest == hashlib.sha256(data).hexdigest()
        assert Path(result.job.destination).read_bytes() == data
    assert leftovers(tmp_path) == []


def test_md5_is_used_only_without_sha256(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(50_000)
    job = job_for(fileserver, "m.tif", data, tmp_path / "m.tif", sha256=None)
    [result] = run([job])
    assert result.ok and result.digest == hashlib.md5(data).hexdigest()


def test_resume_with_range_after_a_dropped_connection(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(3 * MIB)
    job = job_for(fileserver, "r.tif", data, tmp_path / "r.tif")
    fileserver.faults.drop_after["r.tif"] = [1_000_000]
    [result] = run([job])
    assert result.ok, result.error
    assert (tmp_path / "r.tif").read_bytes() == data
    requests = [(rng, status) for name, rng, status in fileserver.requests if name == "r.tif"]
    assert requests[0] == (None, 200)
    assert len(requests) == 2
    resumed_from = int(requests[1][0].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= 1_000_000 and requests[1][1] == 206


def test_restart_from_zero_when_the_source_ignores_range(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(2 * MIB)
    job = job_for(fileserver, "z.tif", data, tmp_path / "z.tif")
    fileserver.faults.drop_after["z.tif"] = [700_000]
    fileserver.faults.ignore_range["z.tif"] = 1
    [result] = run([job])
    assert result.ok, result.error
    assert result.digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "z.tif").read_bytes() == data
    second = [r for r in fileserver.requests if r[0] == "z.tif"][1]
    assert second[1] is not None and second[2] == 200  # asked for a range, got the whole body: restarted
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_leaves_no_file(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "bad.tif", payload(400_000), tmp_path / "bad.tif")
    fileserver.faults.corrupt["bad.tif"] = 2  # the refetch after the mismatch is corrupt too
    [result] = run([job])
    assert not result.ok
    assert "sha256 mismatch" in (result.error or "")
    assert not (tmp_path / "bad.tif").exists()
    assert leftovers(tmp_path) == []


def test_size_differing_from_manifest_fails(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "s.tif", payload(1000), tmp_path / "s.tif", size=999)
    [result] = run([job])
    assert not result.ok and "1000 bytes" in (result.error or "")
    assert not (tmp_path / "s.tif").exists() and leftovers(tmp_path) == []


def test_rerun_skips_verified_copies_without_downloading(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "k.tif", payload(100_000), tmp_path / "k.tif")
    assert run([job])[0].ok
    before = fileserver.count("k.tif")
    [again] = run([job])
    assert again.ok and again.skipped and again.digest == job.sha256
    assert fileserver.count("k.tif") == before


def test_present_file_with_wrong_content_is_fetched_again(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(100_000)
    job = job_for(fileserver, "w.tif", data, tmp_path / "w.tif")
    (tmp_path / "w.tif").write_bytes(b"\0" * len(data))  # right size, wrong digest
    [result] = run([job])
    assert result.ok and not result.skipped
    assert (tmp_path / "w.tif").read_bytes() == data


def test_overwrite_fetches_even_a_verified_copy(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "o.tif", payload(10_000), tmp_path / "o.tif")
    run([job])
    before = fileserver.count("o.tif")
    [result] = run([job], overwrite=True)
    assert result.ok and not result.skipped
    assert fileserver.count("o.tif") == before + 1


def test_server_errors_are_retried(fileserver: FileServer, tmp_path: Path) -> None:
    data = payload(10_000)
    job = job_for(fileserver, "e.tif", data, tmp_path / "e.tif")
    fileserver.faults.statuses["e.tif"] = [503, 500]
    [result] = run([job])
    assert result.ok and (tmp_path / "e.tif").read_bytes() == data
    assert fileserver.count("e.tif") == 3


def test_retries_are_bounded(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "x.tif", payload(10), tmp_path / "x.tif")
    fileserver.faults.statuses["x.tif"] = [503] * 10
    [result] = run([job], max_retries=2)
    assert not result.ok and "after 3 attempts" in (result.error or "")
    assert fileserver.count("x.tif") == 3


def test_client_errors_fail_at_once_and_hide_the_token(fileserver: FileServer, tmp_path: Path) -> None:
    job = job_for(fileserver, "gone.tif", payload(10), tmp_path / "gone.tif")
    fileserver.faults.statuses["gone.tif"] = [404]
    [result] = run([job])
    assert not result.ok and "404" in (result.error or "")
    assert "SECRET-TOKEN" not in (result.error or "")
    assert fileserver.count("gone.tif") == 1


def test_unreachable_source_is_a_failed_result_not_an_exception(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = TransferJob(url=f"http://127.0.0.1:{port}/f?token=SECRET-T", destination=str(tmp_path / "u.tif"))
    [result] = run([job], max_retries=1)
    assert not result.ok and "SECRET-T" not in (result.error or "")


def test_bad_destination_and_bad_digest_are_per_job_failures(fileserver: FileServer, tmp_path: Path) -> None:
    good = job_for(fileserver, "g.tif", payload(100), tmp_path / "g.tif")
    bad_dest = TransferJob(url=good.url, destination="gs://bucket/key")
    bad_digest = TransferJob(url=good.url, destination=str(tmp_path / "d.tif"), sha256="xyz")
    results = run([bad_dest, good, bad_digest])
    assert [r.ok for r in results] == [False, True, False]
    assert "unsupported destination" in (results[0].error or "")
    assert "hex digest" in (results[2].error or "")


def test_progress_reports_every_byte_received(fileserver: FileServer, tmp_path: Path) -> None:
    datas = [payload(MIB, seed=i) for i in range(3)]
    jobs = [job_for(fileserver, f"p{i}.tif", d, tmp_path / f"p{i}.tif") for i, d in enumerate(datas)]
    seen: list[int] = []
    results = run(jobs, progress=seen.append)
    assert all(r.ok for r in results)
    assert seen and all(n > 0 for n in seen)
    assert sum(seen) == sum(len(d) for d in datas)


def test_memory_stays_bounded_by_chunks_not_file_size(fileserver: FileServer, tmp_path: Path) -> None:
    size = 192 * MIB
    data = os.urandom(size)
    manifest = fileserver.add("huge.tif", data)
    script = f"""
import resource, sys
from flowzero import _fast
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
[r] = _fast.transfer([_fast.Job({fileserver.url('huge.tif')!r}, {str(tmp_path / 'huge.tif')!r},
                      size={size}, sha256={manifest['sha256']!r})])
assert r.ok, r.error
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    grown_mib = int(out.stdout.strip())
    assert grown_mib < 64, f"peak memory grew by {grown_mib} MiB for a {size // MIB} MiB file"
    assert (tmp_path / "huge.tif").stat().st_size == size


def test_registered_as_the_fast_downloader() -> None:
    found: list[type] = []
    register_downloaders(found.append)
    assert found == [FastDownloader]
    assert FastDownloader.name == "fast" and FastDownloader.description


def test_missing_extension_is_a_plugin_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import flowzero

    monkeypatch.setitem(sys.modules, "flowzero._fast", None)
    monkeypatch.delattr(flowzero, "_fast", raising=False)
    with pytest.raises(PluginError, match="compiled Rust core"):
        load_extension()


def test_importing_the_plugin_does_not_load_the_extension() -> None:
    code = "import sys, flowzero.downloaders.fast; print('flowzero._fast' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_empty_batch() -> None:
    assert run([]) == []
