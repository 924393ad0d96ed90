"""`flowzero generate-aoi` end to end in Debian's headless chromium, driven over the DevTools protocol.

Real mouse events draw a polygon (clicks, then a double-click), the name is typed, Save is clicked, and the
GeoJSON on disk is checked against coordinates computed here from the pixels (Web Mercator) and an area from
pyproj. Then a rectangle is saved under the same name: the page asks first, and only "Overwrite" replaces it.
The browser resolves no host name at all, so the map's tiles fail as they would offline and the page must fall
back to its plain background. Set FLOWZERO_SCREENSHOT_DIR to keep the screenshot (docs/generate-aoi.png).
"""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.fixtures.browser import Browser
from tests.fixtures.browser import chromium as _chromium

WIDTH, HEIGHT = 1280, 800
CENTER_LAT, CENTER_LON, ZOOM = 36.60, -121.60, 12
NAME = "Test_River"


pytestmark = pytest.mark.skipif(_chromium() is None,
                                reason="chromium is not installed (.ci/run installs Debian's 'chromium')")


@pytest.fixture
def editor(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """`flowzero generate-aoi` as a user starts it, on a free port; yields (url, output folder, process)."""
    output = tmp_path / "geojsons"
    process = subprocess.Popen(
        [sys.executable, "-m", "flowzero", "generate-aoi", "--port", "0", "--no-browser", "--output", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("AOI editor at http://127.0.0.1:"), (first, process.stderr and process.stderr.read())
    try:
        yield first.split()[3], output, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    binary = _chromium()
    assert binary is not None
    running = Browser(binary, tmp_path / "profile")
    try:
        running.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                     mobile=False)
        yield running
    finally:
        running.close()


def _mercator_latlng(map_box: dict[str, float]) -> Callable[[float, float], tuple[float, float]]:
    """Viewport pixel -> (lon, lat) for the map at CENTER/ZOOM, computed here, not by Leaflet."""
    scale = 256 * 2 ** ZOOM
    center_x = (CENTER_LON + 180) / 360 * scale
    lat = math.radians(CENTER_LAT)
    center_y = (1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * scale

    def to_lonlat(x: float, y: float) -> tuple[float, float]:
        px = center_x + (x - map_box["x"] - map_box["width"] / 2)
        py = center_y + (y - map_box["y"] - map_box["height"] / 2)
        lon = px / scale * 360 - 180
        lat_deg = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / scale))))
        return lon, lat_deg

    return to_lonlat


def _geodesic_km2(ring: list[list[float]]) -> float:
    from pyproj import Geod

    lons, lats = zip(*ring)
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)
    return abs(area) / 1e6


def _saved(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection" and len(document["features"]) == 1
    return document["features"][0]


def _assert_ring(ring: list[list[float]], expected: list[tuple[float, float]]) -> None:
    """Same corners (any start, any direction), within 1.5 pixels at ZOOM."""
    tolerance = 1.5 * 360 / (256 * 2 ** ZOOM)
    assert ring[0] == ring[-1] and len(ring) == len(expected) + 1
    corners = ring[:-1]
    for lon, lat in expected:
        assert any(abs(lon - c[0]) < tolerance and abs(lat - c[1]) < tolerance for c in corners), (lon, lat, corners)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_draw_name_save_and_confirm_overwrite_in_chromium(editor: tuple[str, Path, subprocess.Popen[str]],
                                                         browser: Browser, tmp_path: Path) -> None:
    url, output, process = editor
    browser.send("Page.enable")
    browser.send("Page.navigate", url=f"{url}#map={ZOOM}/{CENTER_LAT}/{CENTER_LON}")
    browser.wait_for("window.flowzeroAoi && window.flowzeroAoi.ready")
    # Tiles cannot load (no name resolves): the plain background and the note replace them.
    browser.wait_for("document.getElementById('map').classList.contains('plain')")
    assert browser.evaluate("!document.getElementById('offline-note').hidden")
    assert browser.evaluate("document.querySelectorAll('.grid-label').length") > 0
    map_box = browser.evaluate("(() => { const r = document.getElementById('map').getBoundingClientRect();"
                               " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
    to_lonlat = _mercator_latlng(map_box)
    cx, cy = map_box["x"] + map_box["width"] / 2, map_box["y"] + map_box["height"] / 2

    # A polygon: three clicks, the cursor over a fourth place shows a live area, a double-click closes it.
    corners = [(cx - 200, cy - 120), (cx + 160, cy - 150), (cx + 220, cy + 130), (cx - 150, cy + 160)]
    browser.click_element("draw-polygon")
    for x, y in corners[:3]:
        browser.click(x, y)
    browser.mouse("mouseMoved", cx, cy + 40)
    live = browser.text("area")
    assert "km²" in live, live
    browser.mouse("mouseMoved", *corners[3])
    assert browser.text("area") != live  # the area follows the cursor while drawing
    browser.click(*corners[3], clicks=2)
    assert browser.evaluate("window.flowzeroAoi.state.done")
    shown_km2 = float(browser.evaluate("document.getElementById('area').dataset.km2"))

    browser.type_into("aoi-name", NAME)
    browser.click_element("save")
    target = output / f"{NAME}.geojson"
    browser.wait_for("document.getElementById('message').classList.contains('ok')")
    feature = _saved(target)
    assert feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    _assert_ring(ring, [to_lonlat(x, y) for x, y in corners])
    true_km2 = _geodesic_km2(ring)
    assert feature["properties"]["name"] == NAME
    assert feature["properties"]["area_sqkm"] == pytest.approx(true_km2, rel=1e-6)
    assert shown_km2 == pytest.approx(true_km2, rel=0.01)  # the page's spherical area while drawing
    assert NAME in browser.text("message")
    # The list of saved AOIs is refreshed by a second request after the save: wait for it, don't race it.
    browser.wait_for(f"document.getElementById('aoi-list').textContent.includes({json.dumps(NAME)})")
    first_save = target.read_text()

    # A rectangle under the same name: the page asks first; keeping the old one writes nothing.
    a, b = (cx - 100, cy - 60), (cx + 120, cy + 90)
    browser.click_element("draw-rectangle")
    browser.click(*a)
    browser.click(*b)
    browser.type_into("aoi-name", NAME)
    screenshot = browser.send("Page.captureScreenshot", format="png")["data"]
    browser.click_element("save")
    browser.wait_for("!document.getElementById('confirm').hidden")
    assert NAME in browser.text("confirm-text")
    browser.click_element("confirm-cancel")
    assert target.read_text() == first_save
    browser.click_element("save")
    browser.wait_for("!document.getElementById('confirm').hidden")
    browser.click_element("confirm-overwrite")
    browser.wait_for("document.getElementById('message').classList.contains('ok')")
    rectangle = _saved(target)["geometry"]["coordinates"][0]
    (ax, ay), (bx, by) = to_lonlat(*a), to_lonlat(*b)
    _assert_ring(rectangle, [(ax, ay), (bx, ay), (bx, by), (ax, by)])
    assert sorted(p.name for p in output.iterdir()) == [f"{NAME}.geojson"]  # no temp files left behind

    import base64

    png = base64.b64decode(screenshot)
    assert _png_size(png) == (WIDTH, HEIGHT)
    (tmp_path / "generate-aoi.png").write_bytes(png)
    if os.environ.get("FLOWZERO_SCREENSHOT_DIR"):
        Path(os.environ["FLOWZERO_SCREENSHOT_DIR"], "generate-aoi.png").write_bytes(png)

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
