"""Issue #19, hostile input from the user: AOI files, batch shapefiles, dates, config, command options.

Every bad input ends in one ``Error:`` line on stderr and exit status 2, never a traceback or an "unexpected"
crash, and nothing is ordered. Inputs that merely look odd but are fine (an empty YAML value, Planet's SDK form
of the Basemaps URL, a MultiPolygon cut at the antimeridian) work. Commands run in-process through click's
runner against the Planet sandbox, or as real processes where a bad input could hang or exhaust the test
process (a FIFO, /dev/zero).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.sandbox import Sandbox
from tests.test_ordering_batch import write_gage_shapefile

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
SALINAS_SHP = DATA / "Salinas" / "DrySpy_AOI_SalinasRiver.shp"
JANUARY = ("--start-date", "2024-01-01", "--end-date", "2024-01-31")
Run = Callable[..., Result]


@pytest.fixture
def env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"PL_API_KEY": "hostile-input-key", "FLOWZERO_PLANET_API_URL": sandbox.api_url,
              "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url, "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
              "FLOWZERO_PLANET_MAX_RETRIES": "1", "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db")}
    monkeypatch.chdir(tmp_path)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    sandbox.set_faults(order_polls_per_state=0)
    return values


@pytest.fixture
def run(env: dict[str, str]) -> Run:
    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(cli, list(args))
        assert "Traceback" not in result.output, result.output
        return result

    return invoke


def refused(result: Result, *fragments: str, code: int = 2) -> str:
    """The one error line of a run refused with ``code``; it names each of ``fragments``."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.output
    assert lines and lines[-1].startswith("Error: "), result.stderr
    assert sum(line.startswith("Error") for line in lines) == 1 and "unexpected" not in lines[-1], result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def no_orders_posted(sandbox: Sandbox) -> bool:
    return not [r for r in sandbox.requests() if r["method"] == "POST" and r["path"].endswith("/orders/v2")]


# -- item 11: AOI files that are no regular file, or far too big -------------------------------------------------


def _limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))  # a runaway read dies, not the machine


def test_aoi_files_that_are_no_regular_file_or_too_big_are_refused_before_reading(
        run: Run, env: dict[str, str], tmp_path: Path, sandbox: Sandbox) -> None:
    from flowzero.aoi.readers import MAX_AOI_FILE_BYTES

    fifo = tmp_path / "pipe.geojson"
    os.mkfifo(fifo)  # nobody writes to it: opening it blocks forever
    zero = tmp_path / "zero.geojson"
    zero.symlink_to("/dev/zero")  # reading it never ends
    huge = tmp_path / "huge.geojson"
    with huge.open("wb") as handle:  # sparse: no disk used, but read whole it would be held in memory
        handle.truncate(MAX_AOI_FILE_BYTES + 1)
    folder = tmp_path / "folder.geojson"
    folder.mkdir()
    parts = tmp_path / "parts"
    parts.mkdir()
    for part in SALINAS_SHP.parent.iterdir():
        if part.suffix != ".dbf":
            shutil.copy(part, parts / part.name)
    os.mkfifo(parts / SALINAS_SHP.with_suffix(".dbf").name)  # a shapefile part that would block too

    for path in (fifo, zero, parts / SALINAS_SHP.name):
        done = subprocess.run([sys.executable, "-m", "flowzero", "search-scenes", "--geojson", str(path),
                               *JANUARY], env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
                              preexec_fn=_limited_memory)
        assert done.returncode == 2, (path, done.stderr)
        assert done.stderr.strip().splitlines()[-1].endswith("not a regular file (hint: give the path of a "
                                                              ".geojson, .json or .shp file)"), done.stderr
    refused(run("search-scenes", "--geojson", str(folder), *JANUARY), "folder.geojson: not a regular file")
    refused(run("search-scenes", "--geojson", str(huge), *JANUARY), "is more than an AOI file may be (67 MB)")
    assert sandbox.requests() == []  # refused before Planet was asked anything


# -- item 12: duplicate gage ids ----------------------------------------------------------------------------------


def test_duplicate_gage_ids_are_refused_naming_the_records_in_dry_run_and_real_run(
        run: Run, tmp_path: Path, sandbox: Sandbox) -> None:
    same = write_gage_shapefile(tmp_path / "same", [("G-1", "2024-01-01", "2024-01-31", "salinas"),
                                                     ("G-2", "2024-01-01", "2024-01-31", "scott"),
                                                     ("G-1", "2024-02-01", "2024-02-29", "scott")])
    alike = write_gage_shapefile(tmp_path / "alike", [("Gage 7", "2024-01-01", "2024-01-31", "salinas"),
                                                       ("Gage_7", "2024-01-01", "2024-01-31", "scott")])
    for extra in (["--dry-run"], []):
        refused(run("batch-submit", "--shp", str(same), "--cadence", "monthly", *extra),
                "gage ids must be unique", "'G-1' in records 1, 3")
        refused(run("batch-submit", "--shp", str(alike), "--cadence", "monthly", *extra),
                "'Gage_7' in records 1, 2 (as 'Gage 7', 'Gage_7')")
    assert no_orders_posted(sandbox)


# -- item 13: the antimeridian ------------------------------------------------------------------------------------

ACROSS = [[179.9, -16.2], [-179.9, -16.2], [-179.9, -16.0], [179.9, -16.0], [179.9, -16.2]]
CUT = [[[[179.9, -16.2], [180.0, -16.2], [180.0, -16.0], [179.9, -16.0], [179.9, -16.2]]],
       [[[-180.0, -16.2], [-179.9, -16.2], [-179.9, -16.0], [-180.0, -16.0], [-180.0, -16.2]]]]


def test_an_aoi_across_the_antimeridian_is_refused_and_one_cut_there_is_searched_as_drawn(
        run: Run, tmp_path: Path, sandbox: Sandbox) -> None:
    from flowzero.aoi import geodesic_area_sqkm

    across = tmp_path / "Fiji.geojson"
    across.write_text(json.dumps({"type": "Polygon", "coordinates": [ACROSS]}))
    refused(run("submit", "--geojson", str(across), *JANUARY, "--dry-run"), "crosses the antimeridian",
            "cut it in two at 180°")
    cut = tmp_path / "FijiCut.geojson"
    cut.write_text(json.dumps({"type": "MultiPolygon", "coordinates": CUT}))

    result = run("search-scenes", "--geojson", str(cut), *JANUARY, "--cadence", "monthly", "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    expected = geodesic_area_sqkm({"type": "MultiPolygon", "coordinates": CUT})
    assert 400 < expected < 500 and found["area_sqkm"] == pytest.approx(expected, rel=1e-6)
    [search] = [r for r in sandbox.requests() if r["path"].endswith("/quick-search")]
    assert search["status"] == 200
    assert found["quota_hectares"] == pytest.approx(found["area_sqkm"] * found["selected"] * 100, rel=1e-3)
    assert no_orders_posted(sandbox)


# -- item 15: config numbers out of range -------------------------------------------------------------------------

@pytest.mark.parametrize(("variable", "value", "named"), [
    ("FLOWZERO_DOWNLOADS_MAX_WORKERS", "100000000", "downloads.max_workers must be between 1 and 256"),
    ("FLOWZERO_PLANET_TIMEOUT", "0", "planet.timeout must be between 0.1 and 3600"),
    ("FLOWZERO_PLANET_TIMEOUT", "-1", "planet.timeout must be between 0.1 and 3600"),
    ("FLOWZERO_PLANET_TIMEOUT", "nan", "planet.timeout must be between 0.1 and 3600, got nan"),
    ("FLOWZERO_DOWNLOADS_PART_SIZE_MIB", "-1", "downloads.part_size_mib must be between 5 and 5120"),
    ("FLOWZERO_DOWNLOADS_MIN_COVERAGE_PCT", "inf", "downloads.min_coverage_pct must be between 0 and 100"),
    ("FLOWZERO_PLANET_MAX_RETRIES", "1e3", "expected a int"),
])
def test_config_numbers_out_of_range_name_the_key_the_range_and_the_source(
        run: Run, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str) -> None:
    monkeypatch.setenv(variable, value)
    refused(run("db", "stats"), f"environment variable {variable}", named)


def test_a_config_file_number_out_of_range_names_the_file(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "flowzero.yaml"
    config.write_text("downloads:\n  max_workers: 100000000\n")
    refused(run("--config", str(config), "db", "stats"), f"config file {config}",
            "downloads.max_workers must be between 1 and 256, got 100000000")


# -- item 16: input that used to crash as "unexpected" -----------------------------------------------------------


def _garbage_shapefile(folder: Path, part: str) -> Path:
    folder.mkdir()
    for file in SALINAS_SHP.parent.iterdir():
        shutil.copy(file, folder / file.name)
    target = folder / SALINAS_SHP.with_suffix(part).name
    target.write_bytes(bytes(range(256)) * 8)
    return folder / SALINAS_SHP.name


def test_odd_aoi_documents_dates_and_chunk_lengths_are_bad_input_not_crashes(run: Run, tmp_path: Path,
                                                                             sandbox: Sandbox) -> None:
    def write(name: str, text: str) -> str:
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)

    polygon = {"type": "Polygon", "coordinates": [[[-121.5, 36.6], [-121.4, 36.6], [-121.4, 36.7],
                                                   [-121.5, 36.6]]]}
    crs_list = write("crs.geojson", json.dumps({**polygon, "crs": {"type": "name", "properties": ["EPSG:3310"]}}))
    deep = write("deep.geojson", "[" * 100_000 + "]" * 100_000)
    circle = write("circle.geojson", json.dumps({"type": "Feature", "properties": {},
                                                 "geometry": {"type": "Circle", "coordinates": [0, 0]}}))
    cases = {
        "crs.properties a list": (["search-scenes", "--geojson", crs_list, *JANUARY], "malformed 'crs' member"),
        "JSON 100,000 deep": (["search-scenes", "--geojson", deep, *JANUARY], "nested too deeply"),
        "geometry type Circle": (["search-scenes", "--geojson", circle, *JANUARY], "Unknown geometry type"),
        "garbage .shp": (["search-scenes", "--geojson", str(_garbage_shapefile(tmp_path / "s", ".shp")),
                          *JANUARY], "cannot read the shapefile"),
        "garbage .dbf": (["search-scenes", "--geojson", str(_garbage_shapefile(tmp_path / "d", ".dbf")),
                          *JANUARY], "cannot read the shapefile"),
        "year 9999": (["submit", "--geojson", str(SALINAS), "--start-date", "9999-01-01", "--end-date",
                       "9999-12-31", "--dry-run"], "dates must lie between 1900-01-01 and 2999-12-31"),
        "--max-months 1e20": (["batch-submit", "--shp", str(SALINAS_SHP), "--max-months", "1e20"],
                              "'1e20' is not a valid integer"),
    }
    for name, (args, fragment) in cases.items():
        result = run(*args)
        assert result.exit_code == 2, (name, result.output)
        refused(result, fragment)
    gages_9999 = write_gage_shapefile(tmp_path / "g9999", [("G-1", "9999-01-01", "9999-12-31", "salinas")])
    refused(run("batch-submit", "--shp", str(gages_9999), "--dry-run"), "gage G-1", "dates must lie between")
    assert no_orders_posted(sandbox)


def test_a_chunk_length_longer_than_the_range_is_one_chunk(run: Run, tmp_path: Path) -> None:
    gages = write_gage_shapefile(tmp_path / "g", [("G-1", "2024-01-01", "2024-12-31", "salinas")])
    result = run("batch-submit", "--shp", str(gages), "--max-months", str(10**20), "--cadence", "monthly",
                 "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    [order] = json.loads(result.stdout)["orders"]
    assert (order["start_date"], order["end_date"]) == ("2024-01-01", "2024-12-31")


# -- item 20: --output that cannot be a folder --------------------------------------------------------------------


def test_an_output_that_is_a_file_or_under_proc_is_refused_before_anything_is_fetched(
        run: Run, tmp_path: Path, sandbox: Sandbox) -> None:
    submitted = run("submit", "--geojson", str(SALINAS), *JANUARY, "--cadence", "monthly", "--json")
    [order] = json.loads(submitted.stdout)["orders"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me\n")
    sandbox.clear_requests()
    for output, fragment in ((a_file, "is a file, not a folder"), (a_file / "sub", "is a file, so no folder"),
                             (Path("/proc/self/flowzero-out"), "cannot create files in /proc/self")):
        refused(run("check-order-status", order["order_id"], "--output", str(output)), f"--output {output}",
                fragment)
    assert sandbox.requests() == []  # neither the order nor any file was fetched
    assert a_file.read_text() == "keep me\n"


# -- item 22: --wait-timeout that is no time ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "0"])
def test_a_wait_timeout_that_is_no_time_is_refused(run: Run, sandbox: Sandbox, value: str) -> None:
    result = run("check-order-status", "00000000-0000-0000-0000-000000000001", "--wait", "--wait-timeout", value)
    refused(result, f"--wait-timeout {value}", "give a number of seconds above 0")
    assert sandbox.requests() == []


# -- item 25: config show names each value's source ----------------------------------------------------------------


def test_config_show_names_where_each_value_came_from(run: Run, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "flowzero.yaml"
    config.write_text("downloads:\n  max_workers: 3\n")
    monkeypatch.setenv("FLOWZERO_PLANET_TIMEOUT", "5")
    shown = json.loads(run("--config", str(config), "config", "show", "--json").stdout)
    sources = shown["sources"]
    assert sources["planet.timeout"] == "environment variable FLOWZERO_PLANET_TIMEOUT"
    assert sources["downloads.max_workers"] == f"config file {config}"
    assert sources["database_path"] == "environment variable FLOWZERO_DATABASE_PATH"
    assert sources["downloads.part_size_mib"] == "default"
    assert sources["api_key"] == "environment variable PL_API_KEY" and shown["api_key"] == "****"
    assert sources["database_path"] != "default" and shown["source"] == str(config)
    text = run("--config", str(config), "config", "show").stdout.splitlines()
    assert "  timeout: 5.0  # environment variable FLOWZERO_PLANET_TIMEOUT" in text
    assert "  max_workers: 3  # config file " + str(config) in text
    assert "  min_coverage_pct: 98.0  # default" in text


# -- item 26: import-json holds AOI names to the same rules -------------------------------------------------------


def test_import_json_refuses_aoi_names_flowzero_refuses_elsewhere(run: Run, tmp_path: Path) -> None:
    names = ["../../etc", "esc\x1b[31mred", "x" * 100_000, "Salinas River"]
    legacy = tmp_path / "orders.json"
    legacy.write_text(json.dumps([{"order_id": f"old-{n}", "aoi_name": name, "status": "success",
                                   "start_date": "2023-01-01", "end_date": "2023-01-31"}
                                  for n, name in enumerate(names)]))

    result = run("db", "import-json", str(legacy), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["imported"], report["invalid"]) == (1, 3)
    assert [p.split(":")[0] for p in report["problems"]] == ["record 1", "record 2", "record 3"]
    assert "must not contain '/'" in report["problems"][0] and "control characters" in report["problems"][1]
    assert "longer than 120" in report["problems"][2] and all(len(p) < 300 for p in report["problems"])
    listed = json.loads(run("db", "list-orders", "--json").stdout)
    assert [(o["order_id"], o["aoi_name"]) for o in listed] == [("old-3", "Salinas_River")]


# -- item 28: config papercuts --------------------------------------------------------------------------------------


def test_an_empty_yaml_value_is_unset_and_the_basemaps_api_root_works(run: Run, tmp_path: Path,
                                                                      sandbox: Sandbox,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "flowzero.yaml"
    config.write_text(f"s3:\n  endpoint_url:\n  bucket_name:\nplanet:\n  basemaps_url: {sandbox.url}/basemaps/v1\n")
    monkeypatch.delenv("FLOWZERO_PLANET_BASEMAPS_URL")
    shown = json.loads(run("--config", str(config), "config", "show", "--json").stdout)
    assert shown["s3"]["endpoint_url"] == "" and shown["planet"]["basemaps_url"] == sandbox.basemaps_url

    listed = run("--config", str(config), "list-basemaps", *JANUARY, "--json")

    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)  # the mosaics, found through the API root as Planet's SDK names it
    assert {r["status"] for r in sandbox.requests() if "/basemaps/" in r["path"]} == {200}
