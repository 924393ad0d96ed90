"""Numbered SQL migrations for the PostgreSQL store, applied once each even when many processes start at once.

The files (``flowzero_postgres/migrations/NNNN_name.sql``) follow the rules of flowzero's SQLite migrations
and are read and applied by the same code. Missing ones are applied in one transaction that first takes a
transaction-level advisory lock (``pg_advisory_xact_lock``): every other process starting at the same moment
waits there, then finds them recorded in ``schema_migrations`` and applies nothing. A failing migration rolls
back whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flowzero.api import Migration, StorageError, apply_migrations, bundled_migrations
from flowzero_postgres.session import PostgresSession

if TYPE_CHECKING:
    import psycopg

# The advisory lock every flowzero process takes to migrate a database: b"flowzero" as a signed 64-bit number.
ADVISORY_LOCK_KEY = int.from_bytes(b"flowzero", "big", signed=True)


def postgres_migrations() -> list[Migration]:
    """The migrations shipped with this plugin, oldest first."""
    return bundled_migrations("flowzero_postgres")


class _PostgresMigrations(PostgresSession):
    """PostgreSQL's side: the advisory lock, and a failure reported by its first line only."""

    def has_table(self, name: str) -> bool:
        return bool(self.rows("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0])

    @contextmanager
    def locked_transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            self.run("SELECT pg_advisory_xact_lock(?)", (ADVISORY_LOCK_KEY,))
            yield

    def run_script(self, step: Migration, where: str) -> None:
        import psycopg

        try:
            self.conn.execute(step.sql.encode())  # bytes, no parameters: run as written, several statements
        except psycopg.Error as exc:
            raise StorageError(f"migration {step.label} failed on database {where}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None


def migrate(conn: psycopg.Connection[Any], where: str, migrations: Sequence[Migration] | None = None) -> int:
    """Bring the database up to date and return its schema version; ``conn`` must be in autocommit mode.

    An up-to-date database (the common case) is only read: no lock, no write.
    """
    return apply_migrations(_PostgresMigrations(conn), postgres_migrations() if migrations is None else migrations,
                            where)
