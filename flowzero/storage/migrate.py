"""Numbered SQL migrations shipped in ``flowzero/storage/migrations``, each applied once per database.

``NNNN_name.sql`` files are read with :mod:`importlib.resources` (they ship in the wheel), applied in order
inside one ``BEGIN IMMEDIATE`` transaction and recorded in ``schema_migrations``; so several processes opening
a fresh database at once apply each migration exactly once, and a failing migration leaves the database as it
was. The apply loop (:func:`apply_migrations`) serves every SQL backend; each brings its own lock.
A database whose newest migration is newer than this code knows is refused rather than misread.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from flowzero.errors import StorageError
from flowzero.storage.records import utc_now
from flowzero.storage.sqlite_session import SqliteSession
from flowzero.storage.sqlstore import Session

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import apsw

_FILE_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, order=True)
class Migration:
    """One schema step: ``version`` from the file name's number, ``name`` from the rest."""

    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def bundled_migrations(package: str = "flowzero.storage") -> list[Migration]:
    """The migrations shipped in ``<package>/migrations``, oldest first (numbered 1, 2, 3... without gaps).

    Other SQL backends (the postgres plugin) ship their own folder and read it with the same rules.
    """
    folder = importlib.resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StorageError(f"the migrations bundled in {package} are not numbered 1..N without gaps: {versions}",
                           hint="reinstall flowzero")
    return found


class MigrationTarget(Session, Protocol):
    """A connection as :func:`apply_migrations` uses it: a session plus the backend's own locking and errors."""

    def has_table(self, name: str) -> bool:
        """Whether the table exists."""

    def locked_transaction(self) -> AbstractContextManager[object]:
        """One transaction holding the lock that makes every other migrating process wait."""

    def run_script(self, step: Migration, where: str) -> None:
        """Run the step's SQL as written (several statements); a failure as a one-line StorageError."""


def refuse_newer(recorded: set[int], known: int, where: str) -> None:
    newest = max(recorded, default=0)
    if newest > known:
        raise StorageError(
            f"database {where} was created by a newer flowzero (schema {newest} > {known}); upgrade flowzero",
            hint="pip install --upgrade flowzero, or point --database-path at another file",
        )


def recorded_versions(db: MigrationTarget) -> set[int]:
    """Versions recorded in ``schema_migrations`` (none if the table does not exist yet)."""
    if not db.has_table("schema_migrations"):
        return set()
    return {row[0] for row in db.rows("SELECT version FROM schema_migrations")}


def apply_migrations(db: MigrationTarget, steps: Sequence[Migration], where: str) -> int:
    """Apply the steps not yet recorded, in order, in one locked transaction; return the schema version.

    A cheap read first: an up-to-date database (the common case) takes no lock and writes nothing.
    """
    steps = sorted(steps)
    known = steps[-1].version if steps else 0
    recorded = recorded_versions(db)
    refuse_newer(recorded, known, where)
    if all(step.version in recorded for step in steps):
        return max(recorded, default=0)
    with db.locked_transaction():
        db.run(_CREATE_TABLE)
        recorded = recorded_versions(db)  # another process may have migrated while we waited for the lock
        refuse_newer(recorded, known, where)
        for step in steps:
            if step.version in recorded:
                continue
            db.run_script(step, where)
            db.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                   (step.version, step.name, utc_now()))
            recorded.add(step.version)
    return max(recorded, default=0)


class _SqliteMigrations(SqliteSession):
    """SQLite's side: ``BEGIN IMMEDIATE`` is the lock, and a failure keeps its cause."""

    def has_table(self, name: str) -> bool:
        return bool(self.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def locked_transaction(self) -> AbstractContextManager[object]:
        return self.immediate_transaction()

    def run_script(self, step: Migration, where: str) -> None:
        try:
            self.conn.execute(step.sql)
        except Exception as exc:
            raise StorageError(f"migration {step.label} failed on database {where}: {exc}") from exc


def migrate(conn: apsw.Connection, where: str, migrations: Sequence[Migration] | None = None) -> int:
    """Bring the SQLite database up to date and return its schema version."""
    return apply_migrations(_SqliteMigrations(conn), bundled_migrations() if migrations is None else migrations,
                            where)
