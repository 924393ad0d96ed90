"""Reliability items 12 and 13: hostile result names from the server, and bad input from the user.

Item 12: a hostile "Planet" on 127.0.0.1 (a tiny HTTP server in this file) answers an order whose results are
named with ``..``, absolute paths, backslashes, a NUL and a 300-character name, next to one honest file. Every
downloader delivers it to a local folder and to S3 (moto): the hostile names are refused and reported, the
honest file arrives, and nothing is written outside the destination folder or prefix.

Item 13: bad input on the command line ends in one line on stderr, a non-zero exit, no traceback, and an order
database whose bytes are exactly what they were (sha256 of the file before and after).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.models import Order
from tests.fixtures.loopback import LoopbackServer, QuietHandler

AOI = "SalinasRiver"
MOSAIC = "global_monthly_2024_03_mosaic"
GOOD_KEY = f"basemaps/{AOI}/2024_03/L15-0345E-1240N.tif"
HOSTILE = [
    "../../escape-parent.tif",
    "/etc/escape-absolute.tif",
    "quads\\..\\..\\escape-backslash.tif",
    "quads/escape\x00-nul.tif",
    "quads/" + "x" * 300 + ".tif",
    "quads/../../../escape-climb.tif",
]
ORDER_ID = "0b7c4e1e-1111-4d2e-9a59-6c0e1c4e1ea1"


class HostilePlanet:
    """Serves one finished basemap order whose result names try to leave the destination."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._http = LoopbackServer(self._handler()).start()
        names = [*HOSTILE, "quads/L15-0345E-1240N.tif"]
        for i, name in enumerate(names):
            self.files[f"f{i}"] = hashlib.sha256(name.encode()).digest() * 2048  # 64 KiB each
        manifest = {"name": "", "files": [
            {"path": name, "size": len(self.files[f"f{i}"]), "media_type": "image/tiff",
             "digests": {"sha256": hashlib.sha256(self.files[f"f{i}"]).hexdigest()}}
            for i, name in enumerate(names)]}
        self.files["manifest"] = json.dumps(manifest).encode()
        results = [{"name": name, "location": f"{self.url}/files/f{i}?token=hostile-token-{i}",
                    "delivery": "success"} for i, name in enumerate(names)]
        results.append({"name": f"{ORDER_ID}/manifest.json", "location": f"{self.url}/files/manifest?token=m",
                        "delivery": "success"})
        self.order = {"id": ORDER_ID, "name": "hostile", "state": "success", "source_type": "basemaps",
                      "products": [{"mosaic_name": MOSAIC}], "_links": {"results": results}}

    @property
    def url(self) -> str:
        return self._http.url

    def close(self) -> None:
        self._http.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        planet = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == f"/orders/v2/{ORDER_ID}":
                    body, kind = json.dumps(planet.order).encode(), "application/json"
                elif path.startswith("/files/") and path[7:] in planet.files:
                    body, kind = planet.files[path[7:]], "application/octet-stream"
                else:
                    body, kind = b'{"message": "not found"}', "application/json"
                    self.send_response(404)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostilePlanet]:
    planet = HostilePlanet()
    for key, value in {"PL_API_KEY": "k-hostile", "FLOWZERO_PLANET_ORDERS_URL": f"{planet.url}/orders/v2",
                       "FLOWZERO_PLANET_API_URL": f"{planet.url}/data/v1",
                       "FLOWZERO_PLANET_BASEMAPS_URL": f"{planet.url}/basemaps/v1/mosaics",
                       "FLOWZERO_PLANET_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(key, value)
    yield planet
    planet.close()


def _record_order(db: Path) -> None:
    from flowzero.storage.sqlite import SqliteOrderStore

    with SqliteOrderStore(db) as store:
        store.save_order(Order(order_id=ORDER_ID, aoi_name=AOI, order_type="Basemap (Composite)",
                               mosaic_name=MOSAIC, status="success"))


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


TARGETS = [("threads", "local"), ("threads", "s3"), ("fast", "local"), ("fast", "s3"), ("s5cmd", "s3")]


@pytest.mark.parametrize(("downloader", "kind"), TARGETS, ids=[f"{d}-{k}" for d, k in TARGETS])
def test_hostile_result_names_are_refused_and_nothing_leaves_the_destination(
        hostile: HostilePlanet, tmp_path: Path, downloader: str, kind: str, request: pytest.FixtureRequest) -> None:
    if downloader == "s5cmd":
        pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
    work = tmp_path / "work"
    out = work / "a" / "b" / "out"  # ../../ from inside would still be inside tmp_path: it is watched
    out.mkdir(parents=True)
    db = tmp_path / "db" / "orders.db"
    _record_order(db)
    before = _files(tmp_path)
    bucket = request.getfixturevalue("s3_bucket") if kind == "s3" else None
    output = f"s3://{bucket.name}/safe/prefix" if bucket else str(out)

    result = CliRunner().invoke(cli, ["--database-path", str(db), "check-order-status", ORDER_ID, "--output",
                                      output, "--downloader", downloader, "--json"], catch_exceptions=False)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["category"] == "incomplete"
    assert len(report["failed_files"]) == len(HOSTILE)  # each refused, and said so
    assert all("unsafe" in f["error"] or "longer than" in f["error"] for f in report["failed_files"])
    assert "\x00" not in result.output  # the NUL is shown escaped, not written raw
    new_files = _files(tmp_path) - before
    if bucket is None:
        # only the honest file (no metadata.json: the order is not completely delivered)
        assert new_files == {f"work/a/b/out/{GOOD_KEY}"} | {f for f in new_files if f.startswith("db/")}
        good = (out / GOOD_KEY).read_bytes()
    else:
        assert not [f for f in new_files if not f.startswith(("db/", "home"))]  # nothing local at all
        keys = bucket.keys()
        assert keys == [f"safe/prefix/{GOOD_KEY}"]
        good = bucket.get(f"safe/prefix/{GOOD_KEY}")
    assert good == hostile.files[f"f{len(HOSTILE)}"]  # the honest file arrived, verified


def test_hostile_item_id_in_the_manifest_is_refused(tmp_path: Path) -> None:
    from flowzero.delivery.destination import Destination
    from flowzero.delivery.jobs import plan_delivery
    from flowzero.delivery.manifest import parse_manifest

    name = "o/PSScene/20240105_181001_00_2262_3B_AnalyticMS_clip.tif"
    order = {"id": "o", "state": "success", "products": [{"item_ids": ["20240105_181001_00_2262"]}],
             "_links": {"results": [{"name": name, "location": "http://127.0.0.1:9/x", "delivery": "success"}]}}
    manifest = parse_manifest({"files": [{"path": name, "size": 3, "digests": {"sha256": "ab" * 32},
                                          "annotations": {"planet/item_id": "20240105_../../../escape"}}]})
    plan = plan_delivery(order, Order("o", aoi_name=AOI, num_bands="four_bands"), manifest,
                         Destination("local", str(tmp_path)))
    assert plan.jobs == [] and len(plan.refused) == 1 and "unsafe" in (plan.refused[0].error or "")


# -- item 13: bad input -----------------------------------------------------------------------------------------

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS_SHP = DATA / "Salinas" / "DrySpy_AOI_SalinasRiver.shp"
SALINAS_JSON = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
GOOD_DATES = ("--start-date", "2024-01-01", "--end-date", "2024-01-31")


def _bad_inputs(folder: Path) -> dict[str, list[str]]:
    """name -> command line; each must fail with one line and touch nothing."""
    from tests.test_ordering_batch import write_gage_shapefile

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "malformed.geojson").write_text('{"type": "FeatureCollection", "features": [')
    (folder / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (folder / "bowtie.geojson").write_text(json.dumps({"type": "Polygon", "coordinates": [
        [[-121.5, 36.6], [-121.4, 36.7], [-121.4, 36.6], [-121.5, 36.7], [-121.5, 36.6]]]}))
    (folder / "null-geometry.geojson").write_text('{"type": "Feature", "properties": {}, "geometry": null}')
    (folder / "binary.geojson").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    no_dbf = folder / "nodbf"
    no_dbf.mkdir(exist_ok=True)
    for part in SALINAS_SHP.parent.iterdir():
        if part.suffix != ".dbf":
            shutil.copy(part, no_dbf / part.name)
    columns = write_gage_shapefile(folder / "cols", [("G-1", "2024-01-01", "2024-03-31", "salinas")],
                                   columns=("site", "begin", "finish"))
    (folder / "config-dir.yaml").mkdir(exist_ok=True)
    (folder / "bad.yaml").write_text("planet: [unclosed\n")
    (folder / "latin1.yaml").write_bytes(b"s3:\n  bucket_name: caf\xe9\x00\n")
    aoi = ("--geojson", str(SALINAS_JSON))
    return {
        "malformed GeoJSON": ["submit", "--geojson", str(folder / "malformed.geojson"), *GOOD_DATES],
        "empty GeoJSON": ["submit", "--geojson", str(folder / "empty.geojson"), *GOOD_DATES],
        "self-intersecting polygon": ["submit", "--geojson", str(folder / "bowtie.geojson"), *GOOD_DATES],
        "null geometry": ["submit", "--geojson", str(folder / "null-geometry.geojson"), *GOOD_DATES],
        "binary file as GeoJSON": ["search-scenes", "--geojson", str(folder / "binary.geojson"), *GOOD_DATES],
        "shapefile without .dbf": ["submit", "--geojson", str(no_dbf / SALINAS_SHP.name), *GOOD_DATES],
        "batch shapefile missing columns": ["batch-submit", "--shp", str(columns)],
        "unparseable date": ["submit", *aoi, "--start-date", "2024-13-45", "--end-date", "2024-12-31"],
        "reversed dates": ["submit", *aoi, "--start-date", "2024-03-01", "--end-date", "2024-01-01"],
        "unknown order id (db get)": ["db", "get", "no-such-order"],
        "unknown order id (Planet)": ["check-order-status", "00000000-0000-0000-0000-00000000dead"],
        "unknown batch id": ["batch-check-status", "no-such-batch", "--output", str(folder / "o")],
        "config is a folder": ["--config", str(folder / "config-dir.yaml"), "db", "stats"],
        "config is not YAML": ["--config", str(folder / "bad.yaml"), "db", "stats"],
        "config is not UTF-8": ["--config", str(folder / "latin1.yaml"), "db", "stats"],
        "missing config": ["--config", str(folder / "absent.yaml"), "db", "stats"],
    }


def _db_fingerprint(db: Path) -> tuple[str, int]:
    """The database file's sha256, and how many bytes of not yet checkpointed writes its WAL holds."""
    wal = db.with_name(db.name + "-wal")
    return hashlib.sha256(db.read_bytes()).hexdigest(), wal.stat().st_size if wal.exists() else 0


@pytest.fixture
def filled_db(tmp_path: Path, make_order: Any) -> Path:
    from flowzero.storage.sqlite import SqliteOrderStore

    db = tmp_path / "state" / "orders.db"
    with SqliteOrderStore(db) as store:
        for i in range(3):
            store.save_order(make_order(f"order-{i}", batch_id="B1", status="success"))
        store.record_intent("pending-name", {"aoi_name": AOI})
    return db


def test_bad_input_is_one_line_and_leaves_the_database_untouched(filled_db: Path, tmp_path: Path, sandbox: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"PL_API_KEY": "k-input", "FLOWZERO_PLANET_API_URL": sandbox.api_url,
                       "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
                       "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
                       "FLOWZERO_PLANET_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(key, value)
    fingerprint = _db_fingerprint(filled_db)
    failures = []
    for name, args in _bad_inputs(tmp_path / "inputs").items():
        result: Result = CliRunner().invoke(cli, ["--database-path", str(filled_db), *args])
        lines = result.stderr.strip().splitlines()  # status lines may come first; the error is one line, last
        one_line = (bool(lines) and lines[-1].startswith("Error: ") and sum("rror" in line for line in lines) == 1
                    and "unexpected" not in lines[-1] and not any(line.startswith("Usage:") for line in lines))
        clean_exit = result.exit_code != 0 and (result.exception is None or isinstance(result.exception, SystemExit))
        if not (one_line and clean_exit and "Traceback" not in result.output):
            failures.append((name, result.exit_code, result.output, repr(result.exception)))
        if _db_fingerprint(filled_db) != fingerprint:
            failures.append((name, "the database changed"))
    assert failures == [], "\n".join(map(repr, failures))
    assert [r for r in sandbox.requests() if r["method"] == "POST"] == []  # nothing searched or ordered
