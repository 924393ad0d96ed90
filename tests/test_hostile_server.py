"""Issue #19, hostile or odd answers and surroundings: what servers send, a damaged database, a browser on
another site, two runs of one order, file modes, reruns.

Text from servers is shown inert (no rich markup, no terminal control sequences); odd search results are skipped
and reported while the rest of the search goes on; a damaged SQLite file stops a run before anything is ordered;
the AOI editor answers every request and refuses other sites. Real sockets throughout: a scripted "Planet" on
127.0.0.1, the sandbox, real SQLite files, the AOI editor's server.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.models import Order
from flowzero.sandbox import Sandbox
from tests.fixtures.loopback import LoopbackServer, QuietHandler
from tests.test_ordering_batch import write_gage_shapefile

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
JANUARY = ("--start-date", "2024-01-01", "--end-date", "2024-01-31")
ORDERS_PATH = "/compute/ops/orders/v2"
# Markup rich would read, OSC 8 hyperlinks and window titles, screen clearing, 8-bit CSI, a carriage return.
HOSTILE_TEXT = ("[/red][link=http://evil.example]click[/link] \x1b]8;;http://evil.example\x07here\x1b]8;;\x07 "
                "\x1b]0;pwned\x07\x1b[2J\x9b31mred\rover")
CONTROLS = ("\x1b", "\x9b", "\x07", "\r")


def refused(result: Result, *fragments: str, code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.output
    assert lines and lines[-1].startswith("Error: ") and "unexpected" not in lines[-1], result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def no_controls(*texts: str) -> bool:
    return not any(c in text for text in texts for c in CONTROLS)


# -- a scripted Planet ----------------------------------------------------------------------------------------------


class ScriptedPlanet:
    """Answers searches with ``features`` and order GETs from ``orders``; anything else is a 404 whose message is
    hostile text."""

    def __init__(self) -> None:
        self.features: list[Any] = []
        self.orders: dict[str, dict[str, Any]] = {}
        planet = self

        class Handler(QuietHandler):
            def _answer(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/data/v1/quick-search"):
                    self._answer(200, {"type": "FeatureCollection", "features": planet.features, "_links": {}})
                else:
                    self._answer(404, {"message": HOSTILE_TEXT})

            def do_GET(self) -> None:
                order = planet.orders.get(self.path.rsplit("/", 1)[-1])
                self._answer(200, order) if order else self._answer(404, {"message": HOSTILE_TEXT})

        self._http = LoopbackServer(Handler).start()
        self.url = self._http.url

    def close(self) -> None:
        self._http.close()


@pytest.fixture
def planet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedPlanet]:
    scripted = ScriptedPlanet()
    for key, value in {"PL_API_KEY": "scripted-key", "FLOWZERO_PLANET_API_URL": f"{scripted.url}/data/v1",
                       "FLOWZERO_PLANET_ORDERS_URL": f"{scripted.url}/orders/v2",
                       "FLOWZERO_PLANET_MAX_RETRIES": "0",
                       "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db")}.items():
        monkeypatch.setenv(key, value)
    yield scripted
    scripted.close()


def point_at(sandbox: Sandbox, db: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> dict[str, str]:
    """Point flowzero (in this process and in the ones it starts) at the sandbox and the database ``db``."""
    values = {"PL_API_KEY": "sandbox-key", "FLOWZERO_PLANET_API_URL": sandbox.api_url,
              "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url, "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
              "FLOWZERO_DATABASE_PATH": str(db), **extra}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def _scene(ident: Any, acquired: Any = "2024-01-10T18:30:00Z", cloud: Any = 0.0) -> dict[str, Any]:
    """A search result whose footprint covers the whole Salinas AOI."""
    from flowzero.aoi import load_aoi

    west, south, east, north = load_aoi(SALINAS).bbox
    footprint = [[[west - 1, south - 1], [east + 1, south - 1], [east + 1, north + 1], [west - 1, north + 1],
                  [west - 1, south - 1]]]
    return {"id": ident, "type": "Feature", "geometry": {"type": "Polygon", "coordinates": footprint},
            "properties": {"acquired": acquired, "cloud_cover": cloud, "item_type": "PSScene"}}


# -- items 6, 7 and 17: what Planet sends is shown inert, odd search results are skipped ----------------------------


def test_odd_search_results_are_skipped_and_reported_and_the_rest_is_shown_as_sent(
        planet: ScriptedPlanet) -> None:
    planet.features = [
        _scene("20240105_181001_00_2262", "2024-01-05T18:10:01Z"),
        "a string, not a feature",
        _scene(12345, "2024-01-06T18:10:01Z"),
        _scene("20240107_181001_00_2262", "yesterday"),
        _scene("20240108_181001_00_2262", "2024-01-08T18:10:01Z", cloud="lots"),
        {"id": "20240109_181001_00_2262", "properties": ["not", "an", "object"]},
        _scene("[/b]20240111_181001_00_2262\x1b[2J", "2024-01-11T18:10:01Z"),
    ]

    result = invoke("search-scenes", "--geojson", str(SALINAS), *JANUARY)

    assert result.exit_code == 0, result.output
    assert "skipped 5 search result(s) that are no usable scene" in result.stderr
    assert "invalid acquired timestamp 'yesterday'" in result.stderr and "cloud_cover 'lots'" in result.stderr
    assert "20240105_181001_00_2262" in result.stdout
    assert "[/b]20240111_181001_00_2262" in result.stdout  # the id as sent, minus the control sequence
    assert no_controls(result.stdout, result.stderr)
    assert "Found 2 scene(s)" in result.stdout
    as_json = json.loads(invoke("search-scenes", "--geojson", str(SALINAS), *JANUARY, "--json").stdout)
    assert as_json["found"] == 2 and len(as_json["skipped_results"]) == 5


def test_planet_hints_and_messages_with_markup_and_terminal_controls_are_shown_inert(
        planet: ScriptedPlanet, tmp_path: Path) -> None:
    from flowzero.storage.sqlite import SqliteOrderStore

    planet.orders["o-hostile"] = {"id": "o-hostile", "state": "failed", "error_hints": [HOSTILE_TEXT],
                                  "last_message": HOSTILE_TEXT, "_links": {}}
    with SqliteOrderStore(tmp_path / "orders.db") as store:
        store.save_order(Order("o-hostile", aoi_name="SalinasRiver", status="running"))

    shown = invoke("check-order-status", "o-hostile")
    unknown = invoke("check-order-status", "00000000-0000-0000-0000-00000000dead")

    assert shown.exit_code == 1, shown.output  # the order failed at Planet
    assert "[/red][link=http://evil.example]click[/link]" in shown.stdout  # markup shown, not applied
    assert "here" in shown.stdout and "pwned" not in shown.stdout  # a link's text stays, a window title goes
    refused(unknown, "unknown order id", "[/red][link=http://evil.example]click[/link]", code=2)
    assert no_controls(shown.stdout, shown.stderr, unknown.stderr)


def test_markup_in_imported_ids_names_and_batches_is_listed_as_written(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWZERO_DATABASE_PATH", str(tmp_path / "orders.db"))
    legacy = tmp_path / "orders.json"
    legacy.write_text(json.dumps([{"order_id": "[/bold]order-1", "aoi_name": "SalinasRiver", "status": "success",
                                   "batch_id": "[link=http://evil.example]B1[/link]",
                                   "product_bundle": "[bold red]analytic\x1b[5m", "start_date": "2024-01-01",
                                   "end_date": "2024-01-31"}]))
    assert invoke("db", "import-json", str(legacy)).exit_code == 0

    orders, batches = invoke("db", "list-orders"), invoke("db", "list-batches")

    assert orders.exit_code == 0 and batches.exit_code == 0, orders.output + batches.output
    assert "[/bold]order-1" in orders.stdout and "[link=http://evil.example]B1[/link]" in orders.stdout
    assert "[link=http://evil.example]B1[/link]" in batches.stdout
    assert no_controls(orders.stdout, batches.stdout)


# -- item 10: a damaged database is found before an order is placed -----------------------------------------------


def _damage_an_index(db: Path) -> None:
    """Overwrite the root page of the orders' batch_id index: reads by AOI and date still work, an insert does not."""
    import apsw

    conn = apsw.Connection(str(db))
    [(root,)] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'idx_orders_batch_id'")
    [(page_size,)] = conn.execute("PRAGMA page_size")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with db.open("r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xa5" * page_size)


def test_a_partly_damaged_database_stops_the_run_before_planet_gets_an_order(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_order: Callable[..., Order]) -> None:
    from flowzero.storage.sqlite import SqliteOrderStore

    db = tmp_path / "orders.db"
    with SqliteOrderStore(db) as store:
        for n in range(400):
            store.save_order(make_order(f"old-{n:03d}", aoi_name=f"Gage{n:03d}", batch_id=f"batch-{n % 7}"))
    _damage_an_index(db)
    point_at(sandbox, db, monkeypatch)

    result = invoke("submit", "--geojson", str(SALINAS), *JANUARY, "--cadence", "monthly")

    refused(result, f"database {db} is damaged", "nothing was ordered", code=1)
    assert [r for r in sandbox.requests() if r["method"] == "POST" and r["path"] == ORDERS_PATH] == []
    assert "Error" not in invoke("submit", "--geojson", str(SALINAS), *JANUARY, "--dry-run").stderr  # reads work


# -- item 18: the AOI editor answers everything, times out silent clients, refuses other sites ----------------------


@pytest.fixture
def editor(tmp_path: Path) -> Iterator[Any]:
    from flowzero.webaoi.server import AoiEditor

    with AoiEditor(tmp_path / "aois", tiles="", idle_timeout=0.5) as running:
        yield running


def _post(editor: Any, body: bytes, origin: str | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", editor.port, timeout=10)
    headers = {"Content-Type": "application/json", "Host": f"127.0.0.1:{editor.port}"}
    if origin:
        headers["Origin"] = origin
    connection.request("POST", "/api/aois", body=body, headers=headers)
    answer = connection.getresponse()
    data = json.loads(answer.read() or b"{}")
    connection.close()
    return answer.status, data


SQUARE = {"type": "Polygon", "coordinates": [[[-121.5, 36.6], [-121.4, 36.6], [-121.4, 36.7], [-121.5, 36.7],
                                              [-121.5, 36.6]]]}


def test_the_aoi_editor_answers_unusable_bodies_with_400(editor: Any, tmp_path: Path) -> None:
    collection = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": SQUARE}]}
    status, answer = _post(editor, json.dumps({"name": "fc", "geometry": collection}).encode())
    assert status == 400 and "unreadable geometry" in answer["error"]
    status, answer = _post(editor, b'{"name": "deep", "geometry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert status == 400 and "nested too deeply" in answer["error"]
    status, _ = _post(editor, json.dumps({"name": "Square", "geometry": SQUARE}).encode())
    assert status == 201  # the server is still there, and saves what is fine
    assert sorted(p.name for p in (tmp_path / "aois").iterdir()) == ["Square.geojson"]


def test_the_aoi_editor_drops_a_client_that_stops_sending(editor: Any) -> None:
    with socket.create_connection(("127.0.0.1", editor.port), timeout=10) as client:
        client.sendall(f"POST /api/aois HTTP/1.1\r\nHost: 127.0.0.1:{editor.port}\r\n"
                       "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
        started = time.monotonic()
        assert client.recv(1024) == b""  # closed by the server: the thread is free again
        assert time.monotonic() - started < 5
    with socket.create_connection(("127.0.0.1", editor.port), timeout=10) as idle:
        assert idle.recv(1024) == b""  # a connection that never sends a request is closed too


def test_the_aoi_editor_refuses_saves_from_another_site(editor: Any, tmp_path: Path) -> None:
    body = json.dumps({"name": "Evil", "geometry": SQUARE}).encode()
    status, answer = _post(editor, body, origin="http://evil.example")
    assert status == 403 and "own page" in answer["error"]
    assert not (tmp_path / "aois" / "Evil.geojson").exists()
    assert _post(editor, body, origin=f"http://127.0.0.1:{editor.port}")[0] == 201  # its own page may


# -- item 19: a Planet failure is not an unknown order -----------------------------------------------------------


def test_planet_failing_on_an_unrecorded_order_is_a_planet_failure_not_an_unknown_id(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_at(sandbox, tmp_path / "o.db", monkeypatch, FLOWZERO_PLANET_MAX_RETRIES="1")
    sandbox.set_faults(server_errors=[500, 500])

    failed = invoke("check-order-status", "00000000-0000-0000-0000-00000000beef")

    line = refused(failed, "Planet could not be asked", "HTTP 500", code=1)
    assert "unknown order id" not in line
    refused(invoke("check-order-status", "00000000-0000-0000-0000-00000000beef"), "unknown order id", code=2)


# -- items 23, 24 and 27: deliveries and reruns ---------------------------------------------------------------------


@pytest.fixture
def ordered(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One finished order, recorded; the environment points flowzero at the sandbox and its database."""
    values = point_at(sandbox, tmp_path / "orders.db", monkeypatch)
    sandbox.set_faults(order_polls_per_state=0)
    submitted = invoke("submit", "--geojson", str(SALINAS), *JANUARY, "--cadence", "monthly", "--json")
    [order] = json.loads(submitted.stdout)["orders"]
    return {"order_id": order["order_id"], "env": values}


def test_a_run_finding_the_order_held_for_another_folder_says_nothing_was_delivered_and_fails(
        ordered: dict[str, Any], sandbox: Sandbox, tmp_path: Path) -> None:
    from flowzero.storage.sqlite import SqliteOrderStore

    first_out, second_out = tmp_path / "first", tmp_path / "second"
    sandbox.set_faults(slow_ms=400)  # run A is still delivering when run B starts
    first = subprocess.Popen([sys.executable, "-m", "flowzero", "check-order-status", ordered["order_id"],
                              "--output", str(first_out)], env={**os.environ, **ordered["env"]},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with SqliteOrderStore(tmp_path / "orders.db") as store:
            deadline = time.monotonic() + 30
            while store.get_claim(ordered["order_id"]) is None:
                assert time.monotonic() < deadline, "run A never claimed the order"
                time.sleep(0.02)
            holder = store.get_claim(ordered["order_id"])
        second = invoke("check-order-status", ordered["order_id"], "--output", str(second_out))
    finally:
        _, err = first.communicate(timeout=120)

    assert second.exit_code == 1, second.output
    assert f"held by another run ({holder['worker']}) delivering to {first_out}; nothing delivered here" \
        in " ".join(second.stdout.split())
    assert not second_out.exists() or not any(second_out.rglob("*.tiff"))
    assert first.returncode == 0, err
    assert list(first_out.rglob("*.tiff"))


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_downloader_gives_delivered_files_the_mode_the_umask_asks_for(ordered: dict[str, Any],
                                                                           tmp_path: Path, umask: int) -> None:
    found = {}
    old = os.umask(umask)
    try:
        for downloader in ("threads", "fast"):
            out = tmp_path / downloader
            result = invoke("check-order-status", ordered["order_id"], "--output", str(out), "--downloader",
                            downloader)
            assert result.exit_code == 0, result.output
            found[downloader] = _modes(out)
    finally:
        os.umask(old)
    assert found["threads"] == found["fast"] == {0o666 & ~umask}


def test_a_batch_rerun_names_the_batch_that_holds_the_orders(sandbox: Sandbox, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    point_at(sandbox, tmp_path / "orders.db", monkeypatch)
    gages = write_gage_shapefile(tmp_path / "g", [("G-1", "2024-01-01", "2024-01-31", "salinas")])
    first = json.loads(invoke("batch-submit", "--shp", str(gages), "--cadence", "monthly", "--json").stdout)

    rerun = invoke("batch-submit", "--shp", str(gages), "--cadence", "monthly")
    as_json = json.loads(invoke("batch-submit", "--shp", str(gages), "--cadence", "monthly", "--json").stdout)

    assert rerun.exit_code == 0, rerun.output
    assert f"1 already ordered in batch {first['batch_id']}: flowzero batch-check-status {first['batch_id']}" \
        in rerun.stdout
    assert "holds no orders" in rerun.stdout
    assert as_json["earlier_batches"] == {first["batch_id"]: 1} and as_json["batch_id"] != first["batch_id"]
    checked = invoke("batch-check-status", first["batch_id"], "--json")
    assert checked.exit_code == 0 and len(json.loads(checked.stdout)["orders"]) == 1
    assert len([r for r in sandbox.requests() if r["method"] == "POST" and r["path"] == ORDERS_PATH]) == 1
