"""Schema migrations: shipped SQL files, applied once each, recorded, atomic, and newer schemas refused."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from flowzero.errors import StorageError
from flowzero.storage.migrate import Migration, bundled_migrations, migrate
from flowzero.storage.sqlite import SqliteOrderStore


def _recorded(path: Path) -> list[tuple[int, str, str]]:
    conn = apsw.Connection(str(path))
    try:
        return [tuple(r) for r in conn.execute("SELECT version, name, applied_at FROM schema_migrations "
                                                "ORDER BY version")]
    finally:
        conn.close()


def _tables(conn: apsw.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_bundled_migrations_are_read_from_the_package() -> None:
    found = bundled_migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    first = found[0]
    assert (first.version, first.name, first.label) == (1, "initial", "0001_initial")
    assert "CREATE TABLE orders" in first.sql and "CREATE TABLE order_intents" in first.sql


def test_fresh_database_records_each_migration_once(db_path: Path) -> None:
    SqliteOrderStore(db_path).close()
    first = _recorded(db_path)
    assert [(v, n) for v, n, _ in first] == [(m.version, m.name) for m in bundled_migrations()]
    SqliteOrderStore(db_path).close()
    SqliteOrderStore(db_path).close()
    assert _recorded(db_path) == first  # same rows, same applied_at: nothing re-applied


def test_schema_has_the_seed_columns_and_indexes(store: SqliteOrderStore) -> None:
    conn = store._conn
    columns = [r[1] for r in conn.execute("PRAGMA table_info(orders)")]
    assert columns == ["order_id", "aoi_name", "order_type", "batch_id", "start_date", "end_date", "status",
                       "num_bands", "product_bundle", "clipped", "aoi_area_sqkm", "scenes_selected",
                       "scenes_found", "quota_hectares", "batch_order", "mosaic_name", "order_name",
                       "metadata", "created_at", "updated_at", "claimed_by", "claim_expires_at",
                       "claim_destination"]
    indexed = {tuple(r[2] for r in conn.execute(f"PRAGMA index_info('{name}')"))
               for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                           "AND tbl_name = 'orders' AND name LIKE 'idx_%'")}
    assert indexed == {("aoi_name",), ("batch_id",), ("status",), ("aoi_name", "start_date", "end_date")}
    intent_columns = [r[1] for r in conn.execute("PRAGMA table_info(order_intents)")]
    assert intent_columns == ["order_name", "details", "created_at", "order_id", "resolved_at", "owner",
                              "lease_expires_at"]


def test_a_newer_schema_is_refused_without_touching_it(db_path: Path) -> None:
    SqliteOrderStore(db_path).close()
    known = bundled_migrations()[-1].version
    conn = apsw.Connection(str(db_path))
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from_the_future', '2030-01-01T00:00:00.000Z')",
                 (known + 7,))
    conn.close()
    before = _recorded(db_path)
    with pytest.raises(StorageError) as caught:
        SqliteOrderStore(db_path)
    assert str(caught.value) == (f"database {db_path} was created by a newer flowzero "
                                 f"(schema {known + 7} > {known}); upgrade flowzero")
    assert _recorded(db_path) == before


def test_a_new_migration_is_applied_once_to_an_existing_database(db_path: Path) -> None:
    with SqliteOrderStore(db_path) as opened:
        opened.record_intent("kept", {"a": 1})
    extra = Migration(len(bundled_migrations()) + 1, "add_notes",
                      "ALTER TABLE orders ADD COLUMN notes TEXT;\n"
                      "CREATE INDEX idx_orders_notes ON orders (notes);")
    steps = [*bundled_migrations(), extra]
    conn = apsw.Connection(str(db_path))
    try:
        assert migrate(conn, str(db_path), steps) == extra.version
        assert migrate(conn, str(db_path), steps) == extra.version  # a second ALTER would fail: not re-run
        assert "notes" in [r[1] for r in conn.execute("PRAGMA table_info(orders)")]
        assert conn.execute("SELECT COUNT(*) FROM order_intents").fetchall()[0][0] == 1
    finally:
        conn.close()
    assert [(v, n) for v, n, _ in _recorded(db_path)][-1] == (extra.version, "add_notes")
    with pytest.raises(StorageError, match="newer flowzero"):
        SqliteOrderStore(db_path)  # this code only knows the bundled ones


def test_a_failing_migration_leaves_the_database_unchanged(tmp_path: Path) -> None:
    db_path = tmp_path / "f.db"
    broken = Migration(2, "broken", "CREATE TABLE half_done (x INTEGER);\n"
                                    "INSERT INTO no_such_table VALUES (1);")
    conn = apsw.Connection(str(db_path))
    try:
        with pytest.raises(StorageError, match="migration 0002_broken failed"):
            migrate(conn, str(db_path), [bundled_migrations()[0], broken])
        assert not conn.in_transaction
        assert _tables(conn) == set()  # not even 0001 nor schema_migrations: one transaction
        assert migrate(conn, str(db_path), bundled_migrations()[:1]) == 1
        assert "half_done" not in _tables(conn) and "orders" in _tables(conn)
    finally:
        conn.close()


def test_migration_files_must_be_numbered_without_gaps(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    import importlib.resources

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_initial.sql").write_text("CREATE TABLE a (x);", encoding="utf-8")
    (folder / "0003_skip.sql").write_text("CREATE TABLE b (x);", encoding="utf-8")
    (folder / "README.txt").write_text("ignored", encoding="utf-8")

    class FakeRoot:
        def joinpath(self, name: str) -> Path:
            return tmp_path / name

    monkeypatch.setattr(importlib.resources, "files", lambda package: FakeRoot())
    with pytest.raises(StorageError, match="without gaps"):
        bundled_migrations()
