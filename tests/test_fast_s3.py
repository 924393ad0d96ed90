"""The `fast` downloader into S3: multipart fed by the stream, verification before commit, skip by HEAD.

moto's server (tests/fixtures/s3.py) plays S3; a tiny in-test S3 stand-in answers with faults moto cannot make
(SlowDown, refused credentials) and lets botocore re-derive the SigV4 signature of what the Rust core sent.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from flowzero.downloaders.base import DownloadOptions
from flowzero.downloaders.fast import FastDownloader
from flowzero.errors import TransferError
from flowzero.models import TransferJob, TransferResult
from tests.fixtures.fileserver import FileServer
from tests.fixtures.loopback import LoopbackServer, QuietHandler
from tests.fixtures.s3 import S3Bucket

MIB = 1024 * 1024
PART = 5 * MIB


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def s3_job(server: FileServer, bucket: S3Bucket | str, name: str, data: bytes, key: str = "",
           **overrides: object) -> TransferJob:
    manifest = server.add(name, data)
    fields = {"size": manifest["size"], "sha256": manifest["sha256"], "md5": manifest["md5"], **overrides}
    bucket_name = bucket if isinstance(bucket, str) else bucket.name
    destination = f"s3://{bucket_name}/scenes/{key or name}"
    return TransferJob(url=server.url(name), destination=destination, name=name, **fields)  # type: ignore[arg-type]


def run(jobs: list[TransferJob], endpoint: str = "", **options: object) -> list[TransferResult]:
    settings: dict[str, object] = {"max_workers": 4, "timeout": 10.0, "max_retries": 3, "part_size": PART,
                                   "s3_region": "us-east-1", "s3_endpoint_url": endpoint, **options}
    return FastDownloader(DownloadOptions(**settings)).transfer(jobs)  # type: ignore[arg-type]


def key_of(job: TransferJob) -> str:
    return job.destination.split("/", 3)[3]


def test_multipart_upload_of_several_parts(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(2 * PART + 12345)
    job = s3_job(fileserver, s3_bucket, "big.tif", data)
    [result] = run([job], endpoint=s3_bucket.endpoint_url)
    assert result.ok, result.error
    assert result.bytes == len(data) and result.digest == hashlib.sha256(data).hexdigest()
    assert s3_bucket.get(key_of(job)) == data
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key_of(job))
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["Metadata"] == {"sha256": job.sha256}
    assert s3_bucket.multipart_uploads() == []


def test_small_file_is_one_put_with_md5_metadata(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(70_000)
    job = s3_job(fileserver, s3_bucket, "small.tif", data, sha256=None)
    [result] = run([job])  # endpoint and region from AWS_ENDPOINT_URL_S3 / AWS_DEFAULT_REGION
    assert result.ok, result.error
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key_of(job))
    assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest()  # a single PUT, not multipart
    assert head["Metadata"] == {"md5": job.md5}


def test_many_files_concurrently(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    datas = [payload(n, seed=n) for n in (0, 10, PART - 1, PART, PART + 1)]
    jobs = [s3_job(fileserver, s3_bucket, f"m{i}.tif", d) for i, d in enumerate(datas)]
    results = run(jobs, endpoint=s3_bucket.endpoint_url, max_workers=3)
    assert all(r.ok for r in results), [r.error for r in results]
    for job, data in zip(jobs, datas):
        assert s3_bucket.get(key_of(job)) == data
    assert s3_bucket.multipart_uploads() == []


def test_resume_after_a_drop_in_the_middle_of_a_part(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(2 * PART + 99)
    job = s3_job(fileserver, s3_bucket, "resume.tif", data)
    fileserver.faults.drop_after["resume.tif"] = [PART + 2 * MIB]
    [result] = run([job], endpoint=s3_bucket.endpoint_url)
    assert result.ok, result.error
    assert s3_bucket.get(key_of(job)) == data
    statuses = [(rng is not None, code) for name, rng, code in fileserver.requests if name == "resume.tif"]
    assert statuses == [(False, 200), (True, 206)]


def test_restart_on_200_throws_away_uploaded_parts(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(2 * PART + 7)
    job = s3_job(fileserver, s3_bucket, "restart.tif", data)
    fileserver.faults.drop_after["restart.tif"] = [PART + MIB]  # part 1 already shipped
    fileserver.faults.ignore_range["restart.tif"] = 1
    [result] = run([job], endpoint=s3_bucket.endpoint_url)
    assert result.ok, result.error
    assert s3_bucket.get(key_of(job)) == data
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key_of(job))
    assert head["ETag"].strip('"').endswith("-3")
    assert s3_bucket.multipart_uploads() == []


@pytest.mark.parametrize("size", [2 * PART + 1, 1000], ids=["multipart", "single-put"])
def test_checksum_mismatch_leaves_nothing(fileserver: FileServer, s3_bucket: S3Bucket, size: int) -> None:
    job = s3_job(fileserver, s3_bucket, "bad.tif", payload(size))
    fileserver.faults.corrupt["bad.tif"] = 2  # the refetch after the mismatch is corrupt too
    [result] = run([job], endpoint=s3_bucket.endpoint_url)
    assert not result.ok and "sha256 mismatch" in (result.error or "")
    assert s3_bucket.keys() == []
    assert s3_bucket.multipart_uploads() == []


def test_rerun_skips_by_head_without_downloading(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    jobs = [s3_job(fileserver, s3_bucket, "a.tif", payload(PART + 1)),
            s3_job(fileserver, s3_bucket, "b.tif", payload(100))]
    assert all(r.ok for r in run(jobs, endpoint=s3_bucket.endpoint_url))
    before = len(fileserver.requests)
    again = run(jobs, endpoint=s3_bucket.endpoint_url)
    assert [(r.ok, r.skipped) for r in again] == [(True, True), (True, True)]
    assert [r.digest for r in again] == [j.sha256 for j in jobs]
    assert len(fileserver.requests) == before


def test_object_without_recorded_digest_is_replaced(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    data = payload(1000)
    job = s3_job(fileserver, s3_bucket, "plain.tif", data)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key_of(job), Body=data)  # right bytes, no metadata
    [result] = run([job], endpoint=s3_bucket.endpoint_url)
    assert result.ok and not result.skipped
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key_of(job))
    assert head["Metadata"] == {"sha256": job.sha256}


def test_overwrite_uploads_again(fileserver: FileServer, s3_bucket: S3Bucket) -> None:
    job = s3_job(fileserver, s3_bucket, "o.tif", payload(100))
    run([job], endpoint=s3_bucket.endpoint_url)
    [result] = run([job], endpoint=s3_bucket.endpoint_url, overwrite=True)
    assert result.ok and not result.skipped
    assert fileserver.count("o.tif") == 2


def test_missing_credentials_stop_the_batch(fileserver: FileServer, s3_bucket: S3Bucket,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    job = s3_job(fileserver, s3_bucket, "c.tif", payload(10))
    with pytest.raises(TransferError, match="AWS_ACCESS_KEY_ID") as info:
        run([job], endpoint=s3_bucket.endpoint_url)
    assert info.value.hint
    assert fileserver.count("c.tif") == 0


# --- a scripted S3 stand-in -------------------------------------------------------------------------------


def crc32c(data: bytes) -> int:
    """Reference CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit: slow but obviously right."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class FakeS3:
    """Answers scripted (status, body) pairs first, then HEAD 404 / PUT 200; records every request."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = []
        self.requests: list[dict[str, Any]] = []
        self._http = LoopbackServer(self._handler()).start()

    @property
    def url(self) -> str:
        return self._http.url

    def stop(self) -> None:
        self._http.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers.items()), "body": body})
                default = (404 if self.command == "HEAD" else 200, "")
                status, text = fake.script.pop(0) if fake.script else default
                payload = text.encode()
                self.send_response(status)
                if status == 200 and self.command == "PUT":
                    self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_HEAD = do_GET = do_PUT = do_POST = do_DELETE = _answer

        return Handler


@pytest.fixture
def fake_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeS3]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-value")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "fake-session-token")
    server = FakeS3()
    yield server
    server.stop()


def _error(code: str) -> str:
    return f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>m</Message></Error>"


def test_slowdown_is_retried_and_the_put_is_signed_with_unsigned_payload(
        fileserver: FileServer, fake_s3: FakeS3, tmp_path: Path) -> None:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = payload(3000)
    job = s3_job(fileserver, "bkt", "signed.tif", data, key="sig/n ed+é.tif")
    fake_s3.script = [(404, ""), (503, _error("SlowDown"))]
    [result] = run([job], endpoint=fake_s3.url, s3_region="eu-west-1")
    assert result.ok, result.error
    assert [r["method"] for r in fake_s3.requests] == ["HEAD", "PUT", "PUT"]
    put = fake_s3.requests[-1]
    headers = {k.lower(): v for k, v in put["headers"].items()}
    assert put["path"] == "/bkt/scenes/sig/n%20ed%2B%C3%A9.tif" and put["body"] == data
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "content-md5" not in headers
    assert headers["x-amz-meta-sha256"] == job.sha256
    assert base64.b64decode(headers["x-amz-checksum-crc32c"]) == crc32c(data).to_bytes(4, "big")
    assert not any("fake-secret-value" in v for v in headers.values())

    # botocore re-derives the signature from exactly the headers the request says it signed.
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    must_sign = {"host", "x-amz-date", "x-amz-checksum-crc32c", "x-amz-meta-sha256", "x-amz-security-token"}
    assert must_sign <= set(signed)
    request = AWSRequest(method="PUT", url=fake_s3.url + put["path"], headers={h: headers[h] for h in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = botocore.auth.S3SigV4Auth(Credentials("AKIDFAKEFAKE", "fake-secret-value", "fake-session-token"),
                                       "s3", "eu-west-1")
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKEFAKE/")
    assert auth.endswith(f"Signature={expected}")


def test_refused_credentials_stop_the_batch_without_retries(fileserver: FileServer, fake_s3: FakeS3) -> None:
    jobs = [s3_job(fileserver, "bkt", f"d{i}.tif", payload(10, seed=i)) for i in range(3)]
    fake_s3.script = [(404, ""), (403, _error("InvalidAccessKeyId"))] + [(403, "")] * 3
    with pytest.raises(TransferError, match="InvalidAccessKeyId") as info:
        run(jobs, endpoint=fake_s3.url, max_workers=1)
    assert "fake-secret-value" not in str(info.value) and info.value.hint
    assert [r["method"] for r in fake_s3.requests] == ["HEAD", "PUT"]  # no retry, no other file attempted
    assert [name for name, _, _ in fileserver.requests] == ["d0.tif"]


def test_a_refusal_names_the_bucket_and_only_the_key_id_prefix(fileserver: FileServer, fake_s3: FakeS3) -> None:
    job = s3_job(fileserver, "bkt", "who.tif", payload(10))
    fake_s3.script = [(403, _error("AccessDenied"))]
    with pytest.raises(TransferError) as info:
        run([job], endpoint=fake_s3.url)
    message = info.value.message
    assert "bucket 'bkt'" in message and "AKIDFAKE…" in message and "HTTP 403" in message
    assert "AKIDFAKEFAKE" not in message and "fake-secret-value" not in message
    assert "fake-session-token" not in message


def test_refused_head_stops_the_batch(fileserver: FileServer, fake_s3: FakeS3) -> None:
    job = s3_job(fileserver, "bkt", "h.tif", payload(10))
    fake_s3.script = [(403, "")]
    with pytest.raises(TransferError, match="HTTP 403"):
        run([job], endpoint=fake_s3.url)
    assert len(fake_s3.requests) == 1 and fileserver.requests == []


def test_slow_down_that_never_ends_fails_the_file(fileserver: FileServer, fake_s3: FakeS3) -> None:
    job = s3_job(fileserver, "bkt", "slow.tif", payload(10))
    fake_s3.script = [(404, "")] + [(503, _error("SlowDown"))] * 10
    [result] = run([job], endpoint=fake_s3.url, max_retries=2)
    assert not result.ok and "SlowDown" in (result.error or "")
    assert [r["method"] for r in fake_s3.requests] == ["HEAD", "PUT", "PUT", "PUT"]


def test_endpoint_refusing_checksums_gets_plain_uploads(fileserver: FileServer, fake_s3: FakeS3) -> None:
    job = s3_job(fileserver, "bkt", "nocrc.tif", payload(100))
    refusal = ("<Error><Code>InvalidRequest</Code><Message>x-amz-checksum-crc32c is not supported</Message>"
               "</Error>")
    fake_s3.script = [(404, ""), (400, refusal)]
    [result] = run([job], endpoint=fake_s3.url)
    assert result.ok, result.error
    puts = [{k.lower() for k in r["headers"]} for r in fake_s3.requests if r["method"] == "PUT"]
    assert len(puts) == 2
    assert "x-amz-checksum-crc32c" in puts[0] and "x-amz-checksum-crc32c" not in puts[1]


def _uploads_page(uploads: list[tuple[str, str]], next_marker: tuple[str, str] | None) -> str:
    entries = "".join(f"<Upload><Key>{k}</Key><UploadId>{u}</UploadId>"
                      f"<Initiated>2026-11-24T10:00:00.000Z</Initiated></Upload>" for k, u in uploads)
    more = (f"<IsTruncated>true</IsTruncated><NextKeyMarker>{next_marker[0]}</NextKeyMarker>"
            f"<NextUploadIdMarker>{next_marker[1]}</NextUploadIdMarker>") if next_marker else ""
    return f"<ListMultipartUploadsResult>{more}{entries}</ListMultipartUploadsResult>"


def test_upload_listing_follows_every_page(fake_s3: FakeS3) -> None:
    """moto never truncates ListMultipartUploads, so the paging is checked against scripted pages."""
    from flowzero import _fast

    fake_s3.script = [(200, _uploads_page([("a/1.tif", "u1"), ("a/R&amp;D.tif", "u2")], ("a/R&amp;D.tif", "u2"))),
                      (200, _uploads_page([("a/3.tif", "u3")], None))]
    objects = _fast.S3Objects(endpoint_url=fake_s3.url, region="us-east-1")
    listed = objects.list_uploads("bkt", "a/")
    assert listed == [("a/1.tif", "u1", "2026-11-24T10:00:00.000Z"), ("a/R&D.tif", "u2", "2026-11-24T10:00:00.000Z"),
                      ("a/3.tif", "u3", "2026-11-24T10:00:00.000Z")]
    first, second = (r["path"] for r in fake_s3.requests)
    assert first.startswith("/bkt?") and "uploads=" in first and "prefix=a%2F" in first
    assert "key-marker=a%2FR%26D.tif" in second and "upload-id-marker=u2" in second
