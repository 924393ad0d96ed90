"""Numbered SQL migrations shipped in ``flowzero/storage/migrations``, each applied once per database.

``NNNN_name.sql`` files are read with :mod:`importlib.resources` (they ship in the wheel), applied in order
inside one ``BEGIN IMMEDIATE`` transaction and recorded in ``schema_migrations``; so several processes opening
a fresh database at once apply each migration exactly once, and a failing migration leaves the database as it
was.
A database whose newest migration is newer than this code knows is refused rather than misread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowzero.errors import StorageError
from flowzero.storage.records import utc_now

if TYPE_CHECKING:
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
    from importlib.resources import files

    folder = files(package).joinpath("migrations")
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


def _recorded_versions(conn: apsw.Connection) -> set[int]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchall()
    if not exists:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def refuse_newer(recorded: set[int], known: int, where: str) -> None:
    newest = max(recorded, default=0)
    if newest > known:
        raise StorageError(
            f"database {where} was created by a newer flowzero (schema {newest} > {known}); upgrade flowzero",
            hint="pip install --upgrade flowzero, or point --database-path at another file",
        )


def migrate(conn: apsw.Connection, where: str, migrations: Sequence[Migration] | None = None) -> int:
    """Bring the database up to date and return its schema version.

    A cheap read first: an up-to-date database (the common case) takes no write lock at all.
    """
    steps = sorted(bundled_migrations() if migrations is None else migrations)
    known = steps[-1].version if steps else 0
    recorded = _recorded_versions(conn)
    refuse_newer(recorded, known, where)
    if all(step.version in recorded for step in steps):
        return max(recorded, default=0)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_TABLE)
        recorded = _recorded_versions(conn)  # another process may have migrated while we waited for the lock
        refuse_newer(recorded, known, where)
        for step in steps:
            if step.version in recorded:
                continue
            try:
                conn.execute(step.sql)
            except Exception as exc:
                raise StorageError(f"migration {step.label} failed on database {where}: {exc}") from exc
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                         (step.version, step.name, utc_now()))
            recorded.add(step.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return max(recorded, default=0)
