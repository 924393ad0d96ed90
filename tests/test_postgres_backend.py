"""The postgres backend as users meet it: chosen by config, the password never shown, one-line errors, no SQLite
file, `flowzero db copy` from SQLite (idempotent), and its migrations' failure and lock rules.

Everything runs against the real server of ``tests/fixtures/postgres.py``; the shared behaviour of every backend is
in ``test_storage_contract.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from tests.fixtures.postgres import PG_PASSWORD, PostgresServer

LEGACY = Path(__file__).parent / "data" / "orders_legacy.json"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def pg_env(url: str) -> dict[str, str]:
    return {"FLOWZERO_STORAGE_BACKEND": "postgres", "FLOWZERO_DATABASE_URL": url}


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PG_PASSWORD not in text


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    assert_no_password(result.output)
    return lines[0]


def test_config_show_masks_the_password(postgres_url: str) -> None:
    shown = run("config", "show", "--json", env=pg_env(postgres_url))
    assert shown.exit_code == 0, shown.output
    storage = json.loads(shown.stdout)["storage"]
    assert storage["backend"] == "postgres"
    assert storage["url"] == postgres_url.replace(PG_PASSWORD, "****")
    table = run("config", "show", env=pg_env(postgres_url))
    assert table.exit_code == 0 and "flowzero:****@127.0.0.1" in table.stdout
    assert_no_password(shown.output, table.output)


def test_db_commands_run_on_postgres_and_create_no_sqlite_file(postgres_url: str) -> None:
    home = Path(os.environ["HOME"])
    imported = run("db", "import-json", str(LEGACY), "--json", env=pg_env(postgres_url))
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["imported"] == 10
    stats = run("db", "stats", "--json", env=pg_env(postgres_url))
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert (data["backend"], data["total_orders"]) == ("postgres", 10)
    assert data["database"] == postgres_url.replace(PG_PASSWORD, "****")
    table = run("db", "stats", env=pg_env(postgres_url))
    assert table.exit_code == 0 and "flowzero:****@" in table.stdout
    listed = run("db", "list-orders", "--status", "success", "--json", env=pg_env(postgres_url))
    assert len(json.loads(listed.stdout)) == 4
    assert_no_password(imported.output, stats.output, table.output, listed.output)
    assert not (home / ".flowzero").exists()  # with postgres selected, no SQLite file anywhere


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("case", ["wrong password", "nobody listening", "no url", "not postgres", "bad port"])
def test_bad_database_settings_are_one_line_errors(case: str, postgres_server: PostgresServer) -> None:
    url = {
        "wrong password": postgres_server.url().replace(PG_PASSWORD, PG_PASSWORD + "-nope"),
        "nobody listening": f"postgresql://flowzero:{PG_PASSWORD}@127.0.0.1:{_closed_port()}/postgres",
        "no url": "",
        "not postgres": f"mysql://flowzero:{PG_PASSWORD}@127.0.0.1/db",
        "bad port": f"postgresql://flowzero:{PG_PASSWORD}@127.0.0.1:99999999/db",
    }[case]
    env = {"FLOWZERO_STORAGE_BACKEND": "postgres", "FLOWZERO_DATABASE_URL": url}
    line = one_line_error(run("db", "stats", env=env))
    expected = {
        "wrong password": "password authentication failed",
        "nobody listening": "cannot use PostgreSQL database postgresql://flowzero:****@127.0.0.1",
        "no url": "no database URL is set",
        "not postgres": "must be a postgresql:// URL",
        "bad port": "not a valid URL",
    }[case]
    assert expected in line
    assert "hint:" in line
    assert not (Path(os.environ["HOME"]) / ".flowzero").exists()


def test_unknown_backend_names_the_installed_ones() -> None:
    line = one_line_error(run("db", "stats", env={"FLOWZERO_STORAGE_BACKEND": "oracle"}))
    assert "no storage backend named 'oracle'" in line and "postgres" in line and "sqlite" in line


def test_plugin_is_listed() -> None:
    listed = run("plugins", "list")
    assert listed.exit_code == 0 and "flowzero-postgres" in listed.stdout and "storage_backend:postgres" in \
        listed.stdout.replace("\n", "").replace(" ", "")


def test_db_copy_from_sqlite_is_idempotent_and_reports_counts(postgres_url: str, tmp_path: Path) -> None:
    from flowzero.storage.sqlite import SqliteOrderStore

    db = tmp_path / "old.db"
    assert run("--database-path", str(db), "db", "import-json", str(LEGACY)).exit_code == 0
    with SqliteOrderStore(db) as old:
        old.record_intent("flowzero-x", {"aoi": "x"})
        old.resolve_intent("flowzero-x", "e2a9b6c1-0d3f-47e8-9c15-6b8a4f2d9e70")
        old.record_intent("flowzero-y", {"aoi": "y"})
        before = old.list_orders()
    first = run("--database-path", str(db), "db", "copy", "--to", postgres_url)
    assert first.exit_code == 0, first.output
    assert "orders: 10 copied, 0 updated, 0 already there" in first.stdout
    assert "intents: 2 copied, 0 updated, 0 already there" in first.stdout
    assert "flowzero:****@127.0.0.1" in first.stdout
    again = run("--database-path", str(db), "db", "copy", "--to", postgres_url, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["orders"] == {"added": 0, "updated": 0, "unchanged": 10}
    assert report["intents"] == {"added": 0, "updated": 0, "unchanged": 2}
    assert report["from"] == str(db.resolve()) and report["to"] == postgres_url.replace(PG_PASSWORD, "****")

    with SqliteOrderStore(db) as old:
        old.update_order_status(before[0].order_id, "cancelled")
    third = run("--database-path", str(db), "db", "copy", "--to", postgres_url, "--json")
    assert json.loads(third.stdout)["orders"] == {"added": 0, "updated": 1, "unchanged": 9}
    assert_no_password(first.output, again.output, third.output)

    from flowzero_postgres import PostgresOrderStore

    with PostgresOrderStore(postgres_url) as new, SqliteOrderStore(db) as old:
        assert new.list_orders() == old.list_orders()  # history kept: timestamps, metadata, everything
        assert new.list_intents() == old.list_intents()
        assert new.get_stats()["by_status"] == old.get_stats()["by_status"]


def test_db_copy_back_from_postgres_and_refusals(postgres_url: str, tmp_path: Path) -> None:
    assert run("db", "import-json", str(LEGACY), env=pg_env(postgres_url)).exit_code == 0
    back = tmp_path / "back.db"
    copied = run("db", "copy", "--to", f"sqlite:///{back}", "--json", env=pg_env(postgres_url))
    assert copied.exit_code == 0, copied.output
    assert json.loads(copied.stdout)["orders"]["added"] == 10 and back.is_file()
    same = run("db", "copy", "--from", str(back), "--to", str(back))
    assert same.exit_code == 2 and "source and target are the same store" in same.stderr
    unknown = run("db", "copy", "--from", str(back), "--to", f"mongodb://u:{PG_PASSWORD}@127.0.0.1/x")
    assert unknown.exit_code == 2 and "no installed storage backend handles 'mongodb://'" in unknown.stderr
    missing = run("db", "copy", "--from", str(tmp_path / "typo.db"), "--to", str(back))
    assert missing.exit_code == 2 and "no database file at" in missing.stderr
    assert not (tmp_path / "typo.db").exists()  # a mistyped source is not created empty
    assert_no_password(copied.output, same.output, unknown.output)


def test_a_failing_migration_rolls_back_whole(postgres_url: str) -> None:
    import psycopg
    from flowzero_postgres.migrate import migrate, postgres_migrations

    from flowzero.errors import StorageError
    from flowzero.storage.migrate import Migration

    shipped = [m.version for m in postgres_migrations()]
    broken = Migration(len(shipped) + 1, "broken",
                       "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(StorageError, match=rf"migration {broken.label} failed on database x: .*no_such_table"):
            migrate(conn, "x", [*postgres_migrations(), broken])
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables == set()  # not even 0001 or schema_migrations: one transaction
        assert migrate(conn, "x") == len(postgres_migrations())
        assert migrate(conn, "x") == len(postgres_migrations())  # nothing to do: no lock, no write
        assert {r[0] for r in conn.execute("SELECT version FROM schema_migrations")} == set(shipped)


def test_migrations_wait_for_the_advisory_lock(postgres_url: str) -> None:
    """While another session holds flowzero's migration lock, opening a new database waits for it."""
    import threading
    import time

    import psycopg
    from flowzero_postgres import PostgresOrderStore
    from flowzero_postgres.migrate import ADVISORY_LOCK_KEY, postgres_migrations

    opened: list[Any] = []
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        opener = threading.Thread(target=lambda: opened.append(PostgresOrderStore(postgres_url)))
        opener.start()
        time.sleep(0.5)
        assert opened == [] and opener.is_alive()
        holder.rollback()
    opener.join(timeout=30)
    assert len(opened) == 1 and opened[0].schema_version == postgres_migrations()[-1].version
    opened[0].close()


def test_cli_in_a_real_process_keeps_the_password_out_even_with_debug(postgres_url: str,
                                                                      postgres_server: PostgresServer) -> None:
    env = {**os.environ, **pg_env(postgres_url), "FLOWZERO_LOAD_PLUGINS": "postgres"}
    command = [sys.executable, "-m", "flowzero", "--debug", "db", "import-json", str(LEGACY), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported"] == 10
    wrong = postgres_server.url().replace(PG_PASSWORD, "Wrong-" + PG_PASSWORD)
    env["FLOWZERO_DATABASE_URL"] = wrong
    failed = subprocess.run([sys.executable, "-m", "flowzero", "--debug", "db", "stats"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert failed.returncode == 1 and "password authentication failed" in failed.stderr
    for text in (done.stdout, done.stderr, failed.stdout, failed.stderr):
        assert PG_PASSWORD not in text
    assert not (Path(os.environ["HOME"]) / ".flowzero").exists()


def test_shared_queries_get_psycopg_placeholders() -> None:
    """The shared SQL store writes ``?``; psycopg needs ``%s``, and a literal ``%`` doubled."""
    from flowzero_postgres.session import pyformat

    assert pyformat("SELECT 1 FROM t WHERE a = ? AND b LIKE 'x%'") == b"SELECT 1 FROM t WHERE a = %s AND b LIKE 'x%%'"
