"""Output people and scripts read: --json on every query command, --quiet, exit codes, one-line errors.

The commands run against the Planet sandbox with a real SQLite order database. Most run in-process (click's
runner keeps stdout and stderr apart), the Ctrl-C test as a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click
import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.errors import EXIT_CODES
from tests.test_ordering_batch import write_gage_shapefile

if TYPE_CHECKING:
    from flowzero.sandbox import Sandbox

ROOT = Path(__file__).parent.parent
SCOTT = ROOT / "tests" / "data" / "aoi" / "geojson" / "DrySpy_AOI_ScottRiver.geojson"
SCOTT_SHP = ROOT / "tests" / "data" / "aoi" / "Scott" / "DrySpy_AOI_ScottRiver.shp"
RANGE = ("--start-date", "2024-01-01", "--end-date", "2024-02-29")
# Commands that are not queries: they serve until Ctrl-C or give a guided tour; everything else has --json.
NO_JSON = {"sandbox serve": "a server", "generate-aoi": "a server for the browser", "demo": "a guided tour"}

Run = Callable[..., Result]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


def _env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    return {"FLOWZERO_PLANET_API_URL": sandbox.api_url, "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
            "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url, "FLOWZERO_PLANET_MAX_RETRIES": "1",
            "PL_API_KEY": "output-test-key", "FLOWZERO_DATABASE_PATH": str(tmp_path / "flowzero.db")}


@pytest.fixture
def run(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run(*args)``: the CLI in-process against the sandbox; asserts no traceback and no API key printed."""
    monkeypatch.chdir(tmp_path)  # no ./config.yaml of the repository
    sandbox.set_faults(order_polls_per_state=0)  # orders finish on the first GET
    env = _env(sandbox, tmp_path)

    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert "Traceback" not in result.stderr
        assert env["PL_API_KEY"] not in result.stdout + result.stderr
        return result

    return invoke


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # stdout holds the JSON document and nothing else


def test_every_command_but_servers_and_the_demo_takes_json() -> None:
    commands = dict(_commands(cli))
    assert set(NO_JSON) <= set(commands)
    missing = [name for name, command in commands.items()
               if name not in NO_JSON and "--json" not in {o for p in command.params for o in getattr(p, "opts", [])}]
    assert missing == []


def test_every_query_command_prints_valid_json_built_from_the_same_rows_as_its_table(run: Run,
                                                                                    tmp_path: Path) -> None:
    submitted = _json(run("submit", "--geojson", str(SCOTT), *RANGE, "--cadence", "monthly", "--json"))
    [order] = submitted["orders"]
    order_id = order["order_id"]
    gages = write_gage_shapefile(tmp_path / "gages", [("G1", "2024-01-01", "2024-01-31", "scott")])
    batch = _json(run("batch-submit", "--shp", str(gages), "--cadence", "monthly", "--json"))
    batch_id = batch["batch_id"]

    stats = _json(run("db", "stats", "--json"))
    assert stats["total_orders"] == 2
    assert [b["batch_id"] for b in _json(run("db", "list-batches", "--json"))] == [batch_id]
    listed = _json(run("db", "list-orders", "--json"))
    assert order_id in {o["order_id"] for o in listed} and len(listed) == 2
    assert order_id in run("db", "list-orders").stdout  # the table shows the same rows
    assert _json(run("db", "pending", "--json")) == [o for o in listed if o["status"] in ("queued", "running")]
    assert _json(run("db", "get", order_id, "--json"))["order_id"] == order_id

    search = _json(run("search-scenes", "--geojson", str(SCOTT), *RANGE, "--cadence", "monthly", "--json"))
    assert search["selected"] == len(search["scenes"]) == order["scenes"]
    table = run("search-scenes", "--geojson", str(SCOTT), *RANGE, "--cadence", "monthly").stdout
    assert all(scene["id"] in table for scene in search["scenes"])
    basemaps = _json(run("list-basemaps", *RANGE, "--json"))
    assert basemaps and all(m["name"] in run("list-basemaps", *RANGE).stdout for m in basemaps)
    assert "threads" in {p["name"] for p in _json(run("plugins", "list", "--json"))}
    config = _json(run("config", "show", "--json"))
    assert config["database_path"] == str(tmp_path / "flowzero.db") and config["api_key"] == "****"
    status = _json(run("check-order-status", order_id, "--json"))
    assert (status["order_id"], status["state"]) == (order_id, "success")
    checked = _json(run("batch-check-status", batch_id, "--json"))
    assert checked["batch_id"] == batch_id and len(checked["orders"]) == 1
    converted = _json(run("convert-shp", "--shp", str(SCOTT_SHP), "--output", str(tmp_path / "geo"), "--json"))
    assert converted[0]["aoi_name"] == "ScottRiver"


def test_quiet_silences_status_lines_and_progress_but_keeps_results(run: Run, tmp_path: Path) -> None:
    aoi = ("--geojson", str(SCOTT), *RANGE, "--cadence", "monthly")
    loud = run("submit", *aoi, "--dry-run")
    assert "searching" in loud.stderr and "would order" in loud.stdout
    quiet = run("--quiet", "submit", *aoi, "--dry-run")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert "would order" in quiet.stdout and "selected scenes" not in quiet.stdout

    order_id = _json(run("submit", *aoi, "--json"))["orders"][0]["order_id"]
    delivered = run("--quiet", "check-order-status", order_id, "--output", str(tmp_path / "out"))
    assert delivered.exit_code == 0 and delivered.stderr == ""
    assert "delivered" in delivered.stdout and list((tmp_path / "out").rglob("*.tiff"))
    again = run("check-order-status", order_id, "--output", str(tmp_path / "out"))
    assert "delivering" in again.stderr  # without --quiet the status lines are there


def _help_exit_codes(text: str) -> dict[int, str]:
    line = " ".join(text.split("Exit status:")[1].split("\n\n")[0].split())
    return {int(code): meaning.strip() for code, meaning in re.findall(r"(\d+) ([^,.]+)", line)}


def _docs_exit_codes() -> dict[int, str]:
    section = (ROOT / "docs" / "cli.md").read_text().split("## Exit codes")[1].split("\n## ")[0]
    return {int(m.group(1)): m.group(2).strip() for m in re.finditer(r"^\| `?(\d+)`? \| ([^|]+)\|", section, re.M)}


def test_exit_codes_are_the_same_in_the_code_the_help_and_the_docs() -> None:
    text = CliRunner().invoke(cli, ["--help"]).stdout
    in_help, in_docs = _help_exit_codes(text), _docs_exit_codes()
    assert in_help == EXIT_CODES
    assert set(EXIT_CODES) == set(in_docs) == {0, 1, 2, 130}
    for code, meaning in EXIT_CODES.items():
        assert meaning.split()[0].lower() in in_docs[code].lower(), (code, meaning, in_docs[code])


def test_bad_input_is_one_line_with_a_hint_and_exit_2_and_errors_exit_1(run: Run, monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    bad_date = run("search-scenes", "--geojson", str(SCOTT), "--start-date", "2024-02-30", "--end-date",
                   "2024-03-01")
    assert bad_date.exit_code == 2
    assert bad_date.stderr.startswith("Error: ") and bad_date.stderr.count("\n") == 1 and "(hint: " in bad_date.stderr
    unknown = run("db", "get", "no-such-order")
    assert unknown.exit_code == 2 and unknown.stderr.count("\n") == 1 and "(hint: " in unknown.stderr
    no_key = CliRunner().invoke(cli, ["search-scenes", "--geojson", str(SCOTT), *RANGE],
                                env={"PL_API_KEY": "", "FLOWZERO_DATABASE_PATH": str(tmp_path / "x.db")})
    assert no_key.exit_code == 1
    assert no_key.stderr.splitlines()[-1] == "Error: no Planet API key (hint: set PL_API_KEY or pass --api-key)"


def _interrupt(process: subprocess.Popen[str], first_line: str, grace: float) -> tuple[str, str]:
    """Wait for ``first_line`` on stderr, then Ctrl-C; the remaining stderr (empty if it hung past ``grace``)."""
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        assert first_line in line, line
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=grace)
        return line, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _start(sandbox: Sandbox, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flowzero", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path,
                            env={**os.environ, **_env(sandbox, tmp_path), "PYTHONUNBUFFERED": "1"})


def test_ctrl_c_during_a_search_exits_130_with_one_line(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.set_faults(slow_ms=5000)  # every answer takes 5 s: the search is in flight when Ctrl-C comes
    process = _start(sandbox, tmp_path, "search-scenes", "--geojson", str(SCOTT), *RANGE)
    _, err = _interrupt(process, "searching...", grace=3)  # promptly, not after the 5 s answer
    assert process.returncode == 130
    assert err.strip() == "Interrupted."


def test_ctrl_c_during_a_wait_exits_130_with_one_line(sandbox: Sandbox, run: Run, tmp_path: Path) -> None:
    order_id = _json(run("submit", "--geojson", str(SCOTT), *RANGE, "--cadence", "monthly", "--json"))[
        "orders"][0]["order_id"]
    sandbox.set_faults(order_polls_per_state=10_000)  # the order stays queued
    process = _start(sandbox, tmp_path, "check-order-status", order_id, "--wait")
    _, err = _interrupt(process, f"order {order_id}: ", grace=3)
    assert process.returncode == 130
    assert err.strip() == "Interrupted."
