"""Several flowzero processes on one database: never "database is locked", no lost write, migrations once.

Real OS processes (multiprocessing, spawn) started together behind a barrier, on a real SQLite file.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any

import apsw

PROCESSES = 8
ORDERS_PER_PROCESS = 125
SHARED_UPDATES_PER_PROCESS = 25


def _open_fresh(db_path: str, barrier: Any, results: Any) -> None:
    """Worker: open (and so migrate) a database that does not exist yet, all at the same moment."""
    try:
        from flowzero.storage.sqlite import SqliteOrderStore

        barrier.wait(timeout=60)
        store = SqliteOrderStore(db_path)
        results.put(("ok", store.schema_version))
        store.close()
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _write_orders(db_path: str, worker: int, barrier: Any, results: Any) -> None:
    """Worker: 125 saves of its own orders, each followed by a status update, plus metadata merges on one
    row that every worker updates."""
    try:
        from flowzero.models import Order
        from flowzero.storage.sqlite import SqliteOrderStore

        store = SqliteOrderStore(db_path)
        barrier.wait(timeout=60)
        for i in range(ORDERS_PER_PROCESS):
            order_id = f"w{worker}-{i:03d}"
            store.save_order(Order(order_id, aoi_name=f"aoi-{worker}", batch_id=f"batch-{worker}",
                                   start_date="2024-01-01", end_date="2024-01-31", scenes_selected=i))
            store.update_order_status(order_id, "success" if i % 2 else "running", {"worker": worker, "i": i})
            if i % (ORDERS_PER_PROCESS // SHARED_UPDATES_PER_PROCESS) == 0:
                store.update_order_status("shared", "running", {f"w{worker}-{i:03d}": worker})
        store.close()
        results.put(("ok", worker))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _run(target: Any, args_for: Any) -> list[tuple[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_for(n), barrier, results)) for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return outcomes


def _errors(outcomes: list[tuple[str, Any]]) -> list[str]:
    return [detail for status, detail in outcomes if status != "ok"]


def test_eight_processes_opening_a_fresh_database_apply_each_migration_once(tmp_path: Path) -> None:
    from flowzero.storage.migrate import bundled_migrations

    db_path = tmp_path / "new" / "flowzero.db"
    outcomes = _run(_open_fresh, lambda n: (str(db_path),))
    assert _errors(outcomes) == []
    newest = bundled_migrations()[-1].version
    assert [detail for _, detail in outcomes] == [newest] * PROCESSES
    conn = apsw.Connection(str(db_path))
    rows = conn.execute("SELECT version, COUNT(*) FROM schema_migrations GROUP BY version").fetchall()
    assert [tuple(r) for r in rows] == [(m.version, 1) for m in bundled_migrations()]
    conn.close()


def test_eight_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    from flowzero.models import Order
    from flowzero.storage.sqlite import SqliteOrderStore

    db_path = tmp_path / "flowzero.db"
    with SqliteOrderStore(db_path) as setup:
        setup.save_order(Order("shared", aoi_name="shared-aoi"))
    outcomes = _run(_write_orders, lambda n: (str(db_path), n))
    assert _errors(outcomes) == []

    with SqliteOrderStore(db_path) as store:
        orders = [o for o in store.list_orders() if o.order_id != "shared"]
        assert len(orders) == PROCESSES * ORDERS_PER_PROCESS
        for worker in range(PROCESSES):
            mine = store.list_orders(batch_id=f"batch-{worker}")
            assert sorted(o.scenes_selected for o in mine) == list(range(ORDERS_PER_PROCESS))
            for order in mine:
                i = order.scenes_selected
                assert order.metadata == {"worker": worker, "i": i}
                assert order.status == ("success" if i % 2 else "running")
        shared = store.get_order("shared")
        assert shared is not None
        assert len(shared.metadata) == PROCESSES * SHARED_UPDATES_PER_PROCESS  # every merge kept
        assert store.get_stats()["by_status"] == {"running": PROCESSES * ((ORDERS_PER_PROCESS + 1) // 2) + 1,
                                                  "success": PROCESSES * (ORDERS_PER_PROCESS // 2)}
        assert store._conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
