"""The order-store queries every SQL backend shares, written once against a small driver interface.

A backend (SQLite in :mod:`flowzero.storage.sqlite`, PostgreSQL in the ``flowzero-postgres`` plugin) subclasses
:class:`SqlOrderStore` and supplies what genuinely differs: how a :class:`Session` reads and writes (driver,
placeholders, row counts, transactions and their locks), a few dialect words, and how claims are taken. Queries
here are written with ``?`` placeholders (so no literal ``?``); a session translates them if its driver wants
another style. Rows go through :mod:`flowzero.storage.records`, so the contract suite holds for both.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Protocol, TypeVar

from flowzero.models import NOT_REORDERABLE_STATES, Order, SearchRecord
from flowzero.storage import CopyCounts, IntentClaim
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
    from contextlib import AbstractContextManager

_SELECT = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders"
_UPSERT = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' * len(ORDER_COLUMNS))}) "
    "ON CONFLICT (order_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS if c not in ("order_id", "created_at"))
)
_UPSERT_INTENT = (
    "INSERT INTO order_intents (order_name, details, created_at, order_id, resolved_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (order_name) DO UPDATE SET details = EXCLUDED.details, created_at = EXCLUDED.created_at, "
    "order_id = EXCLUDED.order_id, resolved_at = EXCLUDED.resolved_at"
)
_INTENT_COLUMNS = "SELECT order_name, details, created_at, order_id, resolved_at FROM order_intents"
_SEARCH_COLUMNS = ("search_id", "aoi_name", "batch_id", "start_date", "end_date", "cadence", "product_bundle",
                   "min_coverage_pct", "found", "eligible", "selected", "details", "searched_at")
_INSERT_SEARCH = (f"INSERT INTO searches ({', '.join(_SEARCH_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(_SEARCH_COLUMNS))}) ON CONFLICT (search_id) DO NOTHING")
_CHRONOLOGICAL = " ORDER BY created_at, order_id"

_Store = TypeVar("_Store", bound="SqlOrderStore")


def _stamp(value: Any) -> Optional[str]:
    """A lease end as text, whether the database keeps it as text (SQLite) or as a timestamp (PostgreSQL)."""
    return value if value is None or isinstance(value, str) else format_timestamp(value)


class Session(Protocol):
    """One connection as the shared queries use it; SQL comes with ``?`` placeholders."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row the statement returns, as tuples."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a statement; the number of rows it changed."""

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Execute one statement once per parameter row."""


def _intent(name: str, details: Optional[str], created: str, order_id: Optional[str],
            resolved: Optional[str]) -> dict[str, Any]:
    return {"order_name": name, "details": load_json(details), "created_at": created,
            "order_id": order_id, "resolved_at": resolved}


class SqlOrderStore(ABC):
    """Orders and order intents in the ``orders`` / ``order_intents`` tables of a SQL database.

    A subclass adds ``claim`` and ``get_claim``: how a claim is made atomic, and whose clock times leases, is
    each database's own.
    """

    name: ClassVar[str]
    location: str
    schema_version: int

    # Dialect: `a IS b` that also holds when both are NULL; what locks a row read before it is rewritten; the
    # aggregate collecting a group's values into one array (read back by _decode_array).
    _NULL_SAFE_EQUALS: ClassVar[str]
    _ROW_LOCK: ClassVar[str]
    _GROUP_ARRAY: ClassVar[str]

    # -- what a backend supplies -----------------------------------------------------------------------------

    @abstractmethod
    def _read(self) -> AbstractContextManager[Session]:
        """A session for reads outside any explicit transaction."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Session]:
        """A session inside one write transaction: committed if the block ends normally, else rolled back."""

    @abstractmethod
    def _lease_until(self, lease_seconds: float) -> tuple[str, list[Any]]:
        """SQL for "``lease_seconds`` from now" as a lease end is stored, with its parameters."""

    @abstractmethod
    def _lease_running(self, column: str) -> tuple[str, list[Any]]:
        """SQL that is true while the lease end in ``column`` lies ahead, with its parameters."""

    @abstractmethod
    def _decode_array(self, value: Any) -> list[Any]:
        """A ``_GROUP_ARRAY`` value as a list."""

    @abstractmethod
    def _lock_for_import(self, db: Session) -> None:
        """Make :meth:`import_records`'s read-then-write atomic against other writers, within ``_write``."""

    def _stats_database(self) -> str:
        """The ``database`` shown by :meth:`get_stats`."""
        return self.location

    @abstractmethod
    def check_integrity(self) -> None:
        """Refuse damaged data before an order is placed (StorageError); cheap after the first call."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection(s)."""

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read() as db:
            return db.rows(sql, params)

    def _orders(self, where: str = "", params: Sequence[Any] = (),
                order_by: str = _CHRONOLOGICAL) -> list[Order]:
        sql = _SELECT + (f" WHERE {where}" if where else "") + order_by
        return [row_to_order(row) for row in self._query(sql, params)]

    # -- orders ----------------------------------------------------------------------------------------------

    def save_order(self, order: Order) -> None:
        row = order_to_row(order, utc_now())
        with self._write() as db:
            db.run(_UPSERT, row)

    def get_order(self, order_id: str) -> Optional[Order]:
        found = self._orders("order_id = ?", (order_id,))
        return found[0] if found else None

    def order_exists(self, order_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM orders WHERE order_id = ?", (order_id,)))

    def find_existing_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str],
                            product_bundle: Optional[str] = None,
                            order_type: Optional[str] = None) -> Optional[Order]:
        marks = ", ".join("?" * len(NOT_REORDERABLE_STATES))
        same = self._NULL_SAFE_EQUALS
        where = f"aoi_name = ? AND start_date {same} ? AND end_date {same} ? AND status IN ({marks})"
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
        same = self._NULL_SAFE_EQUALS
        return bool(self._query(
            f"SELECT 1 FROM orders WHERE aoi_name = ? AND start_date {same} ? AND end_date {same} ? "
            "AND status = 'success'",
            (aoi_name, start_date, end_date)))

    def get_batch_orders(self, batch_id: str) -> list[Order]:
        return self._orders("batch_id = ?", (batch_id,), " ORDER BY start_date, created_at, order_id")

    def update_order_status(self, order_id: str, status: str,
                            metadata: Optional[dict[str, Any]] = None) -> bool:
        with self._write() as db:
            rows = db.rows("SELECT metadata FROM orders WHERE order_id = ?" + self._ROW_LOCK, (order_id,))
            if not rows:
                return False
            merged = {**load_json(rows[0][0]), **(metadata or {})}
            db.run("UPDATE orders SET status = ?, metadata = ?, updated_at = ? WHERE order_id = ?",
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
            "database": self._stats_database(),
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
            f"SELECT batch_id, {self._GROUP_ARRAY}(DISTINCT aoi_name), COUNT(*), MIN(start_date), MAX(end_date), "
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
                "aoi_names": sorted(self._decode_array(aois)),
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
        with self._write() as db:
            db.run("INSERT INTO order_intents (order_name, details, created_at) VALUES (?, ?, ?) "
                   "ON CONFLICT (order_name) DO UPDATE SET details = EXCLUDED.details, "
                   "created_at = EXCLUDED.created_at, order_id = NULL, resolved_at = NULL, owner = NULL, "
                   "lease_expires_at = NULL",
                   (order_name, dump_json(details), utc_now()))

    def pending_intents(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT order_name, details, created_at, owner, lease_expires_at FROM order_intents "
                           "WHERE resolved_at IS NULL ORDER BY created_at, order_name")
        return [{"order_name": name, "details": load_json(details), "created_at": created, "owner": owner,
                 "lease_expires_at": _stamp(expires)} for name, details, created, owner, expires in rows]

    def claim_intent(self, order_name: str, details: dict[str, Any], owner: str, lease_seconds: float,
                     pending_only: bool = False) -> IntentClaim:
        check_claim_args(owner, lease_seconds)
        until, until_params = self._lease_until(lease_seconds)
        running, running_params = self._lease_running("lease_expires_at")
        take = f"owner = ?, lease_expires_at = {until}"
        with self._write() as db:
            if not pending_only and db.run(
                    "INSERT INTO order_intents (order_name, details, created_at, owner, lease_expires_at) "
                    f"VALUES (?, ?, ?, ?, {until}) ON CONFLICT (order_name) DO NOTHING",
                    (order_name, dump_json(details), utc_now(), owner, *until_params)):
                return IntentClaim(True)
            rows = db.rows(f"SELECT owner, {running}, details, resolved_at, lease_expires_at FROM order_intents "
                           "WHERE order_name = ?" + self._ROW_LOCK, (*running_params, order_name))
            if not rows or (pending_only and rows[0][3] is not None):
                return IntentClaim(False)  # pending_only: absent, or resolved meanwhile
            [(holder, live, recorded, resolved, expires)] = rows
            if resolved is not None:  # done before: pending again, for this owner
                db.run(f"UPDATE order_intents SET details = ?, created_at = ?, order_id = NULL, resolved_at = NULL, "
                       f"{take} WHERE order_name = ?",
                       (dump_json(details), utc_now(), owner, *until_params, order_name))
                return IntentClaim(True)
            if holder is not None and holder != owner and live:
                return IntentClaim(False, holder=holder, expires_at=_stamp(expires))
            db.run(f"UPDATE order_intents SET {take} WHERE order_name = ?", (owner, *until_params, order_name))
            return IntentClaim(True, orphan=holder != owner, details=load_json(recorded))

    def renew_intent(self, order_name: str, owner: str, lease_seconds: float) -> bool:
        check_claim_args(owner, lease_seconds)
        until, params = self._lease_until(lease_seconds)
        with self._write() as db:
            return db.run(f"UPDATE order_intents SET lease_expires_at = {until} "
                          "WHERE order_name = ? AND owner = ? AND resolved_at IS NULL",
                          (*params, order_name, owner)) > 0

    def release_intent(self, order_name: str, owner: str) -> bool:
        with self._write() as db:
            return db.run("UPDATE order_intents SET owner = NULL, lease_expires_at = NULL "
                          "WHERE order_name = ? AND owner = ? AND resolved_at IS NULL", (order_name, owner)) > 0

    def get_intent(self, order_name: str) -> Optional[dict[str, Any]]:
        """One intent, resolved or not (``order_id`` and ``resolved_at`` are None while pending)."""
        rows = self._query(_INTENT_COLUMNS + " WHERE order_name = ?", (order_name,))
        return _intent(*rows[0]) if rows else None

    def resolve_intent(self, order_name: str, order_id: Optional[str]) -> bool:
        with self._write() as db:
            return db.run("UPDATE order_intents SET order_id = ?, resolved_at = ? WHERE order_name = ?",
                          (order_id, utc_now(), order_name)) > 0

    def list_intents(self) -> list[dict[str, Any]]:
        return [_intent(*row) for row in self._query(_INTENT_COLUMNS + " ORDER BY created_at, order_name")]

    # -- searches (the coverage calendar) ---------------------------------------------------------------------

    def record_search(self, search: SearchRecord) -> str:
        # Time-ordered, so searches recorded within one millisecond still list in the order they were recorded.
        search_id = search.search_id or f"{time.time_ns():016x}-{uuid.uuid4().hex[:12]}"
        values = {**{c: getattr(search, c, None) for c in _SEARCH_COLUMNS}, "search_id": search_id,
                  "details": dump_json({"days": search.days}), "searched_at": search.searched_at or utc_now()}
        with self._write() as db:
            db.run(_INSERT_SEARCH, [values[c] for c in _SEARCH_COLUMNS])
        return search_id

    def list_searches(self, aoi_name: Optional[str] = None, batch_id: Optional[str] = None) -> list[SearchRecord]:
        clauses, params = [], []
        for column, value in (("aoi_name", aoi_name), ("batch_id", batch_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT {', '.join(_SEARCH_COLUMNS)} FROM searches{where} ORDER BY searched_at, search_id",
                           params)
        found = []
        for row in rows:
            data = dict(zip(_SEARCH_COLUMNS, row))
            data["days"] = load_json(data.pop("details")).get("days") or {}
            if data["min_coverage_pct"] is not None:
                data["min_coverage_pct"] = float(data["min_coverage_pct"])
            found.append(SearchRecord(**data))
        return found

    # -- claims (work sharing) -------------------------------------------------------------------------------

    def release(self, order_id: str, worker: str) -> bool:
        with self._write() as db:
            return db.run("UPDATE orders SET claimed_by = NULL, claim_expires_at = NULL, claim_destination = NULL "
                          "WHERE order_id = ? AND claimed_by = ?", (order_id, worker)) > 0

    # -- copying between stores ------------------------------------------------------------------------------

    def import_records(self, orders: Sequence[Order],
                       intents: Sequence[Mapping[str, Any]]) -> dict[str, CopyCounts]:
        # Imported here: this module loads at `flowzero --help` (the sqlite plugin's base), copying does not.
        from flowzero.storage.copying import intent_stamp, plan_intents, plan_orders  # noqa: PLC0415

        now = utc_now()
        with self._write() as db:
            self._lock_for_import(db)
            existing = dict(db.rows("SELECT order_id, updated_at FROM orders"))
            order_writes, order_counts = plan_orders(orders, existing)
            db.run_many(_UPSERT, [order_to_row(o, now, keep_timestamps=True) for o in order_writes])
            stamps = {name: intent_stamp({"created_at": created, "resolved_at": resolved}) for name, created, resolved
                      in db.rows("SELECT order_name, created_at, resolved_at FROM order_intents")}
            intent_writes, intent_counts = plan_intents(intents, stamps)
            db.run_many(_UPSERT_INTENT, [intent_row(i, now) for i in intent_writes])
        return {"orders": order_counts, "intents": intent_counts}
