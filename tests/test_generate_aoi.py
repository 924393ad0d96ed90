"""`generate-aoi` without a browser: the folder rules (names, geometry, no overwrite), the JSON API and the CLI.

The page itself is tested in chromium by tests/test_generate_aoi_browser.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowzero.errors import AOIError
from flowzero.webaoi import AoiEditor, AoiExistsError, AoiFolder, validate_name

# Clockwise on purpose (the file must come out counter-clockwise, RFC 7946).
SQUARE = {"type": "Polygon", "coordinates": [[[-121.50, 38.50], [-121.50, 38.58], [-121.40, 38.58],
                                              [-121.40, 38.50], [-121.50, 38.50]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


def _ring_is_ccw(ring: list[list[float]]) -> bool:
    return sum((b[0] - a[0]) * (b[1] + a[1]) for a, b in zip(ring, ring[1:])) < 0


# -- the folder ------------------------------------------------------------------------------------------------


def test_save_writes_a_wgs84_feature_collection_with_the_geodesic_area(tmp_path: Path) -> None:
    from pyproj import Geod

    folder = AoiFolder(tmp_path / "new" / "geojsons")
    saved = folder.save("Salinas_upper", SQUARE)
    path = tmp_path / "new" / "geojsons" / "Salinas_upper.geojson"
    assert saved.file == str(path)
    document = json.loads(path.read_text())
    [feature] = document["features"]
    ring = feature["geometry"]["coordinates"][0]
    assert sorted(map(tuple, ring[:-1])) == sorted(map(tuple, SQUARE["coordinates"][0][:-1]))
    assert _ring_is_ccw(ring)
    lons, lats = zip(*ring)
    expected = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0]) / 1e6
    assert feature["properties"]["area_sqkm"] == pytest.approx(expected, rel=1e-6)
    assert saved.area_sqkm == pytest.approx(expected, rel=1e-6)
    assert saved.aoi_name == "Salinas_upper"
    # What submit reads back is the same AOI.
    from flowzero.aoi import load_aoi

    assert load_aoi(path).area_sqkm == pytest.approx(expected, rel=1e-6)


def test_an_existing_name_is_kept_unless_overwrite_is_asked(tmp_path: Path) -> None:
    folder = AoiFolder(tmp_path)
    folder.save("River", SQUARE)
    before = (tmp_path / "River.geojson").read_text()
    smaller = {"type": "Polygon", "coordinates": [[[-121.5, 38.5], [-121.45, 38.5], [-121.45, 38.55],
                                                   [-121.5, 38.5]]]}
    with pytest.raises(AoiExistsError, match="already exists"):
        folder.save("River", smaller)
    assert (tmp_path / "River.geojson").read_text() == before
    folder.save("River", smaller, overwrite=True)
    assert (tmp_path / "River.geojson").read_text() != before
    assert [p.name for p in tmp_path.iterdir()] == ["River.geojson"]  # no temp file left


@pytest.mark.parametrize(("name", "message"), [
    ("", "cannot be empty"), ("   ", "cannot be empty"), ("../etc", "must not contain"),
    ("a/b", "must not contain"), ("a\\b", "must not contain"), ("a b", "for example"), ("río", "for example"),
    ("x" * 121, "longer than"), (None, "must be text"), (5, "must be text"),
])
def test_names_that_are_not_plain_file_names_are_refused(name: Any, message: str) -> None:
    with pytest.raises(AOIError) as caught:
        validate_name(name)
    assert message in f"{caught.value.message} {caught.value.hint}"


def test_a_plain_name_is_kept_as_typed() -> None:
    assert validate_name(" Scott_River-2.v1 ") == "Scott_River-2.v1"


@pytest.mark.parametrize(("geometry", "message"), [
    (BOWTIE, "invalid polygon"),
    ({"type": "Point", "coordinates": [0, 0]}, "not an area"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [200, 1], [0, 0]]]}, "out of range"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "invalid polygon"),
    (None, "GeoJSON Polygon"), ("POLYGON((0 0, 1 0, 1 1, 0 0))", "GeoJSON Polygon"),
    ({"type": "Polygon", "coordinates": "nope"}, "unreadable geometry"),
])
def test_geometries_submit_would_refuse_are_refused_and_nothing_is_written(tmp_path: Path, geometry: Any,
                                                                         message: str) -> None:
    with pytest.raises(AOIError, match=message):
        AoiFolder(tmp_path).save("Bad", geometry)
    assert list(tmp_path.iterdir()) == []


def test_listing_shows_saved_aois_and_flags_unreadable_files(tmp_path: Path) -> None:
    folder = AoiFolder(tmp_path)
    assert folder.list() == []
    folder.save("b_river", SQUARE)
    (tmp_path / "a_broken.geojson").write_text("{not json")
    (tmp_path / ".b_river.geojson.123.tmp").write_text("half")
    (tmp_path / "notes.txt").write_text("not an AOI")
    listed = folder.list()
    assert [a.name for a in listed] == ["a_broken", "b_river"]
    assert listed[0].error is not None and "not valid JSON" in listed[0].error
    assert listed[1].error is None and listed[1].geometry is not None and listed[1].area_sqkm > 50


# -- the JSON API ----------------------------------------------------------------------------------------------


@pytest.fixture
def editor(tmp_path: Path) -> Iterator[AoiEditor]:
    with AoiEditor(tmp_path / "geojsons", tiles="") as running:
        yield running


def _client(editor: AoiEditor) -> httpx.Client:
    return httpx.Client(base_url=editor.url, timeout=10)


def test_api_saves_lists_and_answers_409_for_an_existing_name(editor: AoiEditor) -> None:
    with _client(editor) as client:
        assert client.get("/api/aois").json()["aois"] == []
        created = client.post("/api/aois", json={"name": "Cosumnes", "geometry": SQUARE})
        assert created.status_code == 201
        assert created.json()["saved"]["area_sqkm"] > 0
        again = client.post("/api/aois", json={"name": "Cosumnes", "geometry": SQUARE})
        assert again.status_code == 409 and again.json()["exists"] is True
        invalid = client.post("/api/aois", json={"name": "Cosumnes", "geometry": BOWTIE, "overwrite": True})
        assert invalid.status_code == 400 and "invalid polygon" in invalid.json()["error"]
        listed = client.get("/api/aois").json()
        assert [a["name"] for a in listed["aois"]] == ["Cosumnes"]
        assert listed["aois"][0]["area_sqkm"] == created.json()["saved"]["area_sqkm"]
        assert client.get("/api/config").json()["tiles"] == ""


def test_api_refuses_what_the_page_never_sends(editor: AoiEditor) -> None:
    body = json.dumps({"name": "X", "geometry": SQUARE})
    with _client(editor) as client:
        assert client.post("/api/aois", content=body, headers={"Content-Type": "text/plain"}).status_code == 415
        assert client.post("/api/aois", content="{oops", headers={"Content-Type": "application/json"}
                           ).status_code == 400
        assert client.post("/api/aois", json=[1, 2]).status_code == 400
        assert client.post("/api/other", json={}).status_code == 404
        assert client.get("/api/aois", headers={"Host": "attacker.example:80"}).status_code == 403
        assert client.post("/api/aois", content=body, headers={"Host": "attacker.example",
                                                               "Content-Type": "application/json"}).status_code == 403
    assert not editor.folder.path.exists()


def _raw_get(editor: AoiEditor, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", editor.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{editor.port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_page_and_vendored_leaflet_are_served_and_nothing_outside_static(editor: AoiEditor) -> None:
    with _client(editor) as client:
        page = client.get("/")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        assert "/static/leaflet/leaflet.js" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
        script = client.get("/static/leaflet/leaflet.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert client.get("/static/leaflet/LICENSE").status_code == 404  # no type to serve it as
    for path in ("/static/../folder.py", "/static/%2e%2e/folder.py", "/static/../../errors.py"):
        assert _raw_get(editor, path).startswith(b"HTTP/1.1 404"), path


def test_concurrent_saves_of_one_name_write_it_once(editor: AoiEditor) -> None:
    statuses: list[int] = []

    def post() -> None:
        with _client(editor) as client:
            statuses.append(client.post("/api/aois", json={"name": "Race", "geometry": SQUARE}).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]


# -- the command -----------------------------------------------------------------------------------------------


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowzero", "generate-aoi", "--no-browser", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_busy_port_bad_output_and_bad_tiles_are_one_line_errors(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _run("--port", str(busy.getsockname()[1]), "--output", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("Error: cannot listen on 127.0.0.1:") and result.stderr.count("\n") == 1
    (tmp_path / "afile").write_text("x")
    result = _run("--port", "0", "--output", str(tmp_path / "afile"))
    assert result.returncode == 2 and "is a file" in result.stderr
    result = _run("--port", "0", "--tiles", "ftp://tiles")
    assert result.returncode == 2 and "not a tile URL template" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_command_serves_until_sigterm_and_says_what_is_saved(tmp_path: Path) -> None:
    output = tmp_path / "aois"
    process = subprocess.Popen([sys.executable, "-m", "flowzero", "generate-aoi", "--port", "0", "--no-browser",
                                "--output", str(output), "--tiles", "none"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[3]
        assert url.startswith("http://127.0.0.1:")
        created = httpx.post(f"{url}api/aois", json={"name": "Scott", "geometry": SQUARE}, timeout=10)
        assert created.status_code == 201
        assert httpx.get(f"{url}api/config", timeout=10).json()["tiles"] == ""
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "1 AOI file(s)" in err and (output / "Scott.geojson").is_file()


def test_the_cli_default_tiles_are_the_servers() -> None:
    from flowzero.cli.generate_aoi import DEFAULT_TILES as CLI_TILES
    from flowzero.webaoi import DEFAULT_TILES

    assert CLI_TILES == DEFAULT_TILES
