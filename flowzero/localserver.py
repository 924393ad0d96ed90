"""The life of flowzero's local HTTP servers (the Planet sandbox, the AOI editor): bind, serve, close.

Both are used the same two ways: ``with Server(...) as s:`` serves in a daemon thread (tests, the demo), and
``serve_forever()`` serves in the foreground until Ctrl-C (the CLI). One implementation keeps the subtle part
right for both: ``close()`` from another thread also stops a foreground ``serve_forever``.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import TypeVar

HOST = "127.0.0.1"

_S = TypeVar("_S", bound="LocalServer")


class LocalServer:
    """A server on 127.0.0.1:``port`` (0: any free port); subclasses say how its socket and state are made."""

    label = "the server"  # in messages
    thread_name = "flowzero-server"

    def __init__(self, port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is not between 0 and 65535")
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._foreground: threading.Thread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        """Open the listening socket on (HOST, self._port), with whatever its handlers need."""
        raise NotImplementedError

    def _release(self, server: ThreadingHTTPServer) -> None:
        """Close a server that no longer serves (subclasses also let go of what they hold)."""
        server.server_close()

    def bind(self: _S) -> _S:
        """Open the socket (OSError if the port is taken); no requests are served yet."""
        if self._server is None:
            self._server = self._make_server()
        return self

    def start(self: _S) -> _S:
        """Serve in a daemon thread."""
        self.bind()
        if self._thread is None:
            assert self._server is not None
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until KeyboardInterrupt (or :meth:`close` from another thread)."""
        self.bind()
        assert self._server is not None
        self._foreground = threading.current_thread()
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._foreground = None
            self.close()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        elif self._foreground not in (None, threading.current_thread()):
            server.shutdown()  # serve_forever() runs in another thread: stop it first
        self._release(server)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.label} is not running")
        return int(self._server.server_address[1])
