"""The API-bound scenario: a batch at Planet's rate limits, and how close each downloader gets to the rate floor.

The sandbox enforces Planet's per-endpoint rates per key (orders 3/s, downloads 5/s, Data API 10/s) with Planet's
server times (search 0.5 s, order create 0.4 s, order get 0.15 s, download 0.05 s), 429s without Retry-After,
and download links that redirect to a storage host. For each downloader, with one process and with three sharing
the key and the order database: ``batch-submit`` of 3 gages x 2 years (monthly, 6-month chunks: 12 orders), then
``batch-check-status --wait --output s3://...`` (images only). Each phase is reported against its rate floor: the
least time Planet's limits allow for the requests it had to make (the busiest endpoint class decides) plus one
chain of requests through the server times. Planet's own CLI downloads the same orders, one after the other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.servers import API_KEY, BUCKET, RcloneS3

PLANET_MAIN = "import sys; from planet.cli.cli import main; sys.exit(main())"
ROOT = Path(__file__).resolve().parent.parent
AOIS = ROOT / "tests" / "data" / "aoi"
GAGES = (("Salinas", AOIS / "Salinas" / "DrySpy_AOI_SalinasRiver.shp"),
         ("Scott", AOIS / "Scott" / "DrySpy_AOI_ScottRiver.shp"),
         ("SantaClara", AOIS / "SantaClara" / "DrySpy_AOI_SantaClaraRiver_central.shp"))
# Planet's server times (seconds) per endpoint class, as measured by the issue that asked for this scenario.
LATENCY_MS = {"data": 500, "orders_create": 400, "orders_get": 150, "orders_list": 150, "downloads": 50}
# One chain of requests through those times: what no amount of concurrency removes.
SUBMIT_CHAIN = (LATENCY_MS["data"] + LATENCY_MS["orders_create"]) / 1000
CHECK_CHAIN = (2 * LATENCY_MS["orders_get"] + 2 * LATENCY_MS["downloads"]) / 1000  # poll, poll final, manifest, file
POLLS_PER_ORDER = 2  # the sandbox's orders go queued -> running -> success over two GETs (polls_per_state=1)
_SCRUB = ("FLOWZERO_", "AWS_", "PL_")


@dataclass
class Scenario:
    """The batch, the servers and what every run shares."""

    start: str = "2022-01-01"
    end: str = "2023-12-31"
    cadence: str = "monthly"
    max_months: int = 6
    file_kib: int = 256
    workers: int = 8


def write_shapefile(folder: Path, scenario: Scenario) -> Path:
    """3 gages (the real Teale Albers AOIs) over the scenario's dates."""
    import shapefile

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "gages.shp"
    with shapefile.Writer(str(target), shapeType=shapefile.POLYGON) as writer:
        for column in ("gage_id", "start_date", "end_date"):
            writer.field(column, "C", size=40)
        for gage_id, source in GAGES:
            with shapefile.Reader(str(source)) as reader:
                writer.shape(reader.shape(0))
            writer.record(gage_id, scenario.start, scenario.end)
    shutil.copyfile(GAGES[0][1].with_suffix(".prj"), target.with_suffix(".prj"))
    return target


def rate_floor(needed: Mapping[str, int], chain: float) -> float:
    """The least seconds Planet's limits allow for ``needed`` requests per class, plus one request chain."""
    from flowzero.sandbox.limits import PLANET_RATES

    return max((count / PLANET_RATES[name] for name, count in needed.items() if count), default=0.0) + chain


def _phase(stats: Mapping[str, Any], wall: float, needed: Mapping[str, int], chain: float,
           codes: Sequence[int]) -> dict[str, Any]:
    floor = rate_floor(needed, chain)
    requests, refused = int(stats["requests"]), int(stats["refused"])
    return {"wall_s": round(wall, 2), "floor_s": round(floor, 2), "ratio": round(wall / floor, 3) if floor else None,
            "requests": requests, "refused": refused,
            "refused_pct": round(100.0 * refused / requests, 2) if requests else 0.0,
            "needed": dict(needed), "exit_codes": list(codes),
            "classes": {name: {k: c[k] for k in ("requests", "refused", "peak_per_window")}
                        for name, c in stats["classes"].items()}}


class Runner:
    """Runs flowzero (and Planet's CLI) against one sandbox and one S3 server, each run in a fresh database."""

    def __init__(self, sandbox: Any, s3: RcloneS3, work: Path, scenario: Scenario) -> None:
        self.sandbox, self.s3, self.work, self.scenario = sandbox, s3, work, scenario
        self.shapefile = write_shapefile(work / "gages", scenario)

    def env(self, tag: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        url = self.sandbox.url
        env.update(self.s3.env())
        env.update({
            "PL_API_KEY": API_KEY, "HOME": str(self.work / "home"), "PYTHONDONTWRITEBYTECODE": "1",
            "FLOWZERO_PLANET_API_URL": f"{url}/data/v1", "FLOWZERO_PLANET_ORDERS_URL": f"{url}/compute/ops/orders/v2",
            "FLOWZERO_PLANET_BASEMAPS_URL": f"{url}/basemaps/v1/mosaics",
            "FLOWZERO_DATABASE_PATH": str(self.work / f"{tag}.db"),
            "FLOWZERO_DOWNLOADS_MAX_WORKERS": str(self.scenario.workers),
            "FLOWZERO_DELIVERY_CATALOG": "false", "FLOWZERO_DELIVERY_ASSETS": "image",
        })
        return env  # flowzero's rate limits are its defaults: Planet's documented ones

    def flowzero(self, env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "flowzero", *args], env=dict(env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.work)

    def submit(self, env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
        s = self.scenario
        self.sandbox.reset_stats()
        started = time.monotonic()
        done = self.flowzero(env, "batch-submit", "--shp", str(self.shapefile), "--max-months", str(s.max_months),
                             "--cadence", s.cadence, "--json")
        out, err = done.communicate(timeout=900)
        wall = time.monotonic() - started
        stats = self.sandbox.stats()
        report = json.loads(out) if done.returncode == 0 else {}
        orders = len(report.get("orders", []))
        searches = stats["classes"].get("data", {}).get("accepted", 0)
        phase = _phase(stats, wall, {"data": searches, "orders_create": orders}, SUBMIT_CHAIN, [done.returncode])
        phase["orders"] = orders
        if done.returncode != 0:
            phase["error"] = err.strip().splitlines()[-1:] or ["no output"]
        return phase, str(report.get("batch_id", ""))

    def check(self, env: Mapping[str, str], batch_id: str, downloader: str, processes: int, tag: str,
              orders: int) -> dict[str, Any]:
        self.sandbox.reset_stats()
        target = f"s3://{BUCKET}/api-{tag}"
        started = time.monotonic()
        runs = [self.flowzero(env, "batch-check-status", batch_id, "--wait", "--output", target, "--downloader",
                              downloader, "--json") for _ in range(processes)]
        outputs = [r.communicate(timeout=1800) for r in runs]
        wall = time.monotonic() - started
        stats = self.sandbox.stats()
        folder = self.s3.bucket_dir / f"api-{tag}"
        delivered = sum(1 for p in folder.rglob("*.tiff")) if folder.exists() else 0
        expected = _images_of(outputs)
        needed = {"orders_get": POLLS_PER_ORDER * orders, "downloads": expected + orders}  # files + manifests
        phase = _phase(stats, wall, needed, CHECK_CHAIN, [r.returncode for r in runs])
        phase.update(files_expected=expected, files_delivered=delivered)
        errors = [err.strip().splitlines()[-1] for r, (_, err) in zip(runs, outputs) if r.returncode and err.strip()]
        if errors:
            phase["errors"] = errors[:3]
        shutil.rmtree(folder, ignore_errors=True)
        return phase

    def planet_cli(self, db: Path) -> dict[str, Any]:
        """Planet's CLI downloads each order of the batch recorded in ``db``, one after the other."""
        from flowzero.storage.sqlite import SqliteOrderStore

        with SqliteOrderStore(db) as store:
            order_ids = [o.order_id for o in store.list_orders() if o.batch_id]
        folder = self.work / "planet-cli"
        folder.mkdir(parents=True, exist_ok=True)  # `planet orders download --directory` wants it to exist
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        env["PL_API_KEY"] = API_KEY
        self.sandbox.reset_stats()
        started = time.monotonic()
        codes = []
        for order_id in order_ids:
            argv = [sys.executable, "-c", PLANET_MAIN, "--quiet", "orders", "--base-url",
                    f"{self.sandbox.url}/compute/ops", "download", "--checksum", "SHA256", "--directory",
                    str(folder), order_id]
            codes.append(subprocess.run(argv, env=env, capture_output=True, timeout=1800).returncode)
        wall = time.monotonic() - started
        stats = self.sandbox.stats()
        files = sum(1 for p in folder.rglob("*") if p.is_file())
        downloads = stats["classes"].get("downloads", {}).get("accepted", 0)
        gets = stats["classes"].get("orders_get", {}).get("accepted", 0)
        phase = _phase(stats, wall, {"downloads": downloads, "orders_get": gets}, CHECK_CHAIN, codes)
        phase.update(orders=len(order_ids), files_delivered=files)
        shutil.rmtree(folder, ignore_errors=True)
        return phase


def _images_of(outputs: Sequence[tuple[str, str]]) -> int:
    """The images the batch's orders hold, from the runs' reports (each order is reported by every run)."""
    files: dict[str, int] = {}
    for out, _ in outputs:
        try:
            report = json.loads(out)
        except ValueError:
            continue
        for order in report.get("orders", []):
            if order.get("category") in ("delivered", "partial"):
                files[order["order_id"]] = max(files.get(order["order_id"], 0), int(order.get("files", 0)))
    return sum(files.values())


def run(work: Path, s3: RcloneS3, downloaders: Sequence[str], scenario: Scenario | None = None,
        say: Any = print, planet_cli: bool = True) -> dict[str, Any]:
    """The scenario for each downloader with one and three processes; results as JSON-able data."""
    from flowzero.sandbox import Sandbox

    scenario = scenario or Scenario()
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"scenario": vars(scenario), "latency_ms": LATENCY_MS, "runs": []}
    with Sandbox(work / "sandbox", file_size=scenario.file_kib * 1024, polls_per_state=1) as sandbox:
        sandbox.set_faults(planet_limits=True, latency_ms=LATENCY_MS, redirect_downloads=True)
        runner = Runner(sandbox, s3, work, scenario)
        last_db: Path | None = None
        for downloader in downloaders:
            for processes in (1, 3):
                tag = f"{downloader}-{processes}"
                env = runner.env(tag)
                submit, batch_id = runner.submit(env)
                check = runner.check(env, batch_id, downloader, processes, tag, submit["orders"]) if batch_id \
                    else {"error": "batch-submit failed"}
                results["runs"].append({"downloader": downloader, "processes": processes, "submit": submit,
                                        "check": check})
                say(f"  api-bound {tag:10} submit {submit['wall_s']:5.1f} s (floor {submit['floor_s']:.1f}, "
                    f"refused {submit['refused_pct']:.1f} %)  check {check.get('wall_s', 0):5.1f} s "
                    f"(floor {check.get('floor_s', 0):.1f}, refused {check.get('refused_pct', 0):.1f} %, "
                    f"{check.get('files_delivered', 0)}/{check.get('files_expected', 0)} files)")
                last_db = work / f"{tag}.db"
        if planet_cli and last_db is not None:
            results["planet_cli"] = runner.planet_cli(last_db)
            cli = results["planet_cli"]
            say(f"  api-bound planet-cli   {cli['wall_s']:5.1f} s (floor {cli['floor_s']:.1f}, refused "
                f"{cli['refused_pct']:.1f} %, {cli['files_delivered']} files)")
    return results


def goals(api: Mapping[str, Any]) -> list[dict[str, Any]]:
    """#17's must-reach lines, one per downloader and process count."""
    out = []
    for entry in api.get("runs", []):
        submit, check = entry["submit"], entry["check"]
        phases = [p for p in (submit, check) if "ratio" in p]
        worst = max((p["ratio"] for p in phases if p.get("ratio")), default=None)
        # "At most 2 % of requests refused": of all the requests the batch made (submit and check). batch-submit
        # alone makes about 25, where a single 429 is 4 %; the worst phase is shown beside it.
        made = sum(p["requests"] for p in phases)
        refused = round(100.0 * sum(p["refused"] for p in phases) / made, 2) if made else None
        worst_phase = max((p["refused_pct"] for p in phases), default=None)
        every_file = check.get("files_delivered") == check.get("files_expected") and check.get("files_expected")
        exits = all(code == 0 for p in phases for code in p["exit_codes"])
        met = worst is not None and worst <= 1.25 and refused is not None and refused <= 2.0 and bool(every_file) \
            and exits
        out.append({"goal": f"API-bound batch, {entry['downloader']}, {entry['processes']} process(es)",
                    "target": "<= 1.25x rate floor, <= 2 % refused, every file, exit 0",
                    "measured": f"{worst}x, {refused} % of {made} requests refused (worst phase {worst_phase} %), "
                                f"{check.get('files_delivered')}/{check.get('files_expected')} files, "
                                f"exits ok: {exits}",
                    "met": met})
    return out
