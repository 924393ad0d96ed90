"""The sandbox's HTTP server: Planet's paths on 127.0.0.1, keep-alive HTTP/1.1, downloads via sendfile.

The standard library's ThreadingHTTPServer is enough here and keeps the sandbox dependency-free; download
bodies go from disk to socket with ``socket.sendfile`` so the sandbox is not the bottleneck of download
benchmarks.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import mimetypes
import re
import socket
import ssl
import struct
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from flowzero.localserver import HOST, LocalServer
from flowzero.redact import redact
from flowzero.sandbox.api import AUTH_MESSAGE, ApiError, bad_request, page_size
from flowzero.sandbox.cloud import CloudDelivery
from flowzero.sandbox.destinations import Destinations
from flowzero.sandbox.faults import Faults, RequestLog
from flowzero.sandbox.limits import DOWNLOADS_KEY, Meter, endpoint_class, refusal_message
from flowzero.sandbox.payloads import PayloadStore
from flowzero.sandbox.ranges import RangeNotSatisfiable, parse_range

log = logging.getLogger("flowzero.sandbox")

INVALID_KEY = "invalid-key"
STORAGE_PREFIX = "/storage/"  # where redirected download links land, on the storage origin
MAX_BODY = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class _App:
    """The state behind one server: catalog, searches, orders, basemaps, faults and the request log."""

    def __init__(self, data_dir: Path, url: str, file_size: int, polls_per_state: int,
                 link_ttl: float, amazon_s3_endpoint: str | None = None) -> None:
        from flowzero.sandbox.basemaps import Basemaps
        from flowzero.sandbox.catalog import Catalog
        from flowzero.sandbox.orders import OrderBook
        from flowzero.sandbox.searches import Searches

        self.url = url
        self.storage_url = url.replace(f"//{HOST}:", "//localhost:")  # another origin, same server
        self.faults = Faults(polls_per_state)
        self.requests = RequestLog()
        self.meter = Meter()
        self.catalog = Catalog(f"{url}/data/v1")
        self.searches = Searches(self.catalog, f"{url}/data/v1")
        self.basemaps = Basemaps(f"{url}/basemaps/v1/mosaics")
        self.payloads = PayloadStore(data_dir / "payloads")
        cloud = CloudDelivery(amazon_s3_endpoint)
        self.destinations = Destinations(data_dir, f"{url}/destinations/v1", cloud.verify_parameters)
        cloud.destinations = self.destinations
        self.orders = OrderBook(data_dir, f"{url}/compute/ops/orders/v2", f"{url}/download", self.payloads,
                                self.catalog, self.basemaps, self.faults, file_size, link_ttl, cloud)

    def set_faults(self, switches: dict[str, Any]) -> dict[str, Any]:
        state = self.faults.apply(switches)
        if self.faults.pop_expire_links():
            self.orders.expire_links()
            state["expire_links"] = False
        return state


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__((HOST, port), _Handler)
        self.app: _App | None = None
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:  # the handshake happens in the handler's thread (see _Handler.setup)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on an idle keep-alive connection so its thread ends."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


_API_ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"^/data/v1/quick-search/?$"), {"POST": "quick_search"}),
    (re.compile(r"^/data/v1/searches/([^/]+)/results/?$"), {"GET": "search_page"}),
    (re.compile(r"^/data/v1/item-types/([^/]+)/items/([^/]+)/?$"), {"GET": "item"}),
    (re.compile(r"^/compute/ops/orders/v2/?$"), {"POST": "create_order", "GET": "list_orders"}),
    (re.compile(r"^/compute/ops/orders/v2/([^/]+)/?$"), {"GET": "get_order", "PUT": "cancel_order"}),
    (re.compile(r"^/basemaps/v1/mosaics/?$"), {"GET": "list_mosaics"}),
    (re.compile(r"^/basemaps/v1/mosaics/([^/]+)/?$"), {"GET": "get_mosaic"}),
    (re.compile(r"^/basemaps/v1/mosaics/([^/]+)/quads/?$"), {"GET": "list_quads"}),
    (re.compile(r"^/basemaps/v1/mosaics/([^/]+)/quads/([^/]+)/?$"), {"GET": "get_quad"}),
    (re.compile(r"^/basemaps/v1/mosaics/([^/]+)/quads/([^/]+)/full/?$"),
     {"GET": "quad_file", "HEAD": "quad_file"}),
    (re.compile(r"^/destinations/v1/?$"), {"POST": "create_destination", "GET": "list_destinations"}),
    (re.compile(r"^/destinations/v1/([^/]+)/?$"), {"GET": "get_destination"}),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flowzero-sandbox"
    sys_version = ""
    timeout = 300  # an idle keep-alive connection is dropped after this many seconds
    server: _Server
    _status = 0
    _sent = False
    _log_as: tuple[str, str] | None = None

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), redact(format % args))  # request lines carry download tokens

    # -- plumbing --------------------------------------------------------------------------------------------

    @property
    def app(self) -> _App:
        assert self.server.app is not None
        return self.server.app

    def _handle(self, method: str) -> None:
        self._status = 0
        self._sent = False
        parts = urlsplit(self.path)
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        control = path.startswith("/_sandbox/")
        # Logged as the status line is written, so a client that has its answer also finds it in the log.
        self._log_as = None if control else (method, path)
        try:
            body = self._read_body()
            if control:
                self._control(method, path, body)
                return
            if path.startswith(STORAGE_PREFIX):
                self.app.meter.storage(authorized="Authorization" in self.headers)
                self._download(method, path[len(STORAGE_PREFIX):], params)
                return
            endpoint = endpoint_class(method, path)
            if endpoint is not None and not self._admitted(endpoint, params):
                return
            slow = self.app.faults.get("slow_ms")
            if slow:
                time.sleep(slow / 1000.0)
            if path.startswith("/download/"):
                if self.app.faults.get("redirect_downloads"):
                    self._redirect_to_storage(path, parts.query)
                    return
                self._download(method, path[len("/download/"):], params)
                return
            self._api(method, path, params, body)
        except ApiError as exc:
            self._fail(exc, head=method == "HEAD")
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("sandbox error on %s %s", method, path)
            self._fail(ApiError(500, "internal sandbox error"))
        finally:
            if self._log_as is not None:  # no answer was sent (the connection broke first)
                self.app.requests.add(method, path, self._status)

    def _fail(self, error: ApiError, head: bool = False) -> None:
        if self._sent:  # too late for an error answer: the client sees a broken response instead
            self.close_connection = True
            return
        self._json(error.status, error.body(), error.headers, head=head)

    def _read_body(self) -> bytes:
        try:
            return self._read_body_bytes()
        except ValueError:
            self.close_connection = True
            raise bad_request("malformed Content-Length or chunked body") from None

    def _read_body_bytes(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        self._status = status
        self._sent = True
        if self._log_as is not None:
            self.app.requests.add(*self._log_as, status)
            self._log_as = None
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("Connection: close")
        self.log_request(status)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None,
              head: bool = False) -> None:
        body = json.dumps(data).encode()
        extra = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        extra += list((headers or {}).items())
        self.wfile.write(self._head(status, extra) + (b"" if head else body))

    def _json_body(self, body: bytes) -> Any:
        if not body:
            raise bad_request("a JSON request body is required")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from None

    def _admitted(self, endpoint: str, params: dict[str, str]) -> bool:
        """Meter the request; answer 429 as Planet does when ``planet_limits`` refuse it, else take
        ``latency_ms`` of server time. False if the request was answered here."""
        faults = self.app.faults
        key = DOWNLOADS_KEY if endpoint == "downloads" else self._api_key(params)
        wait = self.app.meter.admit(endpoint, key, faults.get("planet_limits"))
        if wait is not None:
            headers = {"Retry-After": str(max(1, math.ceil(wait)))} if faults.get("planet_limits_retry_after") \
                else {}
            self._json(429, {"message": refusal_message(wait)}, headers)
            return False
        latency = (faults.get("latency_ms") or {}).get(endpoint)
        if latency:
            time.sleep(latency / 1000.0)
        return True

    def _redirect_to_storage(self, path: str, query: str) -> None:
        """Planet's download links answer 302 to a storage host; here: the same server as ``localhost``."""
        location = f"{self.app.storage_url}{STORAGE_PREFIX}{path[len('/download/'):]}" + (f"?{query}" if query else "")
        self.wfile.write(self._head(302, [("Location", location), ("Content-Length", "0")]))

    def _api_key(self, params: dict[str, str]) -> str:
        """The key of a request (basic auth user, ``api-key`` header or ``api_key`` parameter), or ""."""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip()).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif scheme.lower() == "api-key":
            key = value.strip()
        elif params.get("api_key"):
            key = params["api_key"]
        return key

    def _authenticate(self, params: dict[str, str]) -> None:
        key = self._api_key(params)
        if not key or key == INVALID_KEY:
            raise ApiError(401, AUTH_MESSAGE)

    def _inject_api_faults(self) -> None:
        faults = self.app.faults
        if faults.take("rate_limit"):
            raise ApiError(429, "Rate limit exceeded (sandbox fault)",
                           headers={"Retry-After": str(faults.get("retry_after"))})
        status = faults.take_status("server_errors")
        if status is not None:
            headers = {"Retry-After": str(faults.get("retry_after"))} if status in (429, 503) else {}
            raise ApiError(status, f"simulated server error {status} (sandbox fault)", headers=headers)

    # -- routes ----------------------------------------------------------------------------------------------

    def _api(self, method: str, path: str, params: dict[str, str], body: bytes) -> None:
        for pattern, methods in _API_ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if method not in methods:
                raise ApiError(405, f"{method} is not allowed on {path}",
                               headers={"Allow": ", ".join(sorted(methods))})
            self._inject_api_faults()
            self._authenticate(params)
            handler: Callable[..., None] = getattr(self, f"_r_{methods[method]}")
            handler(method, params, body, *[unquote(g) for g in match.groups()])
            return
        raise ApiError(404, f"no such endpoint: {path}")

    def _r_quick_search(self, method: str, params: dict[str, str], body: bytes) -> None:
        size = page_size(params.get("_page_size"))
        self._json(200, self.app.searches.quick_search(self._json_body(body), size, params.get("_sort")))

    def _r_search_page(self, method: str, params: dict[str, str], body: bytes, search_id: str) -> None:
        size = page_size(params.get("_page_size"))
        self._json(200, self.app.searches.page(search_id, params.get("_page"), size))

    def _r_item(self, method: str, params: dict[str, str], body: bytes, item_type: str, item_id: str) -> None:
        feature = self.app.catalog.known(item_id)
        if feature is None or item_type != feature["properties"]["item_type"]:
            raise ApiError(404, f"Item {item_type}/{item_id} not found (the sandbox knows items it showed)")
        self._json(200, feature)

    def _r_create_order(self, method: str, params: dict[str, str], body: bytes) -> None:
        delay = self.app.faults.get("create_order_delay_ms")
        if delay:  # the order does not exist (nor is listed by name) until this ends
            time.sleep(delay / 1000.0)
        self._json(202, self.app.orders.create(self._json_body(body)))

    def _r_list_orders(self, method: str, params: dict[str, str], body: bytes) -> None:
        self._json(200, self.app.orders.list_page(params))

    def _r_get_order(self, method: str, params: dict[str, str], body: bytes, order_id: str) -> None:
        self._json(200, self.app.orders.get(order_id))

    def _r_cancel_order(self, method: str, params: dict[str, str], body: bytes, order_id: str) -> None:
        self._json(200, self.app.orders.cancel(order_id))

    def _r_list_mosaics(self, method: str, params: dict[str, str], body: bytes) -> None:
        self._json(200, self.app.basemaps.list(params))

    def _r_get_mosaic(self, method: str, params: dict[str, str], body: bytes, mosaic_id: str) -> None:
        basemaps = self.app.basemaps
        self._json(200, basemaps.describe(basemaps.mosaic(mosaic_id)))

    def _r_list_quads(self, method: str, params: dict[str, str], body: bytes, mosaic_id: str) -> None:
        self._json(200, self.app.basemaps.quads(mosaic_id, params))

    def _r_get_quad(self, method: str, params: dict[str, str], body: bytes, mosaic_id: str, qid: str) -> None:
        self._json(200, self.app.basemaps.quad_by_id(mosaic_id, qid)[1])

    def _r_quad_file(self, method: str, params: dict[str, str], body: bytes, mosaic_id: str,
                     qid: str) -> None:
        mosaic, _ = self.app.basemaps.quad_by_id(mosaic_id, qid)
        payload = self.app.payloads.random_tiff(f"{mosaic.name}_{qid}", self.app.orders.file_size)
        self._send_file(method, payload.path, f"{qid}.tif")

    def _r_create_destination(self, method: str, params: dict[str, str], body: bytes) -> None:
        self._json(201, self.app.destinations.create(self._json_body(body)))

    def _r_list_destinations(self, method: str, params: dict[str, str], body: bytes) -> None:
        self._json(200, self.app.destinations.list())

    def _r_get_destination(self, method: str, params: dict[str, str], body: bytes, ident: str) -> None:
        self._json(200, self.app.destinations.get(ident))

    # -- downloads -------------------------------------------------------------------------------------------

    def _download(self, method: str, path: str, params: dict[str, str]) -> None:
        """``path`` is ``<order id>/<file path>`` (behind /download/ or the storage host's prefix)."""
        if method not in ("GET", "HEAD"):
            raise ApiError(405, f"{method} is not allowed on downloads", headers={"Allow": "GET, HEAD"})
        order_id, _, rest = path.partition("/")
        file = self.app.orders.resolve(unquote(order_id), unquote(rest), params.get("token"))
        self._send_file(method, file, unquote(rest).rsplit("/", 1)[-1])

    def _send_file(self, method: str, file: Path, filename: str) -> None:
        faults = self.app.faults
        if method == "GET":
            status = faults.take_status("download_errors")
            if status is not None:
                hint = {"Retry-After": str(faults.get("retry_after"))} if status in (429, 503) else {}
                raise ApiError(status, f"simulated download error {status} (sandbox fault)", headers=hint)
        size = file.stat().st_size
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        headers = [("Content-Type", media_type), ("Accept-Ranges", "bytes"),
                   ("Content-Disposition", f'attachment; filename="{filename}"')]
        try:
            wanted = None if faults.get("ignore_range") else parse_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
            body = json.dumps(ApiError(416, "requested range not satisfiable").body()).encode()
            self.wfile.write(self._head(416, [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(body))),
                                              ("Content-Range", f"bytes */{size}")])
                              + (b"" if method == "HEAD" else body))
            return
        first, last = wanted if wanted else (0, size - 1)
        length = max(0, last - first + 1)
        if wanted:
            headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
        headers.append(("Content-Length", str(length)))
        if method == "HEAD":
            self.wfile.write(self._head(206 if wanted else 200, headers))
            return
        mode = next((m for m in ("drop_mid_body", "short_body", "flip_byte") if faults.take(m)), None)
        if mode in ("drop_mid_body", "short_body"):
            self.close_connection = True
        self.wfile.write(self._head(206 if wanted else 200, headers))
        with open(file, "rb") as source:
            if mode == "drop_mid_body":
                self._sendfile(source, first, length // 2)
                self._reset_connection()
            elif mode == "short_body":
                self._sendfile(source, first, (length * 3) // 4)
            elif mode == "flip_byte" and length > 0:
                middle = length // 2
                self._sendfile(source, first, middle)
                source.seek(first + middle)
                self.connection.sendall(bytes([source.read(1)[0] ^ 0xFF]))
                self._sendfile(source, first + middle + 1, length - middle - 1)
            else:
                self._sendfile(source, first, length)

    def _sendfile(self, source: Any, offset: int, count: int) -> None:
        if count > 0:
            self.connection.sendfile(source, offset, count)

    def _reset_connection(self) -> None:
        """Abort with a TCP reset (not a clean FIN), as a dropped connection looks to the client."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    # -- control ---------------------------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        app = self.app
        route = (method, path.rstrip("/"))
        try:
            if route == ("GET", "/_sandbox/health"):
                self._json(200, {"status": "ok", "url": app.url})
            elif route == ("GET", "/_sandbox/faults"):
                self._json(200, app.faults.snapshot())
            elif route == ("POST", "/_sandbox/faults"):
                switches = self._json_body(body) if body else {}
                if not isinstance(switches, dict):
                    raise bad_request("faults must be a JSON object of switch: value")
                if switches.pop("reset", False):
                    app.faults.reset()
                self._json(200, app.set_faults(switches))
            elif route == ("POST", "/_sandbox/faults/reset"):
                app.faults.reset()
                self._json(200, app.faults.snapshot())
            elif route == ("POST", "/_sandbox/next-order"):
                data = self._json_body(body)
                if not isinstance(data, dict):
                    raise bad_request('expected {"outcome": ..., "count": 1}')
                app.faults.queue_outcome(str(data.get("outcome")), data.get("count", 1))
                self._json(200, app.faults.snapshot())
            elif route == ("GET", "/_sandbox/stats"):
                self._json(200, app.meter.snapshot())
            elif route == ("DELETE", "/_sandbox/stats"):
                app.meter.reset()
                self._json(200, app.meter.snapshot())
            elif route == ("GET", "/_sandbox/requests"):
                self._json(200, {"requests": app.requests.entries()})
            elif route == ("DELETE", "/_sandbox/requests"):
                app.requests.clear()
                self._json(200, {"requests": []})
            else:
                raise ApiError(404, f"no such sandbox control endpoint: {method} {path}")
        except ValueError as exc:
            raise bad_request(str(exc)) from None


class Sandbox(LocalServer):
    """A Planet-compatible server on 127.0.0.1 for tests, benchmarks and offline use.

    ``with Sandbox(tmp_path) as sb:`` serves in a daemon thread until the block ends; ``serve_forever()``
    serves in the foreground (the CLI). Orders persist in ``data_dir``: a new Sandbox there knows them.
    """

    label = "the sandbox"
    thread_name = "flowzero-sandbox"

    def __init__(self, data_dir: Path | str, port: int = 0, file_size: int = 256 * 1024,
                 polls_per_state: int = 1, link_ttl: float = 3600.0,
                 amazon_s3_endpoint: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        if file_size < 8:
            raise ValueError("file_size must be at least 8 bytes (a TIFF header)")
        super().__init__(port)
        self.data_dir = Path(data_dir)
        self.file_size = file_size
        self._polls_per_state = polls_per_state
        self._link_ttl = link_ttl
        self._amazon_s3_endpoint = amazon_s3_endpoint  # stands in for Amazon S3 in amazon_s3 deliveries
        self._tls = tls  # serve HTTPS (e.g. flowzero.sandbox.tls.throwaway_ca); sendfile then falls back to send
        self._app: _App | None = None

    # -- lifecycle (the rest is LocalServer's) ---------------------------------------------------------------

    def _make_server(self) -> _Server:
        """The socket and the state (orders, files) from ``data_dir``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = _Server(self._port, self._tls)
        try:
            url = f"{self._scheme}://{HOST}:{server.server_address[1]}"
            server.app = _App(self.data_dir, url, self.file_size, self._polls_per_state, self._link_ttl,
                              self._amazon_s3_endpoint)
        except BaseException:
            server.server_close()
            raise
        self._app = server.app
        return server

    def _release(self, server: ThreadingHTTPServer) -> None:
        assert isinstance(server, _Server) and self._app is not None
        server.close_connections()
        server.server_close()
        self._app.orders.close()

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def _scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self._scheme}://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/data/v1"

    @property
    def orders_url(self) -> str:
        return f"{self.url}/compute/ops/orders/v2"

    @property
    def basemaps_url(self) -> str:
        return f"{self.url}/basemaps/v1/mosaics"

    @property
    def destinations_url(self) -> str:
        return f"{self.url}/destinations/v1"

    # -- switches --------------------------------------------------------------------------------------------

    def _state(self) -> _App:
        if self._app is None:
            raise RuntimeError("the sandbox is not running")
        return self._app

    def set_faults(self, **switches: Any) -> dict[str, Any]:
        """Set fault switches (see flowzero.sandbox.faults) and return the new state; ValueError if bad."""
        return self._state().set_faults(switches)

    def reset_faults(self) -> dict[str, Any]:
        app = self._state()
        app.faults.reset()
        return app.faults.snapshot()

    @property
    def faults(self) -> dict[str, Any]:
        return self._state().faults.snapshot()

    def set_next_order_outcome(self, outcome: str, count: int = 1) -> None:
        """The next ``count`` orders end ``outcome`` ("success", "partial", "failed" or "cancelled")."""
        self._state().faults.queue_outcome(outcome, count)

    def stats(self) -> dict[str, Any]:
        """Requests, refusals and the peak per window of each endpoint class (see flowzero.sandbox.limits)."""
        return self._state().meter.snapshot()

    def reset_stats(self) -> None:
        self._state().meter.reset()

    @property
    def storage_url(self) -> str:
        """The origin redirected downloads land on: this server as ``localhost`` (another origin)."""
        return f"http://localhost:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        """The request log: method, path (no query), status, time; control requests are not logged."""
        return self._state().requests.entries()

    def clear_requests(self) -> None:
        self._state().requests.clear()
