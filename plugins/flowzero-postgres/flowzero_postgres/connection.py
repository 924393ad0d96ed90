"""The database URL and errors as a user may see them: the password masked everywhere, one line each.

psycopg is imported only inside functions, so loading the plugin at CLI start-up costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from flowzero.api import StorageError, add_secret, mask_url_password

if TYPE_CHECKING:
    import psycopg

URL_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_SECONDS = 10
_URL_HINT = "set storage.url (or $FLOWZERO_DATABASE_URL) to postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"


class DatabaseUrl:
    """A ``postgresql://`` URL: ``value`` for libpq, ``shown`` with the password masked for everything else.

    The password (from the URL or ``$PGPASSWORD``) is registered with :mod:`flowzero.redact`, so it is removed
    from any text flowzero redacts, and :meth:`scrub` removes it from driver messages.
    """

    def __init__(self, value: str) -> None:
        value = (value or "").strip()
        if not value:
            raise StorageError("storage.backend is 'postgres' but no database URL is set", hint=_URL_HINT)
        try:
            parts = urlsplit(value)
            password = parts.password
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise StorageError("storage.url is not a valid URL", hint=_URL_HINT) from None
        if parts.scheme.lower() not in URL_SCHEMES:
            raise StorageError(f"storage.url must be a postgresql:// URL, not '{parts.scheme or value[:12]}...'"
                               if parts.scheme else "storage.url must be a postgresql:// URL", hint=_URL_HINT)
        self.value = value
        self.shown = mask_url_password(value)
        self._secrets = {s for s in (password, unquote(password or ""), quote(unquote(password or ""), safe=""),
                                     os.environ.get("PGPASSWORD")) if s and len(s) >= 4}
        for secret in self._secrets:
            add_secret(secret)

    def scrub(self, text: str) -> str:
        """``text`` without the password in any form, and with the full URL shown masked."""
        text = text.replace(self.value, self.shown)
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "****")
        return text

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.shown!r})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


@contextmanager
def storage_errors(url: DatabaseUrl) -> Iterator[None]:
    """psycopg and pool errors as one-line StorageErrors naming the (masked) database."""
    import psycopg
    import psycopg_pool

    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        raise StorageError(f"cannot use PostgreSQL database {url.shown}: {url.scrub(_first_line(exc))}",
                           hint="is the server up and reachable, and the URL right? "
                                "(storage.url / $FLOWZERO_DATABASE_URL)") from None
    except psycopg.Error as exc:
        raise StorageError(f"database {url.shown}: {type(exc).__name__}: {url.scrub(_first_line(exc))}") from None


def connect(url: DatabaseUrl) -> psycopg.Connection[Any]:
    """One autocommit connection (for migrations, before the pool exists)."""
    import psycopg

    with storage_errors(url):
        return psycopg.connect(url.value, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
