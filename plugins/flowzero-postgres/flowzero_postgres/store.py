"""The ``postgres`` order store: one PostgreSQL database shared by every flowzero process on every machine.

The same tables, columns and queries as the SQLite store (rows go through ``flowzero.storage.records``), so the
contract suite holds for both. Connections come from a psycopg 3 pool; a write that reads first
(``update_order_status``) locks its row, so concurrent merges are never lost. Claims lock the order row with
``SELECT ... FOR UPDATE SKIP LOCKED`` and time leases on the server's clock.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Optional, Union

from flowzero.storage import NOT_REORDERABLE_STATES
from flowzero.storage.records import (
    ORDER_COLUMNS,
    check_claim_args,
    dump_json,
    format_timestamp,
    intent_row,
    load_json,
    order_to_row,
    row_to_order,
    utc_now,
)
from flowzero_postgres.connection import CONNECT_TIMEOUT_SECONDS, URL_SCHEMES, DatabaseUrl, connect, storage_errors

if TYPE_CHECKING:
    import psycopg

    from flowzero.config import Config
    from flowzero.models import Order
    from flowzero.storage.copying import CopyCounts

POOL_MAX_SIZE = 4
POOL_TIMEOUT_SECONDS = 30.0
# A claim finds its row locked only while another short transaction holds it (a claim, a release, a status
# update); it waits this long for that to finish before answering "held by someone else".
CLAIM_LOCK_WAIT_SECONDS = 2.0

_SELECT = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders"
_UPSERT = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join(['%s'] * len(ORDER_COLUMNS))}) "
    "ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS if c not in ("order_id", "created_at"))
)
_UPSERT_INTENT = (
    "INSERT INTO order_intents (order_name, details, created_at, order_id, resolved_at) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (order_name) DO UPDATE SET details = EXCLUDED.details, "
    "created_at = EXCLUDED.created_at, order_id = EXCLUDED.order_id, resolved_at = EXCLUDED.resolved_at"
)
_CHRONOLOGICAL = " ORDER BY created_at, order_id"


def _close_pool(pool: Any) -> None:
    pool.close(timeout=5.0)


class PostgresOrderStore:
    """Orders and order intents in PostgreSQL (``storage.url`` or ``$FLOWZERO_DATABASE_URL``)."""

    name = "postgres"
    description = "PostgreSQL at storage.url (psycopg 3 pool; one database shared by many machines)"
    url_schemes = URL_SCHEMES

    def __init__(self, config: Union[Config, str], pool_size: int = POOL_MAX_SIZE) -> None:
        from psycopg_pool import ConnectionPool

        from flowzero_postgres.migrate import migrate

        self.url = DatabaseUrl(config if isinstance(config, str) else config.storage.url)
        self.location = self.url.shown
        first = connect(self.url)
        try:
            with storage_errors(self.url):
                self.schema_version = migrate(first, self.url.shown)
        finally:
            first.close()
        with storage_errors(self.url):
            self._pool = ConnectionPool(
                self.url.value, min_size=1, max_size=max(1, pool_size), open=True, name="flowzero",
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                check=ConnectionPool.check_connection, timeout=POOL_TIMEOUT_SECONDS,
            )
        # The CLI never closes its store: the pool's threads and connections end with the object or the process.
        self._finalizer = weakref.finalize(self, _close_pool, self._pool)

    def __repr__(self) -> str:
        return f"PostgresOrderStore({self.location!r})"

    # -- connections -----------------------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with storage_errors(self.url), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: committed if the block ends normally, rolled back otherwise."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return list(conn.execute(sql.encode(), tuple(params)).fetchall())

    def _orders(self, where: str = "", params: Sequence[Any] = (),
                order_by: str = _CHRONOLOGICAL) -> list[Order]:
        sql = _SELECT + (f" WHERE {where}" if where else "") + order_by
        return [row_to_order(row) for row in self._query(sql, params)]

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> PostgresOrderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- orders ----------------------------------------------------------------------------------------------

    def save_order(self, order: Order) -> None:
        row = order_to_row(order, utc_now())
        with self._write() as conn:
            conn.execute(_UPSERT.encode(), row)

    def get_order(self, order_id: str) -> Optional[Order]:
        found = self._orders("order_id = %s", (order_id,))
        return found[0] if found else None

    def order_exists(self, order_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM orders WHERE order_id = %s", (order_id,)))

    def find_existing_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str],
                            product_bundle: Optional[str] = None,
                            order_type: Optional[str] = None) -> Optional[Order]:
        marks = ", ".join(["%s"] * len(NOT_REORDERABLE_STATES))
        where = ("aoi_name = %s AND start_date IS NOT DISTINCT FROM %s AND end_date IS NOT DISTINCT FROM %s "
                 f"AND status IN ({marks})")
        params: list[Any] = [aoi_name, start_date, end_date, *NOT_REORDERABLE_STATES]
        if product_bundle is not None:
            where += " AND product_bundle = %s"
            params.append(product_bundle)
        if order_type is not None:
            where += " AND order_type = %s"
            params.append(order_type)
        found = self._orders(where, params, " ORDER BY created_at DESC, order_id DESC LIMIT 1")
        return found[0] if found else None

    def has_completed_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str]) -> bool:
        return bool(self._query(
            "SELECT 1 FROM orders WHERE aoi_name = %s AND start_date IS NOT DISTINCT FROM %s "
            "AND end_date IS NOT DISTINCT FROM %s AND status = 'success'",
            (aoi_name, start_date, end_date)))

    def get_batch_orders(self, batch_id: str) -> list[Order]:
        return self._orders("batch_id = %s", (batch_id,), " ORDER BY start_date, created_at, order_id")

    def update_order_status(self, order_id: str, status: str,
                            metadata: Optional[dict[str, Any]] = None) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT metadata FROM orders WHERE order_id = %s FOR UPDATE", (order_id,)).fetchone()
            if row is None:
                return False
            merged = {**load_json(row[0]), **(metadata or {})}
            conn.execute("UPDATE orders SET status = %s, metadata = %s, updated_at = %s WHERE order_id = %s",
                         (status, dump_json(merged), utc_now(), order_id))
        return True

    def get_orders_by_status(self, status: str) -> list[Order]:
        return self._orders("status = %s", (status,))

    def list_orders(self, status: Optional[str] = None, batch_id: Optional[str] = None,
                    aoi_name: Optional[str] = None) -> list[Order]:
        clauses, params = [], []
        for column, value in (("status", status), ("batch_id", batch_id), ("aoi_name", aoi_name)):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        return self._orders(" AND ".join(clauses), params)

    def get_stats(self) -> dict[str, Any]:
        total, quota, selected, found, batches, aois = self._query(
            "SELECT COUNT(*), COALESCE(SUM(quota_hectares), 0), COALESCE(SUM(scenes_selected), 0), "
            "COALESCE(SUM(scenes_found), 0), COUNT(DISTINCT batch_id), COUNT(DISTINCT aoi_name) "
            "FROM orders")[0]
        by_status = dict(self._query("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY 1"))
        by_type = dict(self._query("SELECT order_type, COUNT(*) FROM orders GROUP BY order_type ORDER BY 1"))
        pending = self._query("SELECT COUNT(*) FROM order_intents WHERE resolved_at IS NULL")[0][0]
        return {
            "backend": self.name,
            "database": self.location,
            "schema_version": self.schema_version,
            "total_orders": total,
            "by_status": by_status,
            "by_order_type": by_type,
            "total_quota_hectares": float(quota),
            "total_scenes_selected": int(selected),
            "total_scenes_found": int(found),
            "batches": batches,
            "aois": aois,
            "pending_intents": pending,
        }

    def list_batches(self) -> list[dict[str, Any]]:
        summaries = self._query(
            "SELECT batch_id, ARRAY_AGG(DISTINCT aoi_name), COUNT(*), MIN(start_date), MAX(end_date), "
            "SUM(quota_hectares), SUM(scenes_selected), MIN(created_at), MAX(updated_at) "
            "FROM orders WHERE batch_id IS NOT NULL GROUP BY batch_id ORDER BY MIN(created_at), batch_id")
        statuses: dict[str, dict[str, int]] = {}
        for batch_id, status, count in self._query(
                "SELECT batch_id, status, COUNT(*) FROM orders WHERE batch_id IS NOT NULL "
                "GROUP BY batch_id, status ORDER BY status"):
            statuses.setdefault(batch_id, {})[status] = count
        return [
            {
                "batch_id": batch_id,
                "aoi_names": sorted(aois),
                "orders": count,
                "start_date": start,
                "end_date": end,
                "statuses": statuses.get(batch_id, {}),
                "quota_hectares": quota,
                "scenes_selected": None if selected is None else int(selected),
                "created_at": created,
                "updated_at": updated,
            }
            for batch_id, aois, count, start, end, quota, selected, created, updated in summaries
        ]

    # -- order intents ---------------------------------------------------------------------------------------

    def record_intent(self, order_name: str, details: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO order_intents (order_name, details, created_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (order_name) DO UPDATE SET details = EXCLUDED.details, "
                "created_at = EXCLUDED.created_at, order_id = NULL, resolved_at = NULL",
                (order_name, dump_json(details), utc_now()))

    def pending_intents(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT order_name, details, created_at FROM order_intents "
                           "WHERE resolved_at IS NULL ORDER BY created_at, order_name")
        return [{"order_name": name, "details": load_json(details), "created_at": created}
                for name, details, created in rows]

    def get_intent(self, order_name: str) -> Optional[dict[str, Any]]:
        """One intent, resolved or not (``order_id`` and ``resolved_at`` are None while pending)."""
        rows = self._query("SELECT order_name, details, created_at, order_id, resolved_at FROM order_intents "
                           "WHERE order_name = %s", (order_name,))
        if not rows:
            return None
        name, details, created, order_id, resolved = rows[0]
        return {"order_name": name, "details": load_json(details), "created_at": created,
                "order_id": order_id, "resolved_at": resolved}

    def resolve_intent(self, order_name: str, order_id: Optional[str]) -> bool:
        with self._write() as conn:
            cursor = conn.execute("UPDATE order_intents SET order_id = %s, resolved_at = %s WHERE order_name = %s",
                                  (order_id, utc_now(), order_name))
            return cursor.rowcount > 0

    def list_intents(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT order_name, details, created_at, order_id, resolved_at FROM order_intents "
                           "ORDER BY created_at, order_name")
        return [{"order_name": name, "details": load_json(details), "created_at": created,
                 "order_id": order_id, "resolved_at": resolved}
                for name, details, created, order_id, resolved in rows]

    # -- claims (work sharing) -------------------------------------------------------------------------------

    def claim(self, order_id: str, worker: str, lease_seconds: float) -> bool:
        check_claim_args(worker, lease_seconds)
        deadline = time.monotonic() + CLAIM_LOCK_WAIT_SECONDS
        delay = 0.005
        while True:
            taken = self._try_claim(order_id, worker, lease_seconds)
            if taken is not None:
                return taken
            if time.monotonic() >= deadline:
                return False  # the row stayed locked: another worker is claiming or working it right now
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _try_claim(self, order_id: str, worker: str, lease_seconds: float) -> Optional[bool]:
        """True/False as :meth:`claim`, or None when another transaction holds the row's lock this instant."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT claimed_by, claim_expires_at > clock_timestamp() FROM orders WHERE order_id = %s "
                "FOR UPDATE SKIP LOCKED", (order_id,)).fetchone()
            if row is None:
                exists = conn.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,)).fetchone()
                return None if exists else False
            holder, running = row
            if holder is not None and holder != worker and running:
                return False
            conn.execute("UPDATE orders SET claimed_by = %s, "
                         "claim_expires_at = clock_timestamp() + make_interval(secs => %s) WHERE order_id = %s",
                         (worker, float(lease_seconds), order_id))
            return True

    def release(self, order_id: str, worker: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute("UPDATE orders SET claimed_by = NULL, claim_expires_at = NULL "
                                  "WHERE order_id = %s AND claimed_by = %s", (order_id, worker))
            return cursor.rowcount > 0

    def get_claim(self, order_id: str) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT claimed_by, claim_expires_at FROM orders WHERE order_id = %s "
                           "AND claimed_by IS NOT NULL AND claim_expires_at > clock_timestamp()", (order_id,))
        return {"worker": rows[0][0], "expires_at": format_timestamp(rows[0][1])} if rows else None

    # -- copying between stores ------------------------------------------------------------------------------

    def import_records(self, orders: Sequence[Order],
                       intents: Sequence[Mapping[str, Any]]) -> dict[str, CopyCounts]:
        from flowzero.storage.copying import intent_stamp, plan_intents, plan_orders

        now = utc_now()
        with self._write() as conn:
            conn.execute("LOCK TABLE orders, order_intents IN SHARE ROW EXCLUSIVE MODE")
            existing = dict(conn.execute("SELECT order_id, updated_at FROM orders").fetchall())
            order_writes, order_counts = plan_orders(orders, existing)
            with conn.cursor() as cursor:
                cursor.executemany(_UPSERT.encode(),
                                   [order_to_row(o, now, keep_timestamps=True) for o in order_writes])
            stamps = {name: intent_stamp({"created_at": created, "resolved_at": resolved}) for name, created, resolved
                      in conn.execute("SELECT order_name, created_at, resolved_at FROM order_intents").fetchall()}
            intent_writes, intent_counts = plan_intents(intents, stamps)
            with conn.cursor() as cursor:
                cursor.executemany(_UPSERT_INTENT, [intent_row(i, now) for i in intent_writes])
        return {"orders": order_counts, "intents": intent_counts}
