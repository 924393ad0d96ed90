"""Before/after: two flowzero installs' ``--downloader fast`` against the SAME sandbox and S3 server, interleaved.

    python benchmarks/compare.py --before /tmp/old/.nox/bench/bin/python --after .nox/bench/bin/python \\
        --files 16 --size 64 --dest s3 --rounds 12

Two full ``nox -s bench`` runs one after the other differ by 7-12 % on this kind of machine even in the raw probes
that run no flowzero code (drift), and each tree's benchmark also brings its own sandbox. Here one sandbox and one
``rclone serve s3`` serve both installs, runs alternate (before, after, after, before, ...), and each full run is
followed by a one-file run, so the figures also give net CPU per MB apart from start-up. Medians are printed, and
the per-run samples written as JSON with ``--json``. ``--same`` runs one install against itself (A/A): the
spread it shows is the noise floor of a comparison with that many rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.contenders import Context, flowzero_argv, flowzero_env, output_of
from benchmarks.measure import RunFailed, Sample, marginal_cpu, median_sample, run_beside_servers
from benchmarks.servers import RcloneS3, SetupError, place_order, sandbox


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the Python of the older install (its flowzero and _fast)")
    parser.add_argument("--after", required=True, help="the Python of the newer install")
    parser.add_argument("--same", action="store_true", help="A/A: --after against itself (the noise floor)")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="MiB per file")
    parser.add_argument("--dest", choices=("s3", "local"), default="s3")
    parser.add_argument("--rounds", type=int, default=12, help="measured rounds (one unmeasured warm-up first)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--part-size", type=int, default=16, help="MiB")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.files < 2 or args.size < 1 or args.rounds < 1:
        parser.error("--files must be at least 2, --size and --rounds at least 1")
    return args


def _knows_assets(python: str) -> bool:
    """Installs from before the UDM2 deliveries have no --assets (they deliver the images alone anyway)."""
    shown = subprocess.run([python, "-m", "flowzero", "check-order-status", "--help"], capture_output=True, text=True,
                           cwd=tempfile.gettempdir())  # not a checkout's folder: `-m` would import its flowzero
    return "--assets" in shown.stdout


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Absolute, but not resolved: a virtualenv's python is a symlink that must keep its own prefix.
    before = args.after if args.same else args.before
    installs = {"before": os.path.abspath(before), "after": os.path.abspath(args.after)}
    assets = {name: _knows_assets(python) for name, python in installs.items()}
    work = Path(tempfile.mkdtemp(prefix="flowzero-compare-"))
    samples: dict[str, list[tuple[Sample, Sample]]] = {name: [] for name in installs}
    try:
        with (RcloneS3(work / "s3", work / "rclone.log") if args.dest == "s3" else nullcontext()) as s3, \
                sandbox(work / "sandbox", args.size << 20) as sb:
            orders = place_order(sb, args.files), place_order(sb, 1)
            ctx = Context(orders[0], sb.url, s3, args.workers, args.part_size, work, work / "stage")
            for number in range(args.rounds + 1):
                names = list(installs) if number % 2 else list(installs)[::-1]
                for name in names:
                    full, one = (_run(ctx, installs[name], assets[name], order, f"{name}-{number}-{i}", args.dest)
                                 for i, order in enumerate(orders))
                    if number:
                        samples[name].append((full, one))
                    print(f"{name:6} {'(warm-up) ' if not number else ''}{full.mb_s:7.1f} MB/s  cpu "
                          f"{full.cpu_ms_per_mb:.3f} ms/MB (usr {full.user_s:.2f} sys {full.sys_s:.2f})  servers "
                          f"{full.server_cpu_s:.2f} s", flush=True)
    except (RunFailed, SetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {name: _summary(pairs) for name, pairs in samples.items()}
    for name, figures in summary.items():
        print(f"== {name}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))
    before, after = summary["before"], summary["after"]
    print(f"== after vs before: MB/s {100 * (after['mb_s'] / before['mb_s'] - 1):+.1f} %, CPU per MB "
          f"{100 * (after['cpu_ms_per_mb'] / before['cpu_ms_per_mb'] - 1):+.1f} %, net CPU per MB "
          f"{100 * (after['marginal_cpu_ms_per_mb'] / before['marginal_cpu_ms_per_mb'] - 1):+.1f} %")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
            "runs": {name: [[a.to_dict(), b.to_dict()] for a, b in pairs] for name, pairs in samples.items()},
        }, indent=2) + "\n")
    return 0


def _run(ctx: Context, python: str, assets: bool, order: Any, tag: str, dest: str) -> Sample:
    output, folder = output_of(ctx, dest, tag)
    env = flowzero_env(ctx, ctx.work / f"{tag.split('-')[0]}.db")  # one database per install
    argv = flowzero_argv(python, order.order_id, output, "fast", assets)
    sample = run_beside_servers(argv, order.image_bytes, ctx.s3_pid, env=env, cwd=ctx.work, log=ctx.work / f"{tag}.log")
    shutil.rmtree(folder, ignore_errors=True)
    return sample


def _summary(pairs: list[tuple[Sample, Sample]]) -> dict[str, float]:
    full = [a for a, _ in pairs]
    return {"rounds": len(pairs), **median_sample(full), **marginal_cpu(full, [b for _, b in pairs])}


if __name__ == "__main__":
    sys.exit(main())
