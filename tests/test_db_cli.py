"""`flowzero db ...` as people and scripts run it: tables, --json, filters, one-line errors, a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli

LEGACY = Path(__file__).parent / "data" / "orders_legacy.json"


def run(db_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--database-path", str(db_path), "db", *args], env=env)


def run_json(db_path: Path, *args: str) -> Any:
    result = run(db_path, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def imported(db_path: Path) -> Path:
    result = run(db_path, "import-json", str(LEGACY))
    assert result.exit_code == 0, result.output
    return db_path


def test_import_json_reports_counts_and_reruns_cleanly(db_path: Path) -> None:
    first = run(db_path, "import-json", str(LEGACY))
    assert first.exit_code == 0, first.output
    assert "10 imported, 1 already present, 2 invalid (of 13 records" in first.stdout
    assert "skipped record 12: missing order_id" in first.stderr
    again = run_json(db_path, "import-json", str(LEGACY))
    assert (again["imported"], again["already_present"], again["invalid"], again["total"]) == (0, 11, 2, 13)
    assert len(run_json(db_path, "list-orders")) == 10


def test_stats_json_and_table(imported: Path) -> None:
    stats = run_json(imported, "stats")
    assert stats["total_orders"] == 10
    assert stats["by_status"] == {"cancelled": 1, "failed": 1, "partial": 1, "queued": 1, "running": 1,
                                  "success": 4, "unknown": 1}
    assert stats["by_order_type"] == {"Basemap (Composite)": 2, "PSScope": 8}
    assert stats["batches"] == 2 and stats["total_scenes_selected"] == 44
    assert stats["total_quota_hectares"] == pytest.approx(80303.8)
    table = run(imported, "stats")
    assert table.exit_code == 0
    assert "80,303.8" in table.stdout and "Basemap (Composite)" in table.stdout


def test_list_orders_filters(imported: Path) -> None:
    success = run_json(imported, "list-orders", "--status", "success")
    assert {o["status"] for o in success} == {"success"} and len(success) == 4
    batch = run_json(imported, "list-orders", "--batch-id", "batch-ScottRiver-20240215T101500")
    assert [o["start_date"] for o in batch] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    both = run_json(imported, "list-orders", "--aoi", "SalinasRiver", "--status", "success")
    assert [o["order_id"] for o in both] == ["3a1c6e0b-2f4d-4c8e-9b51-7d0e2a9f1c01",
                                             "3a1c6e0b-2f4d-4c8e-9b51-7d0e2a9f1c02"]
    assert run_json(imported, "list-orders", "--aoi", "NoSuchRiver") == []
    table = run(imported, "list-orders", "--aoi", "ScottRiver")
    assert table.exit_code == 0 and "Orders (3)" in table.stdout and "partial" in table.stdout


def test_list_batches(imported: Path) -> None:
    batches = {b["batch_id"]: b for b in run_json(imported, "list-batches")}
    assert set(batches) == {"batch-ScottRiver-20240215T101500", "batch-Cosumnes_Badger-20240502T141210"}
    scott = batches["batch-ScottRiver-20240215T101500"]
    assert scott["orders"] == 3 and scott["statuses"] == {"failed": 1, "partial": 1, "success": 1}
    table = run(imported, "list-batches")
    assert "Batches (2)" in table.stdout and "cancelled 1, queued 1" in table.stdout


def test_pending_is_queued_and_running(imported: Path) -> None:
    pending = run_json(imported, "pending")
    assert [(o["order_id"], o["status"]) for o in pending] == [
        ("5d0f8c3e-6a2b-4e91-a7c4-1f9e8d2b3a41", "running"),
        ("e2a9b6c1-0d3f-47e8-9c15-6b8a4f2d9e70", "queued"),
    ]


def test_get_one_order(imported: Path) -> None:
    order = run_json(imported, "get", "5d0f8c3e-6a2b-4e91-a7c4-1f9e8d2b3a40")
    assert order["mosaic_name"] == "global_monthly_2024_01_mosaic"
    assert order["start_date"] is None and order["end_date"] is None
    table = run(imported, "get", "5d0f8c3e-6a2b-4e91-a7c4-1f9e8d2b3a40")
    assert table.exit_code == 0 and "global_monthly_2024_01_mosaic" in table.stdout


def test_get_unknown_id_is_one_line_and_exit_2(imported: Path) -> None:
    result = run(imported, "get", "no-such-order")
    assert result.exit_code == 2
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: no order no-such-order in the database (hint: see 'flowzero db list-orders')"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "message"), [
    ("[{", "not valid JSON"),
    ('{"a": 1}', "expected a JSON list of order records"),
])
def test_import_of_a_bad_file_is_one_line(db_path: Path, tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "orders.json"
    bad.write_text(content, encoding="utf-8")
    result = run(db_path, "import-json", str(bad))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr


def test_a_newer_database_is_refused_with_one_line(imported: Path) -> None:
    conn = apsw.Connection(str(imported))
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00.000Z')")
    conn.close()
    result = run(imported, "stats")
    assert result.exit_code == 1
    assert "was created by a newer flowzero (schema 999 > " in result.stderr
    assert "upgrade flowzero" in result.stderr and "Traceback" not in result.stderr


def test_database_path_from_the_environment(tmp_path: Path) -> None:
    target = tmp_path / "env" / "orders.db"
    result = CliRunner().invoke(cli, ["db", "import-json", str(LEGACY), "--json"],
                                env={"FLOWZERO_DATABASE_PATH": str(target)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 10 and target.is_file()


def test_db_commands_in_a_real_subprocess(db_path: Path) -> None:
    env = {**os.environ, "FLOWZERO_LOAD_PLUGINS": ""}  # the default sqlite store works with no plugins loaded

    def flowzero(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "flowzero", "--database-path", str(db_path), "db", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    imported = flowzero("import-json", str(LEGACY), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == 10
    listed = flowzero("list-orders", "--status", "queued", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [o["order_id"] for o in json.loads(listed.stdout)] == ["e2a9b6c1-0d3f-47e8-9c15-6b8a4f2d9e70"]
    missing = flowzero("get", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("Error: no order nope in the database")
