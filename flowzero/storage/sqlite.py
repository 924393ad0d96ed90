"""The built-in ``sqlite`` order store: one APSW SQLite file shared safely by several flowzero processes.

WAL lets readers run while one process writes; every write is a ``BEGIN IMMEDIATE`` transaction with a 30 s
busy timeout, so concurrent processes queue for the write lock instead of failing with "database is locked" or
losing a read-modify-write. The database folder is created 0700 and the file 0600: order history is private.
The queries are :class:`~flowzero.storage.sqlstore.SqlOrderStore`'s; this module supplies the file, the
connection and its locking, and claims. apsw is imported on first use so that loading this plugin costs nothing
at CLI start-up.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from flowzero import hookimpl
from flowzero.errors import StorageError
from flowzero.storage.records import check_claim_args, format_timestamp, utc_now
from flowzero.storage.sqlite_session import SqliteSession
from flowzero.storage.sqlstore import Session, SqlOrderStore

if TYPE_CHECKING:
    import apsw

    from flowzero.config import Config

BUSY_TIMEOUT_SECONDS = 30.0
_DAMAGED_HINT = "restore it from a backup, or rescue what is readable with `sqlite3 FILE .recover`"


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


class SqliteOrderStore(SqlOrderStore):
    """Orders and order intents in a SQLite file (``database_path``)."""

    name = "sqlite"
    description = "SQLite file at database_path (WAL; safe for several processes)"
    url_schemes = ("sqlite", "file")
    _NULL_SAFE_EQUALS = "IS"
    _ROW_LOCK = ""  # BEGIN IMMEDIATE already holds the database's write lock
    _GROUP_ARRAY = "JSON_GROUP_ARRAY"

    def __init__(self, config: Union[Config, str, os.PathLike[str]]) -> None:
        if isinstance(config, (str, os.PathLike)):
            raw = os.fspath(config)
            self.path = Path(raw) if raw == ":memory:" else Path(os.path.expanduser(raw))
        else:
            self.path = config.database_file
        self.location = str(self.path) if str(self.path) == ":memory:" else str(self.path.resolve())
        self._lock = threading.RLock()
        self._intact = False  # quick_check passed (see check_integrity)
        self._conn = self._connect()
        self._session = SqliteSession(self._conn)
        try:
            # Imported here: this built-in plugin loads at `flowzero --help`, which does not load migrate.
            from flowzero.storage.migrate import migrate  # noqa: PLC0415

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
        except apsw.CorruptError as exc:
            raise StorageError(f"database {self.path} is damaged ({exc})", hint=_DAMAGED_HINT) from None
        except (apsw.ReadOnlyError, apsw.PermissionsError, apsw.CantOpenError) as exc:
            raise StorageError(f"cannot write database {self.path}: {exc}",
                               hint="check the file's permissions") from None
        except apsw.Error as exc:
            raise StorageError(f"database {self.path}: {type(exc).__name__}: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[SqliteSession]:
        with self._lock, self._errors():
            yield self._session

    @contextmanager
    def _write(self) -> Iterator[SqliteSession]:
        """One ``BEGIN IMMEDIATE`` transaction, so it never deadlocks on an upgrade."""
        with self._lock, self._errors(), self._session.immediate_transaction() as session:
            yield session

    def _decode_array(self, value: Any) -> list[Any]:
        return list(json.loads(value))

    # Leases are timed on this machine's clock (every process sharing the file runs on it), as sortable text.

    def _lease_until(self, lease_seconds: float) -> tuple[str, list[Any]]:
        return "?", [format_timestamp(datetime.now(timezone.utc) + timedelta(seconds=lease_seconds))]

    def _lease_running(self, column: str) -> tuple[str, list[Any]]:
        return f"{column} > ?", [utc_now()]

    def _lock_for_import(self, db: Session) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's write lock."""

    def _stats_database(self) -> str:
        return str(self.path)

    def check_integrity(self) -> None:
        """``PRAGMA quick_check`` (every page and index entry readable and well formed, in time linear in the
        file's size), once per store: a damaged file is refused before an order is placed, rather than found
        when the order Planet accepted cannot be recorded."""
        if self._intact:
            return
        found = [str(row[0]) for row in self._query("PRAGMA quick_check") if row[0] != "ok"]
        problems = [line.strip() for text in found for line in text.splitlines()
                    if line.strip() and not line.startswith("***")]
        if found:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            first = problems[0] if problems else found[0].strip()
            raise StorageError(f"database {self.path} is damaged ({first}{more}); nothing was ordered",
                               hint=_DAMAGED_HINT)
        self._intact = True

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- claims (work sharing) -------------------------------------------------------------------------------
    # One UPDATE inside BEGIN IMMEDIATE: the test "free, expired or ours" and the write happen under the
    # database's write lock, so of several processes claiming the same order exactly one gets it.

    def claim(self, order_id: str, worker: str, lease_seconds: float, destination: Optional[str] = None) -> bool:
        check_claim_args(worker, lease_seconds)
        now = datetime.now(timezone.utc)
        expires = format_timestamp(now + timedelta(seconds=lease_seconds))
        with self._write() as db:
            return db.run(
                "UPDATE orders SET claimed_by = ?, claim_expires_at = ?, claim_destination = ? WHERE order_id = ? "
                "AND (claimed_by IS NULL OR claimed_by = ? OR claim_expires_at IS NULL OR claim_expires_at <= ?)",
                (worker, expires, destination, order_id, worker, format_timestamp(now))) > 0

    def get_claim(self, order_id: str) -> Optional[dict[str, Any]]:
        rows = self._query("SELECT claimed_by, claim_expires_at, claim_destination FROM orders WHERE order_id = ? "
                           "AND claimed_by IS NOT NULL AND claim_expires_at > ?", (order_id, utc_now()))
        return {"worker": rows[0][0], "expires_at": rows[0][1], "destination": rows[0][2]} if rows else None


@hookimpl
def register_storage_backends(register: Any) -> None:
    register(SqliteOrderStore)
