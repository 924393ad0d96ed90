"""What is run and how: flowzero's downloaders, the peers users would pick instead, and the limit probes.

Every entry becomes ONE subprocess per run (see measure.py), so each has its own CPU and memory figures:

- ``fast`` / ``threads`` / ``s5cmd``: ``flowzero check-order-status ORDER --output DEST --downloader NAME``, the
  command a user runs (order lookup, manifest, verified transfer, metadata.json, order store).
- ``planet-cli``: Planet's ``planet orders download --checksum SHA256`` (local); ``planet-cli+s5cmd``: that, then
  ``s5cmd cp`` of the folder to S3, what a user would script by hand.
- ``source-limit``: parallel raw GETs of the same files to /dev/null (curl; no disk, no digest).
- ``sink-limit``: S3: ``s5cmd cp`` of the same bytes already on local disk, and ``sink-limit-put``: raw
  parallel PUTs of them (curl, SigV4); local: writing them from memory (temp file, fsync, rename), see
  sinkwrite.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.servers import API_KEY, BUCKET, S3_KEY_ID, S3_REGION, S3_SECRET, BenchOrder, RcloneS3, find_tool
from flowzero.sandbox.tls import TlsFiles

PLANET_MAIN = "import sys; from planet.cli.cli import main; sys.exit(main())"
HERE = Path(__file__).resolve().parent

# Environment variables a run must not inherit from the shell (they would change what is measured).
_SCRUB_PREFIXES = ("FLOWZERO_", "AWS_", "PL_")
# The transfer workloads measure bytes, not Planet's limits (the sandbox enforces none here): flowzero's pacer
# still runs for every request, at 5000 requests/s per class, so what it costs is in the figures.
UNBOUND_RATES = {f"FLOWZERO_PLANET_RATE_LIMITS_{name.upper()}": "5000" for name in (
    "orders_create", "orders_get", "orders_list", "orders_cancel", "downloads", "data", "basemaps", "destinations")}


@dataclass
class Context:
    """Everything a run needs: the order, the servers, the knobs and the scratch folders."""

    order: BenchOrder
    sandbox_url: str
    s3: RcloneS3 | None
    workers: int
    part_size_mib: int
    work: Path  # scratch root: outputs, staging, logs, the order database
    stage: Path  # the order's images already on local disk (the S3 sink limit uploads these)
    python: str = sys.executable
    tools: dict[str, str] = field(default_factory=dict)
    tls: TlsFiles | None = None  # the HTTPS variant: the sandbox and S3 serve TLS with this throw-away CA

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith((*_SCRUB_PREFIXES, "SSL_CERT_"))}
        env["PL_API_KEY"] = API_KEY
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.s3 is not None:
            env.update(self.s3.env())
        if self.tls is not None:
            env.update({"AWS_CA_BUNDLE": str(self.tls.ca), "SSL_CERT_FILE": str(self.tls.ca)})
        return env

    @property
    def s3_pid(self) -> int | None:
        """The S3 server's process (its CPU is counted with the sandbox's), if one runs."""
        return self.s3.proc.pid if self.s3 is not None and self.s3.proc is not None else None

    def curl_tls(self) -> list[str]:
        """curl's arguments to trust the throw-away CA (curl reads no bundle variable of the AWS tools)."""
        return ["--cacert", str(self.tls.ca)] if self.tls is not None else []


@dataclass
class Run:
    """One prepared run: the command, its environment, where it delivers and how to check the result."""

    argv: list[str]
    env: dict[str, str]
    target: Path  # the folder the bytes land in (for S3: the object folder under rclone's root)
    check: Callable[[], None]
    cleanup: Callable[[], None]


@dataclass(frozen=True)
class Contender:
    """A named way of moving the order's images to one destination kind ("s3" or "local")."""

    name: str
    destination: str
    kind: str  # "flowzero", "peer" or "limit"
    needs: tuple[str, ...]
    prepare: Callable[[Context, str], Run]
    description: str = ""


# -- checks ------------------------------------------------------------------------------------------------


def check_images(folder: Path, order: BenchOrder) -> None:
    """Every image of the order is under ``folder`` with its manifest size and sha256 (else RunFailed)."""
    from benchmarks.measure import RunFailed

    wanted: dict[int, set[str]] = {}
    for image in order.images:
        wanted.setdefault(int(image["size"]), set()).add(image["sha256"])
    found = 0
    seen: set[str] = set()
    for path in folder.rglob("*"):
        if path.name.startswith(".") or not path.is_file():
            continue
        size = path.stat().st_size
        if size not in wanted:
            continue
        digest = _sha256(path)
        if digest in wanted[size] and digest not in seen:
            seen.add(digest)
            found += 1
    if found != len(order.images):
        raise RunFailed(f"{found} of {len(order.images)} images arrived intact under {folder}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _no_check() -> None:
    return None


def _remover(*paths: Path) -> Callable[[], None]:
    def remove() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
    return remove


def _s3_target(ctx: Context, tag: str) -> tuple[str, Path]:
    """The S3 URL a run writes under and the folder rclone keeps those objects in."""
    assert ctx.s3 is not None
    return f"s3://{BUCKET}/{tag}", ctx.s3.bucket_dir / tag


# -- flowzero's downloaders ---------------------------------------------------------------------------------


def flowzero_env(ctx: Context, database: Path) -> dict[str, str]:
    """The environment of a flowzero run against the benchmark's sandbox (and S3 server)."""
    env = ctx.base_env()
    env.update({
        "FLOWZERO_PLANET_ORDERS_URL": f"{ctx.sandbox_url}/compute/ops/orders/v2",
        "FLOWZERO_PLANET_API_URL": f"{ctx.sandbox_url}/data/v1",
        "FLOWZERO_PLANET_BASEMAPS_URL": f"{ctx.sandbox_url}/basemaps/v1/mosaics",
        "FLOWZERO_DATABASE_PATH": str(database),
        "FLOWZERO_DOWNLOADS_MAX_WORKERS": str(ctx.workers),
        "FLOWZERO_DOWNLOADS_PART_SIZE_MIB": str(ctx.part_size_mib),
        "FLOWZERO_DELIVERY_CATALOG": "false",  # the images alone, as in every recorded run (no STAC, no UDM2)
        **UNBOUND_RATES,
    })
    return env


def flowzero_argv(python: str, order_id: str, output: str, downloader: str, assets: bool = True) -> list[str]:
    """The command a user runs to deliver an order (``assets``: say --assets image; older installs lack it)."""
    return [python, "-m", "flowzero", "check-order-status", order_id, "--output", output, "--downloader", downloader,
            *(["--assets", "image"] if assets else []), "--overwrite", "--json"]


def output_of(ctx: Context, destination: str, tag: str) -> tuple[str, Path]:
    """Where a run delivers (its --output) and the folder its bytes land in."""
    if destination == "s3":
        return _s3_target(ctx, tag)
    folder = ctx.work / "out" / tag
    return str(folder), folder


def _flowzero(downloader: str, destination: str) -> Callable[[Context, str], Run]:
    def prepare(ctx: Context, tag: str) -> Run:
        output, folder = output_of(ctx, destination, tag)
        env = flowzero_env(ctx, ctx.work / "flowzero.db")
        argv = flowzero_argv(ctx.python, ctx.order.order_id, output, downloader)
        return Run(argv, env, folder, lambda: check_images(folder, ctx.order), _remover(folder))
    return prepare


# -- Planet's CLI -------------------------------------------------------------------------------------------


def _planet_argv(ctx: Context, folder: Path) -> list[str]:
    return [ctx.python, "-c", PLANET_MAIN, "--quiet", "orders", "--base-url", f"{ctx.sandbox_url}/compute/ops",
            "download", "--checksum", "SHA256", "--directory", str(folder), ctx.order.order_id]


def _planet_local(ctx: Context, tag: str) -> Run:
    folder = ctx.work / "out" / tag
    folder.mkdir(parents=True, exist_ok=True)
    return Run(_planet_argv(ctx, folder), ctx.base_env(), folder, lambda: check_images(folder, ctx.order),
               _remover(folder))


def _planet_then_s5cmd(ctx: Context, tag: str) -> Run:
    assert ctx.s3 is not None
    staging = ctx.work / "out" / f"{tag}-staging"
    staging.mkdir(parents=True, exist_ok=True)
    output, folder = _s3_target(ctx, tag)
    script = 'set -e; "$@"; exec "$S5CMD" --endpoint-url "$S3_URL" --numworkers "$WORKERS" cp "$STAGING/*" "$TARGET/"'
    env = ctx.base_env()
    env.update({"S5CMD": ctx.tools["s5cmd"], "S3_URL": ctx.s3.url, "WORKERS": str(ctx.workers),
                "STAGING": str(staging), "TARGET": output})
    argv = ["sh", "-c", script, "sh", *_planet_argv(ctx, staging)]
    return Run(argv, env, folder, lambda: check_images(folder, ctx.order), _remover(folder, staging))


# -- limits -------------------------------------------------------------------------------------------------


def _source_limit(ctx: Context, tag: str) -> Run:
    """W parallel GETs to /dev/null: the most the sandbox can serve to a client that does nothing else."""
    config = ctx.work / f"{tag}.curl"
    lines = [f'url = "{image["url"]}"\noutput = "/dev/null"\n' for image in ctx.order.images]
    config.write_text("".join(lines))
    config.chmod(0o600)  # it holds download tokens (of the sandbox, but still)
    curl = ctx.tools.get("curl")
    if curl:
        argv = [curl, "--silent", "--show-error", "--fail", "--parallel", "--parallel-max", str(ctx.workers),
                *ctx.curl_tls(), "--config", str(config)]
    else:  # no curl: the same with Python's http.client
        argv = [ctx.python, str(HERE / "rawget.py"), str(config), str(ctx.workers)]
    return Run(argv, ctx.base_env(), config, _no_check, lambda: config.unlink(missing_ok=True))


def _sink_limit_s3(ctx: Context, tag: str) -> Run:
    output, folder = _s3_target(ctx, tag)
    assert ctx.s3 is not None
    argv = [ctx.tools["s5cmd"], "--endpoint-url", ctx.s3.url, "--numworkers", str(ctx.workers), "cp",
            f"{ctx.stage}/*", f"{output}/"]
    return Run(argv, ctx.base_env(), folder, lambda: check_images(folder, ctx.order), _remover(folder))


def _sink_limit_put(ctx: Context, tag: str) -> Run:
    """W parallel raw PUTs (curl, SigV4) of the same bytes already on local disk: no multipart, no digest."""
    assert ctx.s3 is not None
    output, folder = _s3_target(ctx, tag)
    bucket_url = f"{ctx.s3.url}/{output[len('s3://'):]}"
    config = ctx.work / f"{tag}.curl"
    lines = [f'user = "{S3_KEY_ID}:{S3_SECRET}"\n']
    lines += [f'upload-file = "{ctx.stage / image["name"]}"\nurl = "{bucket_url}/{image["name"]}"\n'
              f'output = "/dev/null"\n' for image in ctx.order.images]
    config.write_text("".join(lines))
    config.chmod(0o600)  # it holds the (benchmark-only) S3 secret
    argv = [ctx.tools["curl"], "--silent", "--show-error", "--fail", "--parallel", "--parallel-max",
            str(ctx.workers), *ctx.curl_tls(), "--aws-sigv4", f"aws:amz:{S3_REGION}:s3", "--config", str(config)]

    def cleanup() -> None:
        config.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    return Run(argv, ctx.base_env(), folder, lambda: check_images(folder, ctx.order), cleanup)


def _sink_limit_local(ctx: Context, tag: str) -> Run:
    folder = ctx.work / "out" / tag
    size = int(ctx.order.images[0]["size"])
    argv = [ctx.python, str(HERE / "sinkwrite.py"), str(folder), str(len(ctx.order.images)), str(size),
            str(ctx.workers)]

    def check() -> None:
        from benchmarks.measure import RunFailed

        sizes = [p.stat().st_size for p in folder.glob("sink-*.tif")]
        if len(sizes) != len(ctx.order.images) or any(s != size for s in sizes):
            raise RunFailed(f"the local sink probe wrote {len(sizes)} files, not {len(ctx.order.images)}")
    return Run(argv, ctx.base_env(), folder, check, _remover(folder))


CONTENDERS: tuple[Contender, ...] = (
    Contender("source-limit", "any", "limit", ("curl|python",), _source_limit,
              "parallel raw GETs from the sandbox to /dev/null"),
    Contender("sink-limit", "s3", "limit", ("s5cmd",), _sink_limit_s3,
              "s5cmd cp of the same bytes already on local disk"),
    Contender("sink-limit-put", "s3", "limit", ("curl",), _sink_limit_put,
              "parallel raw PUTs (curl --aws-sigv4) of the same bytes already on local disk"),
    Contender("fast", "s3", "flowzero", (), _flowzero("fast", "s3"), "flowzero --downloader fast"),
    Contender("s5cmd", "s3", "flowzero", ("s5cmd",), _flowzero("s5cmd", "s3"), "flowzero --downloader s5cmd"),
    Contender("threads", "s3", "flowzero", (), _flowzero("threads", "s3"), "flowzero --downloader threads"),
    Contender("planet-cli+s5cmd", "s3", "peer", ("s5cmd",), _planet_then_s5cmd,
              "planet orders download --checksum SHA256, then s5cmd cp"),
    Contender("sink-limit", "local", "limit", (), _sink_limit_local,
              "write the same bytes from memory: temp file, fsync, rename"),
    Contender("fast", "local", "flowzero", (), _flowzero("fast", "local"), "flowzero --downloader fast"),
    Contender("threads", "local", "flowzero", (), _flowzero("threads", "local"), "flowzero --downloader threads"),
    Contender("planet-cli", "local", "peer", (), _planet_local, "planet orders download --checksum SHA256"),
)


def available_tools() -> dict[str, str]:
    """The external programs found here (s5cmd, curl); contenders that need a missing one are left out."""
    tools = {}
    for name in ("s5cmd", "curl"):
        found = find_tool(name)
        if found:
            tools[name] = found
    return tools


# Planet's CLI (httpx) trusts only certifi's roots, not the bundle variables: it cannot take part over TLS here.
NOT_OVER_TLS = frozenset({"planet-cli", "planet-cli+s5cmd"})


def select(destinations: Mapping[str, bool], only: set[str] | None, tools: Mapping[str, str],
           tls: bool = False) -> list[Contender]:
    """The contenders to run: wanted destinations, optionally only some names, and whose tools are here."""
    chosen = []
    for contender in CONTENDERS:
        if tls and contender.name in NOT_OVER_TLS:
            continue
        wanted = any(destinations.values()) if contender.destination == "any" else destinations.get(
            contender.destination)
        if not wanted:
            continue
        if only and contender.name not in only and contender.kind != "limit":
            continue
        if all(need in tools or "|" in need for need in contender.needs):
            chosen.append(contender)
    return chosen
