"""APSW behind the :class:`~flowzero.storage.sqlstore.Session` interface, for the SQLite store and its migrations.

SQLite speaks ``?`` placeholders already; the number of changed rows is the connection's ``changes()``. Writes
take the write lock up front (``BEGIN IMMEDIATE``), so a read-then-write never deadlocks on a lock upgrade.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import apsw


class SqliteSession:
    """Statements on one APSW connection."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.conn.execute(sql, tuple(params))]

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.conn.execute(sql, tuple(params))
        return self.conn.changes()

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.conn.execute(sql, tuple(row))

    @contextmanager
    def immediate_transaction(self) -> Iterator[SqliteSession]:
        """One transaction holding the write lock from its start; committed, or rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
