"""The built-in ``sqlite`` order store: one APSW SQLite file shared safely by several flowzero processes.

WAL lets readers run while one process writes; every write is a ``BEGIN IMMEDIATE`` transaction with a 30 s
busy timeout, so concurrent processes queue for the write lock instead of failing with "database is locked" or
losing a read-modify-write. The database folder is created 0700 and the file 0600: order history is private.
apsw is imported on first use so that loading this plugin costs nothing at CLI start-up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from flowzero import hookimpl
from flowzero.errors import StorageError
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

if TYPE_CHECKING:
    import apsw

    from flowzero.config import Config
    from flowzero.models import Order
    from flowzero.storage.copying import CopyCounts

BUSY_TIMEOUT_SECONDS = 30.0

_SELECT = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders"
_UPSERT = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' * len(ORDER_COLUMNS))}) "
    "ON CONFLICT(order_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ORDER_COLUMNS if c not in ("order_id", "created_at"))
)
_CHRONOLOGICAL = " ORDER BY created_at, order_id"
_UPSERT_INTENT = (
    "INSERT INTO order_intents (order_name, details, created_at, order_id, resolved_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(order_name) DO UPDATE SET details = excluded.details, created_at = excluded.created_at, "
    "order_id = excluded.order_id, resolved_at = excluded.resolved_at"
)


def _prepare_files(path: Path) -> None:
    """Create the folder (0700) and an empty database file (0600) before SQLite does it with looser modes."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(path.parent, 0o700)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot create database {path}: {exc.strerror or exc}",
                           hint="check database_path / --database-path and folder permissions") from None


def _enable_wal(conn: apsw.Connection) -> None:
    """Switch to WAL, retrying: SQLite may answer "locked" at once, without waiting in the busy handler, while
    another process is switching the same fresh file (seen with 8 processes opening a new database)."""
    import apsw

    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


class SqliteOrderStore:
    """Orders and order intents in a SQLite file (``database_path``)."""

    name = "sqlite"
    description = "SQLite file at database_path (WAL; safe for several processes)"
    url_schemes = ("sqlite", "file")

    def __init__(self, config: Union[Config, str, os.PathLike[str]]) -> None:
        if isinstance(config, (str, os.PathLike)):
            raw = os.fspath(config)
            self.path = Path(raw) if raw == ":memory:" else Path(os.path.expanduser(raw))
        else:
            self.path = config.database_file
        self.location = str(self.path) if str(self.path) == ":memory:" else str(self.path.resolve())
        self._lock = threading.RLock()
        self._conn = self._connect()
        try:
            from flowzero.storage.migrate import migrate

            with self._errors():
                self.schema_version = migrate(self._conn, str(self.path))
        except BaseException:
            self._conn.close()
            raise

    # -- connection and transactions -------------------------------------------------------------------------

    def _connect(self) -> apsw.Connection:
        import apsw

        memory = str(self.path) == ":memory:"
        if not memory:
            _prepare_files(self.path)
        try:
            conn = apsw.Connection(str(self.path))
        except apsw.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from None
        try:
            set_timeout = getattr(conn, "set_busy_timeout", None) or conn.setbusytimeout
            set_timeout(int(BUSY_TIMEOUT_SECONDS * 1000))
            with self._errors():
                if not memory:
                    _enable_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite errors as one-line StorageErrors naming the database."""
        import apsw

        try:
            yield
        except apsw.BusyError:
            raise StorageError(
                f"database {self.path} stayed locked by another process "
                f"for more than {BUSY_TIMEOUT_SECONDS:g} s",
                hint="is another flowzero process stuck? try again",
            ) from None
        except apsw.NotADBError:
            raise StorageError(f"{self.path} is not a SQLite database",
                               hint="point --database-path at a flowzero database or a new file") from None
        except (apsw.ReadOnlyError, apsw.PermissionsError, apsw.CantOpenError) as exc:
            raise StorageError(f"cannot write database {self.path}: {exc}",
                               hint="check the file's permissions") from None
        except apsw.Error as exc:
            raise StorageError(f"database {self.path}: {type(exc).__name__}: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[apsw.Connection]:
        """One write transaction, taking the write lock up front so it never deadlocks on an upgrade."""
        with self._lock, self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._errors():
            return [tuple(row) for row in self._conn.execute(sql, tuple(params))]

    def _orders(self, where: str = "", params: Sequence[Any] = (),
                order_by: str = _CHRONOLOGICAL) -> list[Order]:
        sql = _SELECT + (f" WHERE {where}" if where else "") + order_by
        return [row_to_order(row) for row in self._query(sql, params)]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteOrderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- orders ----------------------------------------------------------------------------------------------

    def save_order(self, order: Order) -> None:
        row = order_to_row(order, utc_now())
        with self._write() as conn:
            conn.execute(_UPSERT, row)

    def get_order(self, order_id: str) -> Optional[Order]:
        found = self._orders("order_id = ?", (order_id,))
        return found[0] if found else None

    def order_exists(self, order_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM orders WHERE order_id = ?", (order_id,)))

    def find_existing_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str],
                            product_bundle: Optional[str] = None,
                            order_type: Optional[str] = None) -> Optional[Order]:
        marks = ", ".join("?" * len(NOT_REORDERABLE_STATES))
        where = f"aoi_name = ? AND start_date IS ? AND end_date IS ? AND status IN ({marks})"
        params: list[Any] = [aoi_name, start_date, end_date, *NOT_REORDERABLE_STATES]
        if product_bundle is not None:
            where += " AND product_bundle = ?"
            params.append(product_bundle)
        if order_type is not None:
            where += " AND order_type = ?"
            params.append(order_type)
        found = self._orders(where, params, " ORDER BY created_at DESC, order_id DESC LIMIT 1")
        return found[0] if found else None

    def has_completed_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str]) -> bool:
        return bool(self._query(
            "SELECT 1 FROM orders WHERE aoi_name = ? AND start_date IS ? AND end_date IS ? "
            "AND status = 'success'",
            (aoi_name, start_date, end_date)))

    def get_batch_orders(self, batch_id: str) -> list[Order]:
        return self._orders("batch_id = ?", (batch_id,), " ORDER BY start_date, created_at, order_id")

    def update_order_status(self, order_id: str, status: str,
                            metadata: Optional[dict[str, Any]] = None) -> bool:
        with self._write() as conn:
            rows = conn.execute("SELECT metadata FROM orders WHERE order_id = ?", (order_id,)).fetchall()
            if not rows:
                return False
            merged = {**load_json(rows[0][0]), **(metadata or {})}
            conn.execute("UPDATE orders SET status = ?, metadata = ?, updated_at = ? WHERE order_id = ?",
                         (status, dump_json(merged), utc_now(), order_id))
        return True

    def get_orders_by_status(self, status: str) -> list[Order]:
        return self._orders("status = ?", (status,))

    def list_orders(self, status: Optional[str] = None, batch_id: Optional[str] = None,
                    aoi_name: Optional[str] = None) -> list[Order]:
        clauses, params = [], []
        for column, value in (("status", status), ("batch_id", batch_id), ("aoi_name", aoi_name)):
            if value is not None:
                clauses.append(f"{column} = ?")
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
            "database": str(self.path),
            "schema_version": self.schema_version,
            "total_orders": total,
            "by_status": by_status,
            "by_order_type": by_type,
            "total_quota_hectares": float(quota),
            "total_scenes_selected": selected,
            "total_scenes_found": found,
            "batches": batches,
            "aois": aois,
            "pending_intents": pending,
        }

    def list_batches(self) -> list[dict[str, Any]]:
        summaries = self._query(
            "SELECT batch_id, JSON_GROUP_ARRAY(DISTINCT aoi_name), COUNT(*), MIN(start_date), MAX(end_date), "
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
                "aoi_names": sorted(json.loads(aois)),
                "orders": count,
                "start_date": start,
                "end_date": end,
                "statuses": statuses.get(batch_id, {}),
                "quota_hectares": quota,
                "scenes_selected": selected,
                "created_at": created,
                "updated_at": updated,
            }
            for batch_id, aois, count, start, end, quota, selected, created, updated in summaries
        ]

    # -- order intents ---------------------------------------------------------------------------------------

    def record_intent(self, order_name: str, details: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO order_intents (order_name, details, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(order_name) DO UPDATE SET details = excluded.details, "
                "created_at = excluded.created_at, order_id = NULL, resolved_at = NULL",
                (order_name, dump_json(details), utc_now()))

    def pending_intents(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT order_name, details, created_at FROM order_intents "
                           "WHERE resolved_at IS NULL ORDER BY created_at, order_name")
        return [{"order_name": name, "details": load_json(details), "created_at": created}
                for name, details, created in rows]

    def get_intent(self, order_name: str) -> Optional[dict[str, Any]]:
        """One intent, resolved or not (``order_id`` and ``resolved_at`` are None while pending)."""
        rows = self._query("SELECT order_name, details, created_at, order_id, resolved_at FROM order_intents "
                           "WHERE order_name = ?", (order_name,))
        if not rows:
            return None
        name, details, created, order_id, resolved = rows[0]
        return {"order_name": name, "details": load_json(details), "created_at": created,
                "order_id": order_id, "resolved_at": resolved}

    def resolve_intent(self, order_name: str, order_id: Optional[str]) -> bool:
        with self._write() as conn:
            conn.execute("UPDATE order_intents SET order_id = ?, resolved_at = ? WHERE order_name = ?",
                         (order_id, utc_now(), order_name))
            return conn.changes() > 0

    def list_intents(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT order_name, details, created_at, order_id, resolved_at FROM order_intents "
                           "ORDER BY created_at, order_name")
        return [{"order_name": name, "details": load_json(details), "created_at": created,
                 "order_id": order_id, "resolved_at": resolved}
                for name, details, created, order_id, resolved in rows]

    # -- claims (work sharing) -------------------------------------------------------------------------------
    # One UPDATE inside BEGIN IMMEDIATE: the test "free, expired or ours" and the write happen under the
    # database's write lock, so of several processes claiming the same order exactly one gets it.

    def claim(self, order_id: str, worker: str, lease_seconds: float) -> bool:
        check_claim_args(worker, lease_seconds)
        now = datetime.now(timezone.utc)
        expires = format_timestamp(now + timedelta(seconds=lease_seconds))
        with self._write() as conn:
            conn.execute(
                "UPDATE orders SET claimed_by = ?, claim_expires_at = ? WHERE order_id = ? AND "
                "(claimed_by IS NULL OR claimed_by = ? OR claim_expires_at IS NULL OR claim_expires_at <= ?)",
                (worker, expires, order_id, worker, format_timestamp(now)))
            return conn.changes() > 0

    def release(self, order_id: str, worker: str) -> bool:
        with self._write() as conn:
            conn.execute("UPDATE orders SET claimed_by = NULL, claim_expires_at = NULL "
                         "WHERE order_id = ? AND claimed_by = ?", (order_id, worker))
            return conn.changes() > 0

    def get_claim(self, order_id: str) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT claimed_by, claim_expires_at FROM orders WHERE order_id = ? "
                           "AND claimed_by IS NOT NULL AND claim_expires_at > ?", (order_id, utc_now()))
        return {"worker": rows[0][0], "expires_at": rows[0][1]} if rows else None

    # -- copying between stores ------------------------------------------------------------------------------

    def import_records(self, orders: Sequence[Order],
                       intents: Sequence[Mapping[str, Any]]) -> dict[str, CopyCounts]:
        from flowzero.storage.copying import intent_stamp, plan_intents, plan_orders

        now = utc_now()
        with self._write() as conn:
            existing = {row[0]: row[1] for row in conn.execute("SELECT order_id, updated_at FROM orders")}
            order_writes, order_counts = plan_orders(orders, existing)
            for order in order_writes:
                conn.execute(_UPSERT, order_to_row(order, now, keep_timestamps=True))
            stamps = {row[0]: intent_stamp({"created_at": row[1], "resolved_at": row[2]}) for row in
                      conn.execute("SELECT order_name, created_at, resolved_at FROM order_intents")}
            intent_writes, intent_counts = plan_intents(intents, stamps)
            for intent in intent_writes:
                conn.execute(_UPSERT_INTENT, intent_row(intent, now))
        return {"orders": order_counts, "intents": intent_counts}


@hookimpl
def register_storage_backends(register: Any) -> None:
    register(SqliteOrderStore)
