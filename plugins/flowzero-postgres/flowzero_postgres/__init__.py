"""flowzero-postgres: the order store in PostgreSQL (``storage.backend: postgres`` + ``storage.url``).

Registered through the ``flowzero`` entry-point group. Importing this module is cheap: psycopg and the pool are
imported only when a store is opened.
"""

from __future__ import annotations

from typing import Any

from flowzero.api import hookimpl
from flowzero_postgres.store import PostgresOrderStore

__version__ = "0.1.0"


@hookimpl
def register_storage_backends(register: Any) -> None:
    register(PostgresOrderStore)


__all__ = ["PostgresOrderStore", "register_storage_backends"]
