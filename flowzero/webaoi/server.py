"""The local web server of `generate-aoi`: the map page, its static files and a small JSON API.

Only 127.0.0.1 is served. Requests must name this server in their Host header (no DNS rebinding), a request
that names another site in its ``Origin`` header is refused, and a save must be sent as ``application/json`` (a
page of another site cannot post one without a CORS preflight, which is never granted), so nothing but the page
itself can write into the folder. Every request gets an answer (a body that is no AOI: 400), and a connection
that sends nothing for :data:`IDLE_TIMEOUT_SECONDS` is dropped, so a slow or silent client holds no thread.

    GET  /               the page
    GET  /static/...     its script, styles and the vendored Leaflet
    GET  /api/config     tile URL and folder, for the page
    GET  /api/aois       the AOIs in the folder
    POST /api/aois       {"name", "geometry", "overwrite"} -> 201 saved, 400 invalid, 409 exists
"""

from __future__ import annotations

import json
import logging
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flowzero.errors import AOIError, FlowzeroError
from flowzero.localserver import HOST, LocalServer
from flowzero.webaoi.folder import AoiExistsError, AoiFolder

log = logging.getLogger("flowzero.webaoi")

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
TILES_ATTRIBUTION = "&copy; OpenStreetMap contributors"
MAX_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT_SECONDS = 30.0  # a connection silent this long (mid-request, or kept alive) is closed
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
_CSP = ("default-src 'self'; img-src * data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'none'")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, port: int, folder: AoiFolder, tiles: str, idle_timeout: float) -> None:
        super().__init__((HOST, port), _Handler)
        self.folder = folder
        self.tiles = tiles
        self.idle_timeout = idle_timeout
        self.save_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "flowzero-generate-aoi"

    @property
    def timeout(self) -> float:  # type: ignore[override]
        """Read by the socket server when a connection opens: each blocking read waits at most this long."""
        return self.server.idle_timeout

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- routing ---------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/"):])
        elif path == "/api/config":
            self._json(200, {"tiles": self.server.tiles, "attribution": TILES_ATTRIBUTION if self.server.tiles
                             else "", "folder": str(self.server.folder.path.resolve())})
        elif path == "/api/aois":
            self._json(200, {"folder": str(self.server.folder.path.resolve()),
                             "aois": [a.to_dict() for a in self.server.folder.list()]})
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._error(404, f"no such page: {path}")

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path != "/api/aois":
            self._error(404, f"no such endpoint: POST {path}")
            return
        if not self._origin_ok():
            return
        body = self._json_body()
        if body is None:
            return
        try:
            with self.server.save_lock:
                saved = self.server.folder.save(body.get("name"), body.get("geometry"),
                                                overwrite=body.get("overwrite") is True)
        except AoiExistsError as exc:
            self._json(409, {"error": exc.message, "hint": exc.hint, "exists": True})
            return
        except AOIError as exc:
            self._json(400, {"error": exc.message, "hint": exc.hint})
            return
        except FlowzeroError as exc:
            self._json(500, {"error": exc.message, "hint": exc.hint})
            return
        except Exception as exc:  # still an answer, never a connection dropped without one
            log.exception("saving an AOI failed")
            self._json(500, {"error": f"the AOI could not be saved ({type(exc).__name__})"})
            return
        log.info("saved %s (%.4f km²)", saved.file, saved.area_sqkm or 0.0)
        self._json(201, {"saved": saved.to_dict()})

    # -- checks ----------------------------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        port = self.server.server_address[1]
        allowed = {f"{HOST}:{port}", f"localhost:{port}"}
        if (self.headers.get("Host") or "").lower() not in allowed:
            self._error(403, "this server only answers pages it served itself (unexpected Host header)")
            return False
        return True

    def _origin_ok(self) -> bool:
        """A browser names the page a request comes from: only this server's own page may save."""
        origin = self.headers.get("Origin")
        port = self.server.server_address[1]
        if origin is not None and origin.lower() not in (f"http://{HOST}:{port}", f"http://localhost:{port}"):
            self._error(403, "saves are accepted only from this server's own page (foreign Origin)")
            return False
        return True

    def _json_body(self) -> dict[str, Any] | None:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            self._error(415, "send the AOI as application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(413, f"the request body must be between 0 and {MAX_BODY} bytes")
            return None
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            self._error(400, "the request body is not valid JSON (or is nested too deeply)")
            return None
        if not isinstance(body, dict):
            self._error(400, 'expected a JSON object {"name", "geometry", "overwrite"}')
            return None
        return body

    # -- answers ---------------------------------------------------------------------------------------------

    def _static(self, relative: str) -> None:
        root = STATIC_DIR.resolve()
        target = (root / relative).resolve()
        if root not in target.parents or not target.is_file():
            self._error(404, f"no such file: {relative}")
            return
        kind = _TYPES.get(target.suffix.lower()) or mimetypes.guess_type(target.name)[0]
        if kind is None:
            self._error(404, f"no such file: {relative}")
            return
        self._send(200, target.read_bytes(), kind)

    def _error(self, status: int, message: str) -> None:
        if self.command == "POST":  # the body may be unread: do not parse it as the next request
            self.close_connection = True
        self._json(status, {"error": message})

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if kind.startswith("text/html"):
            self.send_header("Content-Security-Policy", _CSP)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class AoiEditor(LocalServer):
    """The `generate-aoi` server for one folder on 127.0.0.1 (``port=0``: any free port).

    ``with AoiEditor(folder) as editor:`` serves in a daemon thread (tests); ``serve_forever()`` in the
    foreground until KeyboardInterrupt (the CLI).
    """

    label = "the AOI editor"
    thread_name = "flowzero-generate-aoi"

    def __init__(self, folder: Path | str, port: int = 0, tiles: str = DEFAULT_TILES,
                 idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
        super().__init__(port)
        self.folder = AoiFolder(folder)
        self.tiles = tiles
        self.idle_timeout = idle_timeout

    def _make_server(self) -> _Server:
        return _Server(self._port, self.folder, self.tiles, self.idle_timeout)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"
