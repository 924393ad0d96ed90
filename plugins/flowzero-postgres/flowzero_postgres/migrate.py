"""Numbered SQL migrations for the PostgreSQL store, applied once each even when many processes start at once.

The files (``flowzero_postgres/migrations/NNNN_name.sql``) follow the rules of flowzero's SQLite migrations
and are read by the same code. Missing ones are applied in one transaction that first takes a transaction-level
advisory lock (``pg_advisory_xact_lock``): every other process starting at the same moment waits there, then
finds them recorded in ``schema_migrations`` and applies nothing. A failing migration rolls back whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowzero.errors import StorageError
from flowzero.storage.migrate import Migration, bundled_migrations, refuse_newer
from flowzero.storage.records import utc_now

if TYPE_CHECKING:
    import psycopg

# The advisory lock every flowzero process takes to migrate a database: b"flowzero" as a signed 64-bit number.
ADVISORY_LOCK_KEY = int.from_bytes(b"flowzero", "big", signed=True)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def postgres_migrations() -> list[Migration]:
    """The migrations shipped with this plugin, oldest first."""
    return bundled_migrations("flowzero_postgres")


def recorded_versions(conn: psycopg.Connection[Any]) -> set[int]:
    """Versions recorded in ``schema_migrations`` (none if the table does not exist yet)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(conn: psycopg.Connection[Any], where: str, migrations: Sequence[Migration] | None = None) -> int:
    """Bring the database up to date and return its schema version; ``conn`` must be in autocommit mode.

    An up-to-date database (the common case) is only read: no lock, no write.
    """
    import psycopg

    steps = sorted(postgres_migrations() if migrations is None else migrations)
    known = steps[-1].version if steps else 0
    recorded = recorded_versions(conn)
    refuse_newer(recorded, known, where)
    if all(step.version in recorded for step in steps):
        return max(recorded, default=0)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(_CREATE_TABLE)
        recorded = recorded_versions(conn)  # another process may have migrated while we waited for the lock
        refuse_newer(recorded, known, where)
        for step in steps:
            if step.version in recorded:
                continue
            try:
                conn.execute(step.sql.encode())  # bytes: run as written, several statements, no placeholders
            except psycopg.Error as exc:
                raise StorageError(f"migration {step.label} failed on database {where}: "
                                   f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                         (step.version, step.name, utc_now()))
            recorded.add(step.version)
    return max(recorded, default=0)
