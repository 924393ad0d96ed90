"""Issue #19, a Planet-like server that sends too much, lies or points elsewhere (items 2, 3, 4, 5, 8, 9, 14, 21).

A scripted server on 127.0.0.1 plays Planet: order GETs, a manifest, search pages, and download links whose bodies
are longer than the manifest says, endless, chunked, ignoring Range, or trickling. A second server on another port
(another origin) records every Authorization header it receives. The real CLI runs against them; what each server
received is asserted, as are the files on disk.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from tests.fixtures.loopback import LoopbackServer, QuietHandler

ORDER_ID = "8d2f7c9e-1f0b-4a38-9c31-0c1e6a1b2d3e"
ITEM = "20240105_181001_00_2262"
IMAGE = f"{ITEM}_3B_AnalyticMS_SR_clip.tif"
CONTENT = bytes(range(256)) * 256  # 64 KiB: what the manifest describes
SALINAS = Path(__file__).parent / "data" / "aoi" / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"


@dataclass
class Recorder:
    """A server on another origin: it answers 404 and remembers who came with credentials."""

    paths: list[str] = field(default_factory=list)
    authorized: list[str] = field(default_factory=list)

    def start(self) -> tuple[LoopbackServer, str]:
        recorder = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                recorder.paths.append(self.path)
                if self.headers.get("Authorization"):
                    recorder.authorized.append(self.path)
                body = b'{"message": "not here"}'
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

        server = LoopbackServer(Handler).start()
        return server, server.url


class HostilePlanet:
    """``download(handler)`` answers the image; ``manifest_size`` / ``manifest_digest`` say what it should be."""

    def __init__(self, other: str) -> None:
        self.other = other
        self.download: Callable[[QuietHandler], None] = lambda h: _send(h, 200, CONTENT)
        self.manifest_entry: dict[str, Any] | None = {
            "path": f"PSScene/{IMAGE}", "size": len(CONTENT), "media_type": "image/tiff",
            "digests": {"sha256": hashlib.sha256(CONTENT).hexdigest()},
            "annotations": {"planet/item_id": ITEM, "planet/asset_type": "ortho_analytic_4b_sr"}}
        self.manifest_url: str | None = None  # default: on this server
        self.order_body: Callable[[QuietHandler], None] | None = None
        self.search_pages: Callable[[int], dict[str, Any]] | None = None
        self.sent_bytes = 0
        self.requests: list[str] = []
        planet = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                planet.requests.append(self.path)
                path = self.path.partition("?")[0]
                if path == f"/orders/v2/{ORDER_ID}":
                    if planet.order_body is not None:
                        planet.order_body(self)
                    else:
                        _send(self, 200, json.dumps(planet.order()).encode())
                elif path == "/files/manifest.json":
                    files = [planet.manifest_entry] if planet.manifest_entry else []
                    _send(self, 200, json.dumps({"files": files}).encode())
                elif path == f"/files/{IMAGE}":
                    planet.download(self)
                elif path.startswith("/data/v1/page/"):
                    assert planet.search_pages is not None
                    _send(self, 200, json.dumps(planet.search_pages(int(path.rsplit("/", 1)[-1]))).encode())
                else:
                    _send(self, 404, b'{"message": "no"}')

            def do_POST(self) -> None:
                planet.requests.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                assert planet.search_pages is not None
                _send(self, 200, json.dumps(planet.search_pages(0)).encode())

        self._server = LoopbackServer(Handler).start()
        self.url = self._server.url

    def order(self) -> dict[str, Any]:
        files = f"{self.url}/files"
        return {"id": ORDER_ID, "name": "hostile", "state": "success", "source_type": "scenes",
                "products": [{"item_ids": [ITEM], "item_type": "PSScene", "product_bundle": "analytic_sr_udm2"}],
                "_links": {"results": [
                    {"name": f"{ORDER_ID}/PSScene/{IMAGE}", "location": f"{files}/{IMAGE}?token=t1",
                     "delivery": "success", "expires_at": "2999-01-01T00:00:00.000Z"},
                    {"name": f"{ORDER_ID}/manifest.json", "delivery": "success",
                     "location": self.manifest_url or f"{files}/manifest.json?token=t2",
                     "expires_at": "2999-01-01T00:00:00.000Z"}]}}

    def close(self) -> None:
        self._server.close()


def _send(handler: QuietHandler, status: int, body: bytes, length: int | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    try:
        handler.wfile.write(body)
    except OSError:  # the client hung up early, as flowzero does on a body it refuses
        pass


@pytest.fixture
def planet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HostilePlanet, Recorder]]:
    recorder = Recorder()
    other_server, other = recorder.start()
    hostile = HostilePlanet(other)
    for key, value in {"PL_API_KEY": "hostile-test-key", "FLOWZERO_PLANET_API_URL": f"{hostile.url}/data/v1",
                       "FLOWZERO_PLANET_ORDERS_URL": f"{hostile.url}/orders/v2",
                       "FLOWZERO_PLANET_BASEMAPS_URL": f"{hostile.url}/basemaps/v1/mosaics",
                       "FLOWZERO_PLANET_MAX_RETRIES": "1", "FLOWZERO_PLANET_TIMEOUT": "2",
                       "FLOWZERO_DELIVERY_ASSETS": "image", "FLOWZERO_DELIVERY_CATALOG": "false",
                       "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("flowzero.downloaders.http.BACKOFF_BASE", 0.01)
    yield hostile, recorder
    hostile.close()
    other_server.close()


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def deliver(out: Path, *extra: str) -> tuple[Result, dict[str, Any]]:
    result = invoke("check-order-status", ORDER_ID, "--output", str(out), "--json", *extra)
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else {})


def on_disk(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and p.name != "metadata.json"]


# -- item 2: bodies larger than the manifest says, endless, chunked and ignoring Range ----------------------------


def test_a_download_announcing_more_than_the_manifest_is_refused_before_a_byte_is_written(
        planet: tuple[HostilePlanet, Recorder], tmp_path: Path) -> None:
    hostile, _ = planet

    def oversized(h: QuietHandler) -> None:
        hostile.requests.append("image")
        h.send_response(200)
        h.send_header("Content-Length", str(3 * 1024**3))  # 3 GiB for a 64 KiB file
        h.end_headers()
        try:
            for _ in range(64):
                h.wfile.write(b"\0" * 65536)
        except OSError:
            pass  # the client hung up, as it should

    hostile.download = oversized
    result, report = deliver(tmp_path / "out")
    assert result.exit_code == 1 and report["category"] == "incomplete"
    [failure] = report["failed_files"]
    assert "announces 3,221,225,472 bytes, the manifest says 65,536" in failure["error"]
    assert hostile.requests.count("image") == 1  # a mismatch, not a retry
    assert on_disk(tmp_path / "out") == []  # nothing at the final name, no temp file left


def test_an_endless_chunked_body_that_ignores_range_stops_just_past_the_manifest_size(
        planet: tuple[HostilePlanet, Recorder], tmp_path: Path) -> None:
    hostile, _ = planet
    sent = {"bytes": 0}

    def endless(h: QuietHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            for _ in range(100_000):  # 6.5 GB, if nobody stops reading
                h.wfile.write(b"10000\r\n" + b"\1" * 65536 + b"\r\n")
                sent["bytes"] += 65536
        except OSError:
            pass

    hostile.download = endless
    result, report = deliver(tmp_path / "out")
    assert result.exit_code == 1
    assert "sent more than 65,536 bytes" in report["failed_files"][0]["error"]
    assert sent["bytes"] < 64 * 1024 * 1024  # the client stopped reading at once (kernel buffers aside)
    assert on_disk(tmp_path / "out") == []


def test_a_file_of_unknown_size_is_capped_by_the_setting(planet: tuple[HostilePlanet, Recorder], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    hostile, _ = planet
    hostile.manifest_entry = None  # no manifest entry: no size, no digest
    hostile.download = lambda h: _send(h, 200, b"\2" * (3 * 1024 * 1024))
    monkeypatch.setenv("FLOWZERO_DOWNLOADS_MAX_UNKNOWN_SIZE_MIB", "2")
    result, report = deliver(tmp_path / "out")
    assert result.exit_code == 1
    assert "downloads.max_unknown_size_mib" in report["failed_files"][0]["error"]
    assert on_disk(tmp_path / "out") == []


# -- item 8: files with no manifest entry or no digest are not "delivered" ----------------------------------------


@pytest.mark.parametrize("entry", ["missing", "no-digest"])
def test_files_nobody_can_verify_are_unverified_unless_allowed(planet: tuple[HostilePlanet, Recorder],
                                                               tmp_path: Path, entry: str) -> None:
    hostile, _ = planet
    if entry == "missing":
        hostile.manifest_entry = None
    else:
        assert hostile.manifest_entry is not None
        hostile.manifest_entry["digests"] = {}
    result, report = deliver(tmp_path / "out")
    assert result.exit_code == 1 and report["category"] == "unverified"
    assert "not verified" in report["message"] and "--allow-unverified" in report["message"]
    allowed, report = deliver(tmp_path / "out", "--allow-unverified")
    assert allowed.exit_code == 0 and report["category"] == "delivered"
    assert [p.read_bytes() for p in on_disk(tmp_path / "out")] == [CONTENT]


# -- item 14: a source that trickles -----------------------------------------------------------------------------


def test_a_stalled_download_is_given_up_instead_of_hanging(planet: tuple[HostilePlanet, Recorder],
                                                           tmp_path: Path) -> None:
    hostile, _ = planet

    def trickle(h: QuietHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(CONTENT)))
        h.end_headers()
        try:
            for byte in CONTENT[:40]:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(0.4)  # a byte every 0.4 s: never idle for the 2 s read timeout, far below 1 KiB/s
        except OSError:
            pass

    hostile.download = trickle
    started = time.monotonic()
    result, report = deliver(tmp_path / "out")
    assert result.exit_code == 1
    assert "stalled" in report["failed_files"][0]["error"]
    assert time.monotonic() - started < 12  # two attempts of ~2 s each, not 40 x 0.4 s per attempt


# -- item 3: the key goes to Planet's origins only ------------------------------------------------------------------


def test_a_manifest_on_another_host_is_fetched_without_the_key(planet: tuple[HostilePlanet, Recorder],
                                                               tmp_path: Path) -> None:
    hostile, recorder = planet
    hostile.manifest_url = f"{hostile.other}/manifest.json?token=t2"
    invoke("check-order-status", ORDER_ID, "--output", str(tmp_path / "out"), "--json")
    assert recorder.paths == ["/manifest.json?token=t2"]  # asked for...
    assert recorder.authorized == []  # ...without the key (the token authorizes)


def test_a_next_page_on_another_host_is_refused_and_never_receives_the_key(planet: tuple[HostilePlanet, Recorder],
                                                                         ) -> None:
    hostile, recorder = planet
    hostile.search_pages = lambda n: {"type": "FeatureCollection", "features": [{"id": f"x{n}"}],
                                      "_links": {"_next": f"{hostile.other}/steal?page={n + 1}"}}
    result = invoke("search-scenes", "--geojson", str(SALINAS), "--start-date", "2024-01-01", "--end-date",
                    "2024-01-31")
    assert result.exit_code == 1
    assert "the next page is on another host" in result.stderr and "refused" in result.stderr
    assert recorder.paths == []


# -- items 4, 5: bodies and pages without end ----------------------------------------------------------------------


def test_an_endless_order_answer_is_a_planet_failure_not_an_unknown_order(planet: tuple[HostilePlanet, Recorder],
                                                                          tmp_path: Path) -> None:
    hostile, _ = planet

    def endless_json(h: QuietHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            h.wfile.write(b'1\r\n[\r\n')
            for _ in range(10_000):  # 650 MB of '[' if nobody stops
                h.wfile.write(b"10000\r\n" + b"[" * 65536 + b"\r\n")
        except OSError:
            pass

    hostile.order_body = endless_json
    result = invoke("check-order-status", ORDER_ID)
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "larger than the 64 MiB flowzero reads" in line and "unknown order id" not in line


def test_pagination_that_never_ends_stops_when_a_page_brings_nothing_new(planet: tuple[HostilePlanet, Recorder],
                                                                         ) -> None:
    hostile, _ = planet
    calls = {"n": 0}

    def page(n: int) -> dict[str, Any]:
        calls["n"] += 1
        return {"type": "FeatureCollection", "features": [{"id": "the-same-scene", "properties": {}}],
                "_links": {"_next": f"{hostile.url}/data/v1/page/{calls['n']}"}}  # always a new link

    hostile.search_pages = page
    result = invoke("search-scenes", "--geojson", str(SALINAS), "--start-date", "2024-01-01", "--end-date",
                    "2024-01-31", "--json")
    assert result.exit_code == 0, result.output
    assert calls["n"] == 2  # the first page, and the one that repeated it


# -- item 9: ids are one path segment -----------------------------------------------------------------------------


@pytest.mark.parametrize("order_id", ["../../../admin/keys", "a/b", "..", "%2e%2e", "x y"])
def test_an_order_id_that_is_not_an_id_never_reaches_another_path(planet: tuple[HostilePlanet, Recorder],
                                                                  order_id: str) -> None:
    hostile, _ = planet
    result = invoke("check-order-status", order_id)
    assert result.exit_code == 2, result.output
    assert "is not a valid order id" in result.stderr
    assert hostile.requests == []


# -- item 21: a Retry-After longer than the budget ------------------------------------------------------------------


def test_a_huge_retry_after_is_reported_at_once_not_waited(planet: tuple[HostilePlanet, Recorder]) -> None:
    hostile, _ = planet
    hostile.order_body = lambda h: (h.send_response(429), h.send_header("Retry-After", "999999"),
                                    h.send_header("Content-Length", "2"), h.end_headers(), h.wfile.write(b"{}"))
    started = time.monotonic()
    result = invoke("check-order-status", ORDER_ID)
    assert result.exit_code == 1
    assert "Planet asks to wait 999,999 s (Retry-After), more than the 600 s left" in result.stderr
    assert time.monotonic() - started < 5


def test_threads_are_not_left_behind() -> None:
    """The servers above answer from daemon threads; nothing of flowzero's keeps running after a command."""
    assert not [t for t in threading.enumerate() if t.name.startswith("flowzero-poll")]
