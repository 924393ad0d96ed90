"""Running one of flowzero's local servers in the foreground of a command (`sandbox serve`, `generate-aoi`)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any, Callable

from flowzero.errors import UsageError

if TYPE_CHECKING:
    from flowzero.localserver import LocalServer


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve_in_foreground(server: LocalServer, port: int, announce: Callable[[], None]) -> None:
    """Bind (a taken port is a usage error), ``announce`` where it listens, then serve until Ctrl-C or SIGTERM.

    SIGTERM stops it the way Ctrl-C does, so a service manager's stop closes it cleanly; the server is closed
    and the previous SIGTERM handler restored either way.
    """
    try:
        server.bind()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                         hint="choose another --port, or 0 for any free port") from None
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        announce()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        signal.signal(signal.SIGTERM, previous)
