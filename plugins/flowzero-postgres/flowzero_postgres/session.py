"""psycopg behind flowzero's :class:`~flowzero.storage.sqlstore.Session`, for the store and its migrations.

The shared queries are written with ``?`` placeholders; psycopg wants ``%s`` (and a literal ``%`` doubled).
Queries reach psycopg as bytes: composed at run time, they are not the literal strings its type hints ask for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


def pyformat(sql: str) -> bytes:
    """``sql`` with ``?`` placeholders as psycopg's ``%s`` ones."""
    return sql.replace("%", "%%").replace("?", "%s").encode()


class PostgresSession:
    """Statements on one psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(pyformat(sql), tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(pyformat(sql), tuple(params)).rowcount

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(pyformat(sql), [tuple(row) for row in rows])
