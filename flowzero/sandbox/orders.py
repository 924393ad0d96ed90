"""The Orders API: orders move queued -> running -> final over GETs, persist one file each under ``orders/``, and
deliver real files with true digests through tokenised download links.

Payloads are generated in the background as soon as an order is accepted; an order only becomes final once its
files exist. Switches decide how it ends (success, partial, failed or cancelled), one order at a time.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from flowzero.sandbox.api import ApiError, bad_request, now_utc, rfc3339_ms
from flowzero.sandbox.basemaps import Basemaps
from flowzero.sandbox.catalog import Catalog
from flowzero.sandbox.cloud import CloudDelivery, CloudDeliveryError
from flowzero.sandbox.deliverables import metadata_json, metadata_xml, plan_order
from flowzero.sandbox.faults import Faults
from flowzero.sandbox.imagery import raster_key, render
from flowzero.sandbox.payloads import Payload, PayloadStore

FINAL_STATES = ("success", "partial", "failed", "cancelled")
LIST_PAGE_SIZE = 20
_READY_WAIT = 2.0  # seconds a GET waits for payloads before answering "still running"
REISSUE_WINDOW = 60.0  # seconds: a GET of a finished order renews the links that expire sooner than this
_MESSAGES = {"queued": "Preparing order", "running": "Processing and delivering order"}


@dataclass
class OrderRecord:
    """One order as the sandbox keeps it (``orders/<id>.json``); :meth:`OrderBook.describe` is what clients see."""

    id: str
    seq: int
    request: dict[str, Any]
    source_type: str
    created_on: str
    last_modified: str
    outcome: str
    files: list[dict[str, Any]]
    state: str = "queued"
    last_message: str = _MESSAGES["queued"]
    error_hints: list[str] = field(default_factory=list)
    polls: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


class OrderBook:
    """All orders of one sandbox; every method is thread-safe."""

    def __init__(self, data_dir: Path, orders_url: str, download_url: str, payloads: PayloadStore,
                 catalog: Catalog, basemaps: Basemaps, faults: Faults, file_size: int,
                 link_ttl: float = 3600.0, cloud: CloudDelivery | None = None) -> None:
        self.data_dir = data_dir
        self.orders_url = orders_url
        self.download_url = download_url
        self.payloads = payloads
        self.catalog = catalog
        self.basemaps = basemaps
        self.faults = faults
        self.file_size = file_size
        self.link_ttl = link_ttl
        self.cloud = cloud
        self._lock = threading.RLock()
        self._orders: dict[str, OrderRecord] = {}
        self._seq = 0
        self._ready: dict[str, Future[dict[str, Payload]]] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-payloads")
        self._folder = data_dir / "orders"
        self._load()

    # -- persistence -----------------------------------------------------------------------------------------

    # One file per order, rewritten when that order changes: a request costs the same with 10 orders or 10,000
    # (one orders.json rewritten on every poll grew to 15 MB over 72 orders and made each GET slower).
    def _load(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        legacy = self.data_dir / "orders.json"  # sandbox folders made before orders had a file each
        try:
            raws = json.loads(legacy.read_text()).get("orders", []) if legacy.exists() else []
            raws += [json.loads(path.read_text()) for path in sorted(self._folder.glob("*.json"))]
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the sandbox's orders in {self.data_dir}: {exc}") from None
        for raw in raws:
            record = OrderRecord(**raw)
            self._orders[record.id] = record
        if legacy.exists():
            for record in self._orders.values():
                self._save(record)
            legacy.unlink()
        self._seq = max([r.seq for r in self._orders.values()], default=0)

    def _save(self, record: OrderRecord) -> None:
        target = self._folder / f"{record.id}.json"
        tmp = target.with_name(f".{target.name}.tmp-{threading.get_ident()}")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, target)

    def close(self) -> None:
        self.payloads.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- the API ---------------------------------------------------------------------------------------------

    def create(self, body: Any) -> dict[str, Any]:
        source_type, files = plan_order(body, self.file_size, self.basemaps,
                                        lambda item: (self.catalog.known(item) or {}).get("geometry"))
        if self.cloud is not None:  # a bad delivery block or a bucket Planet cannot write to: 400
            spec = self.cloud.spec(body.get("delivery"))
            if spec is not None:
                self.cloud.verify(spec)
        stamp = rfc3339_ms(now_utc())
        with self._lock:
            self._seq += 1
            record = OrderRecord(id=str(uuid.uuid4()), seq=self._seq, request=body, source_type=source_type,
                                 created_on=stamp, last_modified=stamp, outcome=self.faults.next_outcome(),
                                 files=files)
            self._orders[record.id] = record
            self._save(record)
            self._start_generation(record)
            return self.describe(record)

    def get(self, order_id: str) -> dict[str, Any]:
        """The order after one more poll (which may move it on a state), with fresh links where expired."""
        with self._lock:
            record = self._record(order_id)
            if record.state in FINAL_STATES:
                if self._refresh_links(record):
                    self._save(record)
                return self.describe(record)
            due = self._advance(record)
            self._save(record)
            future = self._start_generation(record) if due else None
        if future is not None:
            # Wait for the files without holding the lock: other requests go on meanwhile.
            made: dict[str, Payload] | Exception | None
            try:
                made = future.result(timeout=_READY_WAIT)
            except FutureTimeout:
                made = None
            except Exception as exc:
                made = exc
            with self._lock:
                if record.state == "running" and made is not None:
                    self._complete(record, made)
                    self._save(record)
        with self._lock:
            return self.describe(record)

    def cancel(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._record(order_id)
            if record.state in FINAL_STATES:
                raise ApiError(409, f"Order {order_id} is {record.state}; only queued or running orders "
                                    "can be cancelled")
            self._finish(record, "cancelled", "Order cancelled by user", [])
            future = self._ready.pop(record.id, None)
            if future is not None:
                future.cancel()
            self._save(record)
            return self.describe(record)

    def list_page(self, params: dict[str, str]) -> dict[str, Any]:
        """Newest first, filtered by ``name``, ``name__contains``, ``state``; pages via ``_links.next``."""
        with self._lock:
            found = sorted(self._orders.values(), key=lambda r: r.seq, reverse=True)
            if params.get("name"):
                found = [r for r in found if r.request.get("name") == params["name"]]
            if params.get("name__contains"):
                found = [r for r in found if params["name__contains"] in str(r.request.get("name", ""))]
            if params.get("state"):
                found = [r for r in found if r.state == params["state"]]
            if params.get("page_marker"):
                try:
                    marker = int(params["page_marker"])
                except ValueError:
                    raise bad_request(f"invalid page_marker {params['page_marker']!r}",
                                      "page_marker") from None
                found = [r for r in found if r.seq < marker]
            page = found[:LIST_PAGE_SIZE]
            kept = {k: v for k, v in params.items() if k != "page_marker"}
            links: dict[str, str] = {"_self": f"{self.orders_url}?{urlencode(params)}".rstrip("?")}
            if len(found) > LIST_PAGE_SIZE:
                links["next"] = f"{self.orders_url}?{urlencode({**kept, 'page_marker': page[-1].seq})}"
            return {"_links": links, "orders": [self.describe(r) for r in page]}

    def describe(self, record: OrderRecord) -> dict[str, Any]:
        request = record.request
        links: dict[str, Any] = {"_self": f"{self.orders_url}/{record.id}"}
        if record.results:
            links["results"] = [
                {"delivery": "success",
                 "expires_at": rfc3339_ms(datetime.fromtimestamp(r["expires"], timezone.utc)),
                 "location": f"{self.download_url}/{record.id}/{quote(r['path'])}?token={r['token']}",
                 "name": f"{record.id}/{r['path']}"}
                for r in record.results
            ]
        order: dict[str, Any] = {
            "_links": links,
            "created_on": record.created_on,
            "error_hints": list(record.error_hints),
            "id": record.id,
            "last_message": record.last_message,
            "last_modified": record.last_modified,
            "name": request.get("name"),
            "order_type": request.get("order_type", "full"),
            "products": request.get("products", []),
            "source_type": record.source_type,
            "state": record.state,
        }
        for key in ("tools", "delivery", "notifications", "metadata", "subscription_id", "hosting"):
            if key in request:
                order[key] = request[key]
        return order

    # -- downloads -------------------------------------------------------------------------------------------

    def resolve(self, order_id: str, path: str, token: str | None) -> Path:
        """The file behind a download link; 404 unknown, 403 wrong token, 410 expired."""
        with self._lock:
            record = self._orders.get(order_id)
            entry = next((r for r in record.results if r["path"] == path), None) if record else None
            if entry is None:
                raise ApiError(404, "no such file in this order's results")
            if not token or not hmac.compare_digest(token, entry["token"]):
                raise ApiError(403, "the download token is missing or does not match this file")
            if entry["expires"] <= time.time():
                raise ApiError(410, "the download link has expired: GET the order again for fresh links")
            spec = dict(entry)
        target = self.data_dir / spec["file"]
        if not target.exists() and spec.get("payload"):  # the payload folder was cleaned: make it again
            target = self._make(spec["payload"]).path
        return target

    def expire_links(self) -> None:
        """Every link issued so far expires now; the next GET of an order issues fresh ones."""
        with self._lock:
            past = time.time() - 1
            for record in self._orders.values():
                for entry in record.results:
                    entry["expires"] = min(entry["expires"], past)
                self._save(record)

    # -- internals -------------------------------------------------------------------------------------------

    def _record(self, order_id: str) -> OrderRecord:
        record = self._orders.get(order_id)
        if record is None:
            raise ApiError(404, f"Order {order_id} not found")
        return record

    def _make(self, payload: dict[str, Any]) -> Payload:
        kind = payload["kind"]
        if kind == "tiff":
            return self.payloads.random_tiff(payload["name"], int(payload["size"]))
        if kind in ("scene", "udm2", "quad"):
            return self.payloads.geotiff(payload["name"], int(payload.get("size") or 0), raster_key(payload),
                                         lambda: render(payload))
        if kind == "xml":
            return self.payloads.content(payload["name"], metadata_xml(payload["item"], payload["asset"]))
        if kind == "metadata":
            return self.payloads.content(payload["name"],
                                         metadata_json(payload["item"], self.catalog.known(payload["item"])))
        if kind == "bytes":
            return self.payloads.content(payload["name"], payload["data"].encode())
        raise ValueError(f"unknown payload kind {kind}")

    def _generate(self, files: list[dict[str, Any]]) -> dict[str, Payload]:
        return {f["path"]: self._make(f["payload"]) for f in files}

    def _prepare(self, record: OrderRecord) -> dict[str, Payload]:
        """The order's files; for a cloud order that will succeed, also written into its bucket."""
        made = self._generate(record.files)
        if self.cloud is not None and record.outcome in ("success", "partial"):
            spec = self.cloud.spec(record.request.get("delivery"))
            if spec is not None:
                delivered = record.files if record.outcome == "success" else _partial(record.files)[0]
                self.cloud.deliver(spec, record.id,
                                   [(f["path"], made[f["path"]].path, f["media_type"]) for f in delivered],
                                   _manifest(delivered, made))
        return made

    def _start_generation(self, record: OrderRecord) -> Future[dict[str, Payload]]:
        future = self._ready.get(record.id)
        if future is None:
            future = self._executor.submit(self._prepare, record)
            self._ready[record.id] = future
        return future

    def _advance(self, record: OrderRecord) -> bool:
        """Count a poll and move queued -> running; True when the order is due to become final."""
        record.polls += 1
        per_state = int(self.faults.get("order_polls_per_state"))
        step = 2 if per_state == 0 else min(2, record.polls // per_state)
        if record.state == "queued" and step >= 1:
            record.state, record.last_message = "running", _MESSAGES["running"]
            record.last_modified = rfc3339_ms(now_utc())
        if record.state != "running" or step < 2:
            return False
        if record.outcome in ("cancelled", "failed"):
            self._complete(record, {})
            return False
        return True

    def _complete(self, record: OrderRecord, made: dict[str, Payload] | Exception) -> None:
        """Make a running order final, as its outcome says, from the files made for it."""
        self._ready.pop(record.id, None)
        if record.outcome == "cancelled":
            self._finish(record, "cancelled", "Order cancelled", [])
            return
        if record.outcome == "failed":
            groups = list(dict.fromkeys(f["group"] for f in record.files))
            self._finish(record, "failed", "Order failed",
                         [f"Unable to process {g}: simulated processing failure" for g in groups[:10]])
            return
        if isinstance(made, Exception):
            hint = str(made) if isinstance(made, (CloudDeliveryError, ApiError)) else \
                f"the sandbox could not create the files: {made}"
            self._finish(record, "failed", "Order failed", [hint])
            return
        if record.outcome == "partial":
            delivered, hints = _partial(record.files)
            self._deliver(record, delivered, made)
            missing = len(record.files) - len(delivered)
            self._finish(record, "partial", f"Manifest delivery completed; {missing} of {len(record.files)} "
                                            "files could not be delivered", hints)
            return
        self._deliver(record, record.files, made)
        self._finish(record, "success", "Manifest delivery completed", [])

    def _finish(self, record: OrderRecord, state: str, message: str, hints: list[str]) -> None:
        record.state, record.last_message, record.error_hints = state, message, hints
        record.last_modified = rfc3339_ms(now_utc())

    def _deliver(self, record: OrderRecord, files: list[dict[str, Any]], made: dict[str, Payload]) -> None:
        results = [self._link(spec["path"], made[spec["path"]].path, spec["payload"]) for spec in files]
        manifest = _manifest(files, made)
        payload = self.payloads.content(f"manifest_{record.id}.json", manifest)
        regenerate = {"kind": "bytes", "name": f"manifest_{record.id}.json", "data": manifest.decode()}
        results.append(self._link("manifest.json", payload.path, regenerate))
        record.results = results

    def _link(self, path: str, file: Path, payload: dict[str, Any]) -> dict[str, Any]:
        return {"path": path, "file": str(file.relative_to(self.data_dir)), "payload": payload,
                "token": secrets.token_urlsafe(24), "expires": time.time() + self.link_ttl}

    def _refresh_links(self, record: OrderRecord) -> bool:
        """Fresh links (new token, full lifetime) for those expired or about to (within REISSUE_WINDOW)."""
        now = time.time()
        stale = [r for r in record.results if r["expires"] <= now + REISSUE_WINDOW]
        for entry in stale:
            entry["token"] = secrets.token_urlsafe(24)
            entry["expires"] = now + self.link_ttl
        return bool(stale)


def _manifest(files: list[dict[str, Any]], made: dict[str, Payload]) -> bytes:
    """manifest.json of the delivered ``files``: true sizes and digests."""
    entries = [{
        "annotations": spec["annotations"],
        "digests": {"md5": made[spec["path"]].md5, "sha256": made[spec["path"]].sha256},
        "media_type": spec["media_type"],
        "path": spec["path"],
        "size": made[spec["path"]].size,
    } for spec in files]
    return (json.dumps({"name": "", "files": entries}, indent=2) + "\n").encode()


def _partial(files: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Drop the later half of the items (at least one); a one-item order loses its side files instead."""
    groups = list(dict.fromkeys(f["group"] for f in files))
    if len(groups) == 1:
        return files[:1], [f"{groups[0]}: some assets could not be delivered"]
    dropped = set(groups[len(groups) - max(1, len(groups) // 2):])
    return ([f for f in files if f["group"] not in dropped],
            [f"Unable to deliver {g}: simulated delivery failure" for g in groups if g in dropped])

