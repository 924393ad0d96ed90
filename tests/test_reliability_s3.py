"""Reliability item 5: S3 answers 503 SlowDown to part uploads, or refuses the credentials (403).

moto cannot inject either, so a small fault-injecting proxy on 127.0.0.1 sits in front of moto's server: it
forwards every request unchanged, except that the next N part uploads (PUT ...?partNumber=) get
``503 SlowDown``, or, with ``deny`` on, every request gets ``403 InvalidAccessKeyId``. Each downloader sends a
file of two parts through it; what lands in the bucket is read back from moto directly.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowzero import plugins
from flowzero.downloaders.base import DownloadOptions
from flowzero.errors import TransferError
from flowzero.models import TransferJob, TransferResult
from tests.fixtures.fileserver import FileServer
from tests.fixtures.loopback import LoopbackServer, QuietHandler
from tests.fixtures.s3 import S3Bucket

MIB = 1024 * 1024
PART = 5 * MIB
DOWNLOADERS = ["threads", "s5cmd", "fast"]
_SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code>'
           b"<Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "upgrade"}


class FaultyS3Proxy:
    """Forwards to moto; ``slowdown_parts`` part uploads get 503 SlowDown first; ``deny`` answers 403."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.slowdown_parts = 0
        self.deny = False
        self.log: list[tuple[str, str, int]] = []  # method, path?query, status
        self._lock = threading.Lock()
        self._http = LoopbackServer(self._handler()).start()

    @property
    def url(self) -> str:
        return self._http.url

    def close(self) -> None:
        self._http.close()

    def _take_slowdown(self) -> bool:
        with self._lock:
            if self.slowdown_parts > 0:
                self.slowdown_parts -= 1
                return True
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                proxy.log.append((self.command, self.path, status))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self) -> None:
                body = self._body()
                xml = [("Content-Type", "application/xml")]
                if proxy.deny:
                    return self._answer(403, _DENIED, xml)
                if self.command == "PUT" and "partNumber=" in self.path and proxy._take_slowdown():
                    return self._answer(503, _SLOWDOWN, xml)
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    kept = [(k, v) for k, v in response.getheaders()
                            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]
                    if self.command == "HEAD":  # keep the object's size, not the empty body's
                        length = response.getheader("Content-Length")
                        proxy.log.append((self.command, self.path, response.status))
                        self.send_response(response.status)
                        for name, value in kept:
                            self.send_header(name, value)
                        self.send_header("Content-Length", length or "0")
                        self.end_headers()
                        return None
                    return self._answer(response.status, data, kept)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        return Handler


@pytest.fixture
def proxy(s3_server: str) -> Iterator[FaultyS3Proxy]:
    running = FaultyS3Proxy(s3_server)
    yield running
    running.close()


def _downloader(name: str, endpoint: str) -> Any:
    if name == "s5cmd":
        pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
    options = DownloadOptions(max_workers=2, max_retries=4, timeout=20, s3_region="us-east-1",
                              s3_endpoint_url=endpoint, part_size=PART)
    return plugins.get("downloaders", name)(options)


def _jobs(server: FileServer, bucket: S3Bucket, sizes: list[int]) -> tuple[list[TransferJob], list[bytes]]:
    jobs, blobs = [], []
    for i, size in enumerate(sizes):
        data = random.Random(i).randbytes(size)
        name = f"2024_01_{10 + i}_181001_00_2262.tiff"
        info = server.add(name, data)
        jobs.append(TransferJob(url=server.url(name), destination=f"s3://{bucket.name}/p/{name}", size=size,
                                sha256=str(info["sha256"]), md5=str(info["md5"]), name=name))
        blobs.append(data)
    return jobs, blobs


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.downloaders import http as http_module

    monkeypatch.setattr(http_module, "BACKOFF_BASE", 0.01)


@pytest.mark.parametrize("name", DOWNLOADERS)
def test_slowdown_on_part_uploads_is_retried_then_succeeds(name: str, proxy: FaultyS3Proxy, s3_bucket: S3Bucket,
                                                           fileserver: FileServer, fault_ledger: Any) -> None:
    downloader = _downloader(name, proxy.url)
    jobs, blobs = _jobs(fileserver, s3_bucket, [PART + 300_000])
    proxy.slowdown_parts = 2

    [result] = downloader.transfer(jobs)

    slowed = [entry for entry in proxy.log if entry[2] == 503]
    assert len(slowed) == 2 and all("partNumber=" in path for _, path, _ in slowed)
    assert result.ok, result.error
    data = s3_bucket.get(f"p/{jobs[0].name}")
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(blobs[0]).hexdigest()
    parts_stored = [e for e in proxy.log if e[0] == "PUT" and "partNumber=" in e[1] and e[2] == 200]
    assert len({path.split("partNumber=")[1].split("&")[0] for _, path, _ in parts_stored}) == 2  # two parts
    assert s3_bucket.multipart_uploads() == []
    fault_ledger.record(5, "503 SlowDown on part uploads", f"{name}/s3", len(slowed), survived=True)


def _errors(downloader: Any, jobs: list[TransferJob]) -> list[str]:
    """Each job's error: a batch-wide TransferError counts for every job, as the delivery reports it."""
    try:
        results: list[TransferResult] = downloader.transfer(jobs)
    except TransferError as exc:
        return [f"{exc.message} (hint: {exc.hint})"] * len(jobs)
    return [r.error or "" for r in results if not r.ok]


@pytest.mark.parametrize("name", DOWNLOADERS)
def test_refused_credentials_are_one_clear_error_without_retries(name: str, proxy: FaultyS3Proxy,
                                                                 s3_bucket: S3Bucket, fileserver: FileServer,
                                                                 fault_ledger: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREFUSEDKEY123456")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "refused-secret-value")
    downloader = _downloader(name, proxy.url)
    jobs, _ = _jobs(fileserver, s3_bucket, [1000, 2000, 3000])
    proxy.deny = True

    errors = _errors(downloader, jobs)

    assert len(errors) == len(jobs)
    for error in errors:
        assert "403" in error and "credentials" in error.lower(), error
        assert "refused-secret-value" not in error and "AKIAREFUSEDKEY123456" not in error
        if name != "s5cmd":  # s5cmd prints its own line; flowzero's downloaders say whose request it was
            assert f"bucket '{s3_bucket.name}'" in error and "for access key AKIAREFU\u2026" in error, error
    assert all(status == 403 for _, _, status in proxy.log)
    assert len(proxy.log) <= len(jobs)  # at most one refused request per file: no retries
    assert fileserver.requests == []  # nothing downloaded for nothing
    assert s3_bucket.keys() == [] and s3_bucket.multipart_uploads() == []
    fault_ledger.record(5, "403 refused credentials", f"{name}/s3", len(proxy.log), survived=True)
