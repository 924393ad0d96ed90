"""Downloads (tokens, ranges, expiry) and every fault switch, against a real sandbox on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from flowzero.sandbox import Sandbox
from tests.fixtures.sandbox import (
    SANDBOX_FILE_SIZE,
    order_request,
    orderable_item_ids,
    search_request,
    wait_final,
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(auth=("any-key", ""), timeout=20) as c:
        yield c


@pytest.fixture
def delivered(sandbox: Sandbox, client: httpx.Client) -> dict:
    """A successful one-item order: its JSON, the analytic image's result, its true bytes and digests."""
    items = orderable_item_ids(client, sandbox, 1)
    order = wait_final(
        client, sandbox, client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    )
    results = order["_links"]["results"]
    manifest = json.loads(
        client.get(next(r for r in results if r["name"].endswith("manifest.json"))["location"]).text
    )
    image = next(r for r in results if r["name"].endswith("_AnalyticMS_SR_clip.tif"))
    entry = next(e for e in manifest["files"] if image["name"].endswith(e["path"]))
    data = client.get(image["location"]).content
    assert hashlib.md5(data).hexdigest() == entry["digests"]["md5"] and len(data) == SANDBOX_FILE_SIZE
    sandbox.clear_requests()
    return {"order": order, "image": image, "url": image["location"], "data": data}


def _raw_get(url: str, headers: str = "") -> tuple[bytes, bytes]:
    """Send one GET over a plain socket; return (head, whatever body arrived before the server closed)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{headers}\r\n".encode())
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


# -- downloads --


def test_ranges_give_206_with_content_range(client: httpx.Client, delivered: dict) -> None:
    url, data = delivered["url"], delivered["data"]
    full = client.get(url)
    assert full.headers["Accept-Ranges"] == "bytes" and full.headers["Content-Type"] == "image/tiff"
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert (
        part.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
        and part.headers["Content-Length"] == "1000"
    )
    tail = client.get(url, headers={"Range": "bytes=60000-"})
    assert tail.status_code == 206 and tail.content == data[60000:]
    suffix = client.get(url, headers={"Range": "bytes=-10"})
    assert suffix.status_code == 206 and suffix.content == data[-10:]
    for bad in (f"bytes={len(data)}-", "bytes=9-3", "lines=1-2"):
        refused = client.get(url, headers={"Range": bad})
        assert refused.status_code == 416 and refused.headers["Content-Range"] == f"bytes */{len(data)}"
    head = client.head(url)
    assert (
        head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and head.content == b""
    )


def test_downloads_need_their_own_token(client: httpx.Client, delivered: dict) -> None:
    url = delivered["url"]
    base = url.split("?")[0]
    assert httpx.get(url).status_code == 200  # the token alone authorizes, like Planet's signed URLs
    assert httpx.get(base).status_code == 403
    assert httpx.get(f"{base}?token=wrong").status_code == 403
    other = next(r for r in delivered["order"]["_links"]["results"] if r["name"].endswith("udm2_clip.tif"))
    assert httpx.get(f"{base}?token={other['location'].split('token=')[1]}").status_code == 403
    assert httpx.get(f"{base}.missing?token=x").status_code == 404


def test_expired_links_give_410_until_the_order_is_fetched_again(
    sandbox: Sandbox, client: httpx.Client, delivered: dict
) -> None:
    order_id = delivered["order"]["id"]
    sandbox.set_faults(expire_links=True)
    assert sandbox.faults["expire_links"] is False  # one-shot
    gone = client.get(delivered["url"])
    assert gone.status_code == 410 and "expired" in gone.json()["general"][0]["message"]
    listed = client.get(sandbox.orders_url).json()["orders"][0]
    assert all(
        r["expires_at"] < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        for r in listed["_links"]["results"]
    )  # the listing still shows the expired links
    fresh = client.get(f"{sandbox.orders_url}/{order_id}").json()
    location = next(
        r["location"] for r in fresh["_links"]["results"] if r["name"] == delivered["image"]["name"]
    )
    assert location != delivered["url"]
    assert client.get(location).content == delivered["data"]
    assert client.get(delivered["url"]).status_code in (403, 410)


# -- fault switches --


def test_rate_limit_gives_429_with_retry_after(
    sandbox: Sandbox, client: httpx.Client, delivered: dict
) -> None:
    sandbox.set_faults(rate_limit=2, retry_after=3)
    statuses = [client.get(sandbox.orders_url) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "3" and statuses[0].json()["general"][0]["message"]
    sandbox.set_faults(rate_limit=1)
    assert client.get(delivered["url"]).status_code == 200  # downloads are not API requests
    assert client.get(sandbox.orders_url).status_code == 429


def test_server_errors_count_or_list(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_faults(server_errors=2)
    assert [client.get(sandbox.basemaps_url).status_code for _ in range(3)] == [503, 503, 200]
    sandbox.set_faults(server_errors=[500, 502, 504])
    assert [client.get(sandbox.basemaps_url).status_code for _ in range(4)] == [500, 502, 504, 200]


def test_download_errors(sandbox: Sandbox, client: httpx.Client, delivered: dict) -> None:
    sandbox.set_faults(download_errors=[503, 500])
    assert client.head(delivered["url"]).status_code == 200  # HEAD consumes no fault
    assert [client.get(delivered["url"]).status_code for _ in range(3)] == [503, 500, 200]


def test_drop_mid_body_resets_the_connection_at_half(
    sandbox: Sandbox, client: httpx.Client, delivered: dict
) -> None:
    sandbox.set_faults(drop_mid_body=1)
    with pytest.raises(httpx.TransportError):
        client.get(delivered["url"])
    assert client.get(delivered["url"]).content == delivered["data"]
    sandbox.set_faults(drop_mid_body=1)
    head, body = _raw_get(delivered["url"])
    assert f"Content-Length: {SANDBOX_FILE_SIZE}".encode() in head
    assert len(body) <= SANDBOX_FILE_SIZE // 2 and delivered["data"].startswith(body)


def test_short_body_closes_cleanly_early(sandbox: Sandbox, client: httpx.Client, delivered: dict) -> None:
    sandbox.set_faults(short_body=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(delivered["url"])
    sandbox.set_faults(short_body=1)
    head, body = _raw_get(delivered["url"], "Range: bytes=1000-\r\n")
    expected = SANDBOX_FILE_SIZE - 1000
    assert b"206" in head.split(b"\r\n")[0] and f"Content-Length: {expected}".encode() in head
    assert body == delivered["data"][1000 : 1000 + expected * 3 // 4]


def test_flip_byte_corrupts_exactly_one_byte(sandbox: Sandbox, client: httpx.Client, delivered: dict) -> None:
    sandbox.set_faults(flip_byte=1)
    corrupted = client.get(delivered["url"]).content
    differences = [i for i, (a, b) in enumerate(zip(corrupted, delivered["data"])) if a != b]
    assert len(corrupted) == len(delivered["data"]) and differences == [SANDBOX_FILE_SIZE // 2]
    assert client.get(delivered["url"]).content == delivered["data"]


def test_ignore_range_answers_200_with_everything(
    sandbox: Sandbox, client: httpx.Client, delivered: dict
) -> None:
    sandbox.set_faults(ignore_range=True)
    response = client.get(delivered["url"], headers={"Range": "bytes=10-20"})
    assert response.status_code == 200 and response.content == delivered["data"]
    sandbox.set_faults(ignore_range=False)
    assert client.get(delivered["url"], headers={"Range": "bytes=10-20"}).status_code == 206


def test_slow_ms_delays_responses(sandbox: Sandbox, client: httpx.Client) -> None:
    started = time.monotonic()
    client.get(sandbox.basemaps_url)
    quick = time.monotonic() - started
    sandbox.set_faults(slow_ms=300)
    started = time.monotonic()
    client.get(sandbox.basemaps_url)
    assert time.monotonic() - started >= 0.3 > quick


def test_counters_are_exact_under_concurrency(sandbox: Sandbox) -> None:
    sandbox.set_faults(rate_limit=10)
    statuses: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        with httpx.Client(auth=("k", "")) as own:
            status = own.get(sandbox.basemaps_url, params={"_page_size": "1"}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=hit) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(429) == 10 and statuses.count(200) == 20


def test_switches_over_http_and_the_request_log(sandbox: Sandbox, client: httpx.Client) -> None:
    control = f"{sandbox.url}/_sandbox"
    assert client.post(f"{control}/faults", json={"rate_limit": 1, "slow_ms": 5}).json()["rate_limit"] == 1
    shown = client.get(f"{control}/faults").json()
    assert shown["rate_limit"] == 1 and shown["slow_ms"] == 5
    bad = client.post(f"{control}/faults", json={"rate_limit": -1})
    assert bad.status_code == 400 and "rate_limit" in bad.json()["general"][0]["message"]
    assert client.post(f"{control}/faults", json={"explode": True}).status_code == 400
    assert client.post(f"{control}/next-order", json={"outcome": "maybe"}).status_code == 400
    assert client.post(f"{control}/faults/reset").json()["rate_limit"] == 0
    assert client.post(f"{control}/faults", json={"reset": True, "short_body": 2}).json()["short_body"] == 2
    client.delete(f"{control}/requests")
    client.post(f"{sandbox.api_url}/quick-search", json=search_request())
    client.post(sandbox.orders_url, json={"name": "bad"})
    log = client.get(f"{control}/requests").json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/data/v1/quick-search", 200),
        ("POST", "/compute/ops/orders/v2", 400),
    ]
    assert sandbox.requests()[-1]["path"] == "/compute/ops/orders/v2"


def test_request_log_never_holds_tokens(sandbox: Sandbox, client: httpx.Client, delivered: dict) -> None:
    client.get(delivered["url"])
    entry = sandbox.requests()[-1]
    assert entry["path"] == urlsplit(delivered["url"]).path and "token" not in json.dumps(entry)


def test_keep_alive_serves_several_requests_on_one_connection(sandbox: Sandbox, delivered: dict) -> None:
    parts = urlsplit(delivered["url"])
    request = f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(request)
            received = b""
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
            while len(body) < SANDBOX_FILE_SIZE:
                body += sock.recv(65536)
            assert body == delivered["data"]


def test_a_cleaned_payload_folder_is_refilled_with_the_same_bytes(sandbox: Sandbox, client: httpx.Client,
                                                                  delivered: dict) -> None:
    payloads = sandbox.data_dir / "payloads"
    removed = [p for p in payloads.iterdir() if p.suffix == ".tif"]
    for path in removed:
        path.unlink()
    assert removed
    assert client.get(delivered["url"]).content == delivered["data"]
