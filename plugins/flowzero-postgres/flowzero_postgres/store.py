"""The ``postgres`` order store: one PostgreSQL database shared by every flowzero process on every machine.

The same tables, columns and queries as the SQLite store: both are :class:`~flowzero.storage.sqlstore.SqlOrderStore`,
so the contract suite holds for both. This module supplies the connections (a psycopg 3 pool), the dialect and
the locking: a write that reads first (``update_order_status``) locks its row, so concurrent merges are never
lost; a copy locks both tables. Claims lock the order row with ``SELECT ... FOR UPDATE SKIP LOCKED`` and time
leases on the server's clock.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Optional, Union

from flowzero.api import Session, SqlOrderStore, check_claim_args, format_timestamp
from flowzero_postgres.connection import CONNECT_TIMEOUT_SECONDS, URL_SCHEMES, DatabaseUrl, connect, storage_errors
from flowzero_postgres.session import PostgresSession

if TYPE_CHECKING:
    from flowzero.api import Config

POOL_MAX_SIZE = 4
POOL_TIMEOUT_SECONDS = 30.0
# A claim finds its row locked only while another short transaction holds it (a claim, a release, a status
# update); it waits this long for that to finish before answering "held by someone else".
CLAIM_LOCK_WAIT_SECONDS = 2.0


def _close_pool(pool: Any) -> None:
    pool.close(timeout=5.0)


class PostgresOrderStore(SqlOrderStore):
    """Orders and order intents in PostgreSQL (``storage.url`` or ``$FLOWZERO_DATABASE_URL``)."""

    name = "postgres"
    description = "PostgreSQL at storage.url (psycopg 3 pool; one database shared by many machines)"
    url_schemes = URL_SCHEMES
    _NULL_SAFE_EQUALS = "IS NOT DISTINCT FROM"
    _ROW_LOCK = " FOR UPDATE"
    _GROUP_ARRAY = "ARRAY_AGG"

    def __init__(self, config: Union[Config, str], pool_size: int = POOL_MAX_SIZE) -> None:
        from psycopg_pool import ConnectionPool

        from flowzero_postgres.migrate import migrate  # noqa: PLC0415 (loads flowzero's migrations: not at --help)

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
    def _read(self) -> Iterator[PostgresSession]:
        with storage_errors(self.url), self._pool.connection() as conn:
            yield PostgresSession(conn)

    @contextmanager
    def _write(self) -> Iterator[PostgresSession]:
        """A pooled (autocommit) connection inside one explicit transaction."""
        with self._read() as db, db.conn.transaction():
            yield db

    def _decode_array(self, value: Any) -> list[Any]:
        return list(value)

    # Leases are timed on the server's clock, so machines with skewed clocks agree.

    def _lease_until(self, lease_seconds: float) -> tuple[str, list[Any]]:
        return "clock_timestamp() + make_interval(secs => ?)", [float(lease_seconds)]

    def _lease_running(self, column: str) -> tuple[str, list[Any]]:
        return f"{column} > clock_timestamp()", []

    def _lock_for_import(self, db: Session) -> None:
        db.run("LOCK TABLE orders, order_intents IN SHARE ROW EXCLUSIVE MODE")

    def check_integrity(self) -> None:
        """Nothing to check: the server keeps its pages consistent itself (WAL, checksums when enabled) and
        reports damage on the query that meets it, before anything is written."""

    def close(self) -> None:
        self._finalizer()

    # -- claims (work sharing) -------------------------------------------------------------------------------

    def claim(self, order_id: str, worker: str, lease_seconds: float, destination: Optional[str] = None) -> bool:
        check_claim_args(worker, lease_seconds)
        deadline = time.monotonic() + CLAIM_LOCK_WAIT_SECONDS
        delay = 0.005
        while True:
            taken = self._try_claim(order_id, worker, lease_seconds, destination)
            if taken is not None:
                return taken
            if time.monotonic() >= deadline:
                return False  # the row stayed locked: another worker is claiming or working it right now
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _try_claim(self, order_id: str, worker: str, lease_seconds: float,
                   destination: Optional[str]) -> Optional[bool]:
        """True/False as :meth:`claim`, or None when another transaction holds the row's lock this instant."""
        with self._write() as db:
            rows = db.rows("SELECT claimed_by, claim_expires_at > clock_timestamp() FROM orders WHERE order_id = ? "
                           "FOR UPDATE SKIP LOCKED", (order_id,))
            if not rows:
                return None if db.rows("SELECT 1 FROM orders WHERE order_id = ?", (order_id,)) else False
            holder, running = rows[0]
            if holder is not None and holder != worker and running:
                return False
            db.run("UPDATE orders SET claimed_by = ?, claim_destination = ?, "
                   "claim_expires_at = clock_timestamp() + make_interval(secs => ?) WHERE order_id = ?",
                   (worker, destination, float(lease_seconds), order_id))
            return True

    def get_claim(self, order_id: str) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT claimed_by, claim_expires_at, claim_destination FROM orders WHERE order_id = ? "
                           "AND claimed_by IS NOT NULL AND claim_expires_at > clock_timestamp()", (order_id,))
        return ({"worker": rows[0][0], "expires_at": format_timestamp(rows[0][1]), "destination": rows[0][2]}
                if rows else None)
