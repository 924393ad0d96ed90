"""The SQLite order store on real files: the lookups that prevent re-ordering, stats, intents, modes.

What every backend must do (round trips, upserts, refusals, claims...) is in test_storage_contract.py, which
runs against SQLite too; this file keeps what is SQLite's own or checked here with other data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Callable

import apsw
import pytest

from flowzero.config import Config
from flowzero.errors import StorageError
from flowzero.models import Order
from flowzero.storage import OrderStore
from flowzero.storage.opening import open_store
from flowzero.storage.sqlite import SqliteOrderStore

MakeOrder = Callable[..., Order]


def test_update_order_status_merges_metadata(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1", metadata={"item_ids": ["a"], "state_history": ["queued"]}))
    before = store.get_order("o-1")
    assert store.update_order_status("o-1", "success", {"state_history": ["queued", "success"], "files": 4})
    after = store.get_order("o-1")
    assert after is not None and before is not None
    assert after.status == "success"
    assert after.metadata == {"item_ids": ["a"], "state_history": ["queued", "success"], "files": 4}
    assert after.updated_at is not None and before.updated_at is not None
    assert after.updated_at >= before.updated_at
    assert store.update_order_status("o-1", "success") is True
    assert store.get_order("o-1").metadata["files"] == 4  # type: ignore[union-attr]
    assert store.update_order_status("missing", "success") is False


def test_secrets_and_url_tokens_never_reach_the_file(store: SqliteOrderStore, make_order: MakeOrder,
                                                     db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_API_KEY", "PLAKsupersecret123")
    store.save_order(make_order("o-1", metadata={
        "location": "http://127.0.0.1:1/download/o-1/x.tif?token=tok-abcdef-123456",
        "key": "PLAKsupersecret123"}))
    store.update_order_status("o-1", "success", {"manifest": "https://h/m.json?token=another-token-987"})
    store.record_intent("n-1", {"api_key_was": "PLAKsupersecret123"})
    store.close()
    raw = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.name.startswith(db_path.name))
    for secret in (b"PLAKsupersecret123", b"tok-abcdef-123456", b"another-token-987"):
        assert secret not in raw
    reopened = SqliteOrderStore(db_path)
    assert reopened.get_order("o-1").metadata["location"].endswith("?token=****")  # type: ignore[union-attr]
    reopened.close()


def test_find_existing_order_ignores_failed_and_cancelled(store: SqliteOrderStore,
                                                          make_order: MakeOrder) -> None:
    store.save_order(make_order("failed-1", status="failed", created_at="2024-01-01T00:00:00.000Z"))
    store.save_order(make_order("cancelled-1", status="cancelled", created_at="2024-01-02T00:00:00.000Z"))
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31") is None
    store.save_order(make_order("old-ok", status="partial", created_at="2024-01-03T00:00:00.000Z"))
    store.save_order(make_order("new-ok", status="queued", created_at="2024-01-04T00:00:00.000Z"))
    found = store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31")
    assert found is not None and found.order_id == "new-ok"
    assert store.find_existing_order("SalinasRiver", "2024-02-01", "2024-02-29") is None
    assert store.find_existing_order("ScottRiver", "2024-01-01", "2024-01-31") is None
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31",
                                     product_bundle="analytic_8b_sr_udm2") is None
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31",
                                     order_type="PSScope") is not None
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31",
                                     order_type="Basemap (Composite)") is None


def test_find_existing_basemap_order_with_null_dates(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    store.save_order(make_order("bm-1", order_type="Basemap (Composite)", start_date=None, end_date=None,
                                mosaic_name="global_monthly_2024_01_mosaic", status="success"))
    found = store.find_existing_order("SalinasRiver", None, None, order_type="Basemap (Composite)")
    assert found is not None and found.mosaic_name == "global_monthly_2024_01_mosaic"
    assert store.has_completed_order("SalinasRiver", None, None)


def test_has_completed_order_needs_success(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1", status="running"))
    assert not store.has_completed_order("SalinasRiver", "2024-01-01", "2024-01-31")
    store.update_order_status("o-1", "success")
    assert store.has_completed_order("SalinasRiver", "2024-01-01", "2024-01-31")
    assert not store.has_completed_order("SalinasRiver", "2024-01-01", "2024-02-01")


def _batch(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    months = [("2024-03-01", "2024-03-31", "failed"), ("2024-01-01", "2024-01-31", "success"),
              ("2024-02-01", "2024-02-29", "success")]
    for i, (start, end, status) in enumerate(months):
        store.save_order(make_order(f"b1-{i}", aoi_name="ScottRiver", batch_id="b1", batch_order=True,
                                    start_date=start, end_date=end, status=status, quota_hectares=100.0 + i,
                                    scenes_selected=i, scenes_found=10))
    store.save_order(make_order("b2-0", aoi_name="SalinasRiver", batch_id="b2", status="queued",
                                quota_hectares=50.0, scenes_selected=5, scenes_found=20))
    store.save_order(make_order("solo", aoi_name="SalinasRiver,North", order_type="Basemap (Composite)",
                                start_date=None, end_date=None, status="running", quota_hectares=None,
                                scenes_selected=None, scenes_found=None))


def test_batch_listing_and_filters(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    _batch(store, make_order)
    assert [o.start_date for o in store.get_batch_orders("b1")] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert store.get_batch_orders("nope") == []
    assert {o.order_id for o in store.get_orders_by_status("success")} == {"b1-1", "b1-2"}
    assert {o.order_id for o in store.list_orders(aoi_name="SalinasRiver")} == {"b2-0"}
    assert {o.order_id for o in store.list_orders(status="success", batch_id="b1")} == {"b1-1", "b1-2"}
    assert [o.order_id for o in store.list_orders(status="failed", aoi_name="SalinasRiver")] == []
    assert len(store.list_orders()) == 5
    batches = {b["batch_id"]: b for b in store.list_batches()}
    assert set(batches) == {"b1", "b2"}
    b1 = batches["b1"]
    assert b1["aoi_names"] == ["ScottRiver"] and b1["orders"] == 3
    assert (b1["start_date"], b1["end_date"]) == ("2024-01-01", "2024-03-31")
    assert b1["statuses"] == {"failed": 1, "success": 2}
    assert b1["quota_hectares"] == pytest.approx(303.0) and b1["scenes_selected"] == 3


def test_stats_totals(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    empty = store.get_stats()
    assert empty["total_orders"] == 0 and empty["by_status"] == {} and empty["total_quota_hectares"] == 0.0
    _batch(store, make_order)
    store.record_intent("pending-name", {"aoi": "x"})
    stats = store.get_stats()
    assert stats["total_orders"] == 5
    assert stats["by_status"] == {"failed": 1, "success": 2, "queued": 1, "running": 1}
    assert stats["by_order_type"] == {"PSScope": 4, "Basemap (Composite)": 1}
    assert stats["total_quota_hectares"] == pytest.approx(353.0)
    assert (stats["total_scenes_selected"], stats["total_scenes_found"]) == (8, 50)
    assert (stats["batches"], stats["aois"], stats["pending_intents"]) == (2, 3, 1)
    assert stats["schema_version"] >= 1 and stats["backend"] == "sqlite"


def test_order_intents_lifecycle(store: SqliteOrderStore) -> None:
    assert store.pending_intents() == []
    store.record_intent("SalinasRiver_2024-01", {"item_ids": ["a", "b"], "bundle": "analytic_sr_udm2"})
    store.record_intent("SalinasRiver_2024-02", {"item_ids": ["c"]})
    pending = store.pending_intents()
    assert [p["order_name"] for p in pending] == ["SalinasRiver_2024-01", "SalinasRiver_2024-02"]
    assert pending[0]["details"] == {"item_ids": ["a", "b"], "bundle": "analytic_sr_udm2"}
    assert store.resolve_intent("SalinasRiver_2024-01", "order-123") is True
    assert store.resolve_intent("SalinasRiver_2024-02", None) is True  # reconciled: nothing was created
    assert store.resolve_intent("never-recorded", "x") is False
    assert store.pending_intents() == []
    resolved = store.get_intent("SalinasRiver_2024-01")
    assert resolved is not None and resolved["order_id"] == "order-123" and resolved["resolved_at"]
    store.record_intent("SalinasRiver_2024-02", {"item_ids": ["c", "d"]})  # a new attempt is pending again
    again = store.pending_intents()
    assert [(p["order_name"], p["details"]) for p in again] == [
        ("SalinasRiver_2024-02", {"item_ids": ["c", "d"]})]
    assert store.get_intent("SalinasRiver_2024-02")["order_id"] is None  # type: ignore[index]


def test_data_survives_reopening(db_path: Path, make_order: MakeOrder) -> None:
    with SqliteOrderStore(db_path) as first:
        first.save_order(make_order("o-1"))
        first.record_intent("n", {})
    with SqliteOrderStore(db_path) as second:
        assert second.order_exists("o-1") and len(second.pending_intents()) == 1


def test_database_folder_is_0700_and_files_0600_even_with_a_permissive_umask(db_path: Path,
                                                                              make_order: MakeOrder) -> None:
    assert not db_path.parent.exists()
    previous = os.umask(0)
    try:
        with SqliteOrderStore(db_path) as opened:
            opened.save_order(make_order("o-1"))
            assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
            files = list(db_path.parent.iterdir())
            assert {p.name for p in files} >= {"flowzero.db", "flowzero.db-wal", "flowzero.db-shm"}
            for path in files:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    finally:
        os.umask(previous)


def test_existing_folder_mode_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    SqliteOrderStore(folder / "f.db").close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "f.db").stat().st_mode) == 0o600


def test_wal_mode_and_busy_timeout(store: SqliteOrderStore) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchall()[0][0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchall()[0][0] >= 5000


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "orders.json"
    bogus.write_text("[" + "1," * 2000 + "1]", encoding="utf-8")
    with pytest.raises(StorageError, match="not a SQLite database"):
        SqliteOrderStore(bogus)


def test_uncreatable_folder_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StorageError, match="cannot create database"):
        SqliteOrderStore(blocker / "sub" / "f.db")


def test_a_held_write_lock_makes_writers_wait_not_fail(db_path: Path, make_order: MakeOrder,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    with SqliteOrderStore(db_path) as writer:
        other = apsw.Connection(str(db_path))
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO order_intents (order_name, created_at) VALUES ('held', 'now')")
        releaser = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        releaser.start()
        started = time.monotonic()
        writer.save_order(make_order("o-1"))  # waits for the other connection's commit
        waited = time.monotonic() - started
        releaser.join()
        other.close()
        assert waited >= 0.4
        assert writer.order_exists("o-1") and writer.get_intent("held") is not None


def test_a_lock_held_past_the_timeout_is_a_storage_error(db_path: Path, make_order: MakeOrder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import flowzero.storage.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_SECONDS", 0.2)
    with SqliteOrderStore(db_path) as writer:
        other = apsw.Connection(str(db_path))
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked by another process"):
                writer.save_order(make_order("o-1"))
        finally:
            other.execute("ROLLBACK")
            other.close()
        writer.save_order(make_order("o-1"))  # the failed transaction left nothing open
        assert writer.order_exists("o-1")


def test_loading_the_plugin_does_not_import_apsw() -> None:
    import subprocess
    import sys

    code = "import sys, flowzero.storage.sqlite, flowzero.storage; print('apsw' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_open_store_uses_the_registered_backend(db_path: Path) -> None:
    config = Config(database_path=str(db_path))
    opened = open_store(config)
    try:
        assert isinstance(opened, SqliteOrderStore) and isinstance(opened, OrderStore)
        assert opened.path == db_path
    finally:
        opened.close()


def test_open_store_expands_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    opened = open_store(Config(database_path="~/.flowzero/flowzero.db"))
    opened.close()
    assert (tmp_path / ".flowzero" / "flowzero.db").is_file()


def test_open_store_selects_a_plugin_backend(tmp_path: Path) -> None:
    from flowzero import hookimpl, plugins

    class MemoryStore(SqliteOrderStore):
        name = "memory-test"

        def __init__(self, config: Any) -> None:
            super().__init__(":memory:")

    class Plugin:
        @hookimpl
        def register_storage_backends(self, register: Any) -> None:
            register(MemoryStore)

    plugins.register_plugin(Plugin(), name="memory-test-plugin")
    try:
        config = Config()
        config.storage.backend = "memory-test"
        opened = open_store(config)
        assert type(opened) is MemoryStore
        opened.save_order(Order("o-1", "aoi"))
        assert opened.order_exists("o-1")
        opened.close()
        config.storage.backend = "postgres-nope"
        with pytest.raises(Exception, match="no storage backend named 'postgres-nope'"):
            open_store(config)
    finally:
        plugins.unregister_plugin("memory-test-plugin")


def test_one_store_shared_by_threads(store: SqliteOrderStore, make_order: MakeOrder) -> None:
    """Downloader threads report through one store: their transactions must not interleave."""
    from concurrent.futures import ThreadPoolExecutor

    store.save_order(make_order("shared"))

    def work(worker: int) -> None:
        for i in range(40):
            store.save_order(make_order(f"t{worker}-{i}", batch_id=f"t{worker}"))
            store.update_order_status("shared", "running", {f"t{worker}-{i}": i})

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(work, range(6)))
    assert len(store.list_orders()) == 6 * 40 + 1
    assert len(store.get_order("shared").metadata) == 6 * 40  # type: ignore[union-attr]
