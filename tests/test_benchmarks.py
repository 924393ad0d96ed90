"""The benchmark script (`nox -s bench`) runs end to end on a tiny workload and writes results of the right shape.

This is the only benchmark code in the suite: two 1 MiB files, one round, `fast` and the limit probes, to a real
rclone S3 endpoint and a local folder. The numbers mean nothing at this size; the plumbing is what is checked.
Plus the arithmetic that turns measurements into verdicts, on made-up numbers.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.measure import Sample, marginal_cpu, process_cpu_s

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "downloaders.py"

pytestmark = pytest.mark.slow  # about ten process start-ups


def test_tiny_benchmark_run_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "results" / "bench.json"
    work = tmp_path / "work"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--files", "2", "--size", "1", "--repeat", "1", "--warmup", "0",
         "--only", "fast", "--json", str(out), "--workdir", str(work)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())

    assert results["schema"] == 1
    assert results["machine"]["nproc"] >= 1 and len(results["machine"]["load_before"]) == 3
    assert results["settings"]["workers"] == 8 and "rclone" in results["settings"]["s3_server"]
    assert 0.05 < results["digest_floor"]["sha256_ms_per_mb"] < 20

    (workload,) = results["workloads"]
    assert (workload["files"], workload["size_mib"], workload["bytes"]) == (2, 1, 2 * 1024 * 1024)
    assert workload["source_limit"]["mb_s"] > 0
    assert set(workload["destinations"]) == {"s3", "local"}
    for destination, block in workload["destinations"].items():
        contenders = block["contenders"]
        limits = {"s3": {"sink-limit", "sink-limit-put"}, "local": {"sink-limit"}}[destination]
        assert set(contenders) == {*limits, "fast"}, destination
        for name, entry in contenders.items():
            assert "error" not in entry, (destination, name, entry.get("error"))
            assert entry["mb_s"] > 0 and entry["wall_s"] > 0 and entry["cpu_s"] > 0
            assert 1 < entry["peak_rss_mib"] < 1024
            assert len(entry["runs"]) == 1
        fast = contenders["fast"]
        assert {"marginal_cpu_ms_per_mb", "fixed_cpu_s", "of_ceiling", "cpu_over_floor_ms_per_mb"} <= set(fast)
        assert all(entry["server_cpu_ms_per_mb"] >= 0 for entry in contenders.values())
        sinks = [contenders[name]["mb_s"] for name in limits]
        assert block["limits_mb_s"] == {"source": workload["source_limit"]["mb_s"], "sink": max(sinks)}
        assert block["ceiling_mb_s"] == min(block["limits_mb_s"].values())
        assert fast["of_ceiling"] == pytest.approx(fast["mb_s"] / block["ceiling_mb_s"], abs=0.001)
        assert block["ratios"] == {}  # no other downloader ran
    # The images really arrived and were checked (a failed check would be an "error" above); scratch is kept.
    assert (work / "logs").is_dir()

    goals = {g["goal"].split(" (")[0]: g for g in results["goals"]}
    assert goals["local: fast vs planet orders download"]["met"] is None  # planet-cli did not run
    assert goals["fast peak RSS"]["met"] is True
    assert all({"goal", "target", "measured", "met", "note"} <= set(g) for g in results["goals"])

    markdown = out.with_suffix(".md").read_text()
    assert "2 x 1 MiB -> s3" in markdown and "| fast |" in markdown
    if importlib.util.find_spec("matplotlib") is not None:
        assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tiny_before_after_comparison_runs_both_installs_against_one_pair_of_servers(tmp_path: Path) -> None:
    """benchmarks/compare.py, A/A on this install: both sides deliver through the same sandbox and S3 server."""
    out = tmp_path / "compare.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--before", sys.executable, "--after",
         sys.executable, "--files", "2", "--size", "1", "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())
    for name in ("before", "after"):
        (pair,) = results["runs"][name]
        full, one = pair
        assert (full["bytes"], one["bytes"]) == (2 * 1024 * 1024, 1024 * 1024)
        assert full["cpu_s"] > 0 and full["server_cpu_s"] > 0
        assert results["summary"][name]["rounds"] == 1 and "marginal_cpu_ms_per_mb" in results["summary"][name]
    assert "== after vs before: MB/s" in run.stdout


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--files", "0", "--json", str(tmp_path / "x.json")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "--files" in run.stderr


def _sample(cpu: float, user: float, mib: int) -> Sample:
    return Sample(wall_s=1.0, cpu_s=cpu, peak_rss_mib=50, bytes=mib * 1024 * 1024, user_s=user, sys_s=cpu - user)


def test_marginal_cpu_separates_start_up_from_per_megabyte_cost() -> None:
    # 0.5 s to start, then 1.5 ms per MB (1.0 user + 0.5 kernel) at 400 MB/s after 0.8 s of wall time:
    # a 1-file and a 16-file run of 64 MiB files.
    def run(mib: int) -> Sample:
        mb = mib * 1.048576
        sample = _sample(0.5 + mb * 1.5e-3, 0.4 + mb * 1.0e-3, mib)
        sample.wall_s = 0.8 + mb / 400
        return sample

    figures = marginal_cpu([run(1024), run(1024)], [run(64), run(64)])
    assert figures["marginal_cpu_ms_per_mb"] == pytest.approx(1.5, abs=1e-3)
    assert figures["marginal_user_ms_per_mb"] == pytest.approx(1.0, abs=1e-3)
    assert figures["marginal_sys_ms_per_mb"] == pytest.approx(0.5, abs=1e-3)
    assert figures["fixed_cpu_s"] == pytest.approx(0.5, abs=1e-3)
    assert figures["sustained_mb_s"] == pytest.approx(400, abs=0.1)
    assert marginal_cpu([run(64)], [run(64)]) == {}  # one file only: nothing to tell apart


def _results(fast: float, s5cmd: float, threads: float, planet: float, sink: float, fast_net: float,
             peaks: list[float]) -> dict:
    floor = {"sha256_ms_per_mb": 0.6}

    def entry(kind: str, mb_s: float, net: float = 2.0, rss: float = 100.0) -> dict:
        return {"kind": kind, "mb_s": mb_s, "cpu_ms_per_mb": net + 0.5, "marginal_cpu_ms_per_mb": net,
                "marginal_user_ms_per_mb": net - 0.5, "marginal_sys_ms_per_mb": 0.5, "peak_rss_mib": rss}

    s3 = {"contenders": {"sink-limit": entry("limit", sink), "fast": entry("flowzero", fast, fast_net, peaks[0]),
                         "s5cmd": entry("flowzero", s5cmd), "threads": entry("flowzero", threads)}}
    local = {"contenders": {"sink-limit": entry("limit", 900), "fast": entry("flowzero", 500, fast_net, peaks[0]),
                            "planet-cli": entry("peer", planet)}}
    source = entry("limit", 2000)
    for block in (s3, local):
        report.add_ceiling_and_ratios(block, source, floor)
    scaling = [{"contender": "fast", "size_mib": size, "peak_rss_mib": peak, "destination": "s3"}
               for size, peak in zip((8, 64, 256, 1024), peaks)]
    return {"workloads": [{"destinations": {"s3": s3, "local": local}, "source_limit": source}],
            "digest_floor": floor, "settings": {"workers": 8, "part_size_mib": 16}, "scaling": scaling}


def test_goals_are_judged_from_the_numbers() -> None:
    good = report.goals(_results(fast=400, s5cmd=200, threads=150, planet=100, sink=450, fast_net=0.9,
                                 peaks=[150, 160, 165, 170]))
    # Met, except the whole-process CPU (start-up included: 0.8 ms/MB over the floor).
    assert [g["met"] for g in good] == [True, True, True, True, True, False, True, False, True, True]
    bad = report.goals(_results(fast=300, s5cmd=250, threads=200, planet=250, sink=450, fast_net=1.2,
                                peaks=[150, 160, 230, 260]))
    verdicts = {g["goal"].split(" (")[0]: g["met"] for g in bad}
    assert verdicts == {
        "S3: fast vs the s5cmd downloader": False,  # 1.2x
        "S3: fast vs the threads downloader": False,  # 1.5x
        "S3: fast vs the ceiling": False,  # 300 of 450
        "local: fast vs planet orders download": True,  # 2x
        "S3: fast client CPU per MB": False,
        "S3: the same, whole process": False,
        "local: fast client CPU per MB": False,
        "local: the same, whole process": False,
        "fast peak RSS": False,  # 260 MiB > 8 x 16 MiB + 100 MB
        "fast peak RSS flat as files grow": False,  # 260 / 160
    }


def test_a_servers_cpu_is_read_from_proc() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nprint(1, flush=True)\n"
    proc = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"1"
        assert 0.25 <= process_cpu_s(proc.pid) < 5
    finally:
        proc.kill()
        proc.wait()
    assert process_cpu_s(proc.pid) == 0.0  # gone


def test_the_bound_for_any_verifying_client_comes_from_the_probes_and_servers() -> None:
    block = {"ceiling_mb_s": 650.0, "contenders": {
        "sink-limit-put": {"kind": "limit", "mb_s": 650.0, "cpu_ms_per_mb": 0.5, "server_cpu_ms_per_mb": 2.5}}}
    source = {"kind": "limit", "mb_s": 2500.0, "cpu_ms_per_mb": 0.35, "server_cpu_ms_per_mb": 0.1}
    reach = report.verifying_client_bound(block, source, 0.6, 2)
    assert reach is not None
    # client >= 0.6 + 0.35 + 0.5 = 1.45 ms/MB, servers >= 0.1 + 2.5 = 2.6 ms/MB: 2 cores move at most 2000 / 4.05.
    assert (reach["client_ms_per_mb"], reach["servers_ms_per_mb"]) == (1.45, 2.6)
    assert reach["mb_s"] == pytest.approx(493.8, abs=0.1) and reach["of_ceiling"] == pytest.approx(0.76, abs=0.001)
    assert report.verifying_client_bound(block, None, 0.6, 2) is None  # no source probe: no bound
    del block["contenders"]["sink-limit-put"]["server_cpu_ms_per_mb"]
    assert report.verifying_client_bound(block, source, 0.6, 2) is None


def test_goal_notes_carry_the_bound() -> None:
    results = _results(fast=400, s5cmd=200, threads=150, planet=100, sink=450, fast_net=0.9, peaks=[150] * 4)
    s3 = results["workloads"][0]["destinations"]["s3"]
    s3["contenders"]["sink-limit-put"] = {"kind": "limit", "mb_s": 450.0, "cpu_ms_per_mb": 0.5,
                                          "server_cpu_ms_per_mb": 2.9}
    results["workloads"][0]["source_limit"]["server_cpu_ms_per_mb"] = 0.1
    results["machine"] = {"nproc": 2}
    notes = {g["goal"].split(" (")[0]: g["note"] for g in report.goals(results)}
    # client >= 0.6 + 2.5 (the made-up source probe) + 0.5; servers >= 3.0: 2000 / 6.6 = 303 MB/s of 450.
    assert "the most any verifying client can reach here: 303 MB/s = 67%" in notes["S3: fast vs the ceiling"]
    assert "raw receive 2.50 + raw send 0.50 = +3.00 over the floor" in notes["S3: fast client CPU per MB"]
    assert "raw receive" not in notes["local: fast client CPU per MB"]


def test_tiny_benchmark_over_tls_reports_the_verifying_tls_client_bound(tmp_path: Path) -> None:
    out = tmp_path / "tls.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--files", "2", "--size", "1", "--repeat", "1", "--warmup", "0",
         "--only", "fast", "--dest", "s3", "--tls", "--json", str(out), "--no-chart"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())
    plain, tls = results["workloads"]
    assert (plain["tls"], tls["tls"], tls["name"]) == (False, True, "2 x 1 MiB over TLS")
    assert results["settings"]["tls"] is True
    block = tls["destinations"]["s3"]
    assert set(block["contenders"]) == {"sink-limit", "sink-limit-put", "fast"}
    for name, entry in block["contenders"].items():
        assert "error" not in entry, (name, entry.get("error"))  # every image arrived intact over HTTPS
        assert entry["mb_s"] > 0
    assert tls["source_limit"]["mb_s"] > 0 and "error" not in tls["source_limit"]
    goals = {g["goal"]: g for g in results["goals"]}
    bound = goals["S3 over TLS: fast client CPU per MB (net of start-up) over the verifying TLS client's bound"]
    assert bound["measured"] is not None and "verifying TLS client >=" in bound["note"]
    assert goals["S3 over TLS: fast vs the threads downloader"]["met"] is None  # threads did not run
    assert "2 x 1 MiB over TLS -> s3" in out.with_suffix(".md").read_text()


def test_a_tiny_api_bound_run_delivers_through_flowzero_and_planets_cli(tmp_path: Path) -> None:
    """The API-bound scenario end to end on 3 orders (3 gages, one month) at Planet's limits: flowzero with one and
    three processes, then Planet's CLI on the same orders. The figures mean nothing at this size; every file must
    arrive, and every command must exit 0 (Planet's CLI once exited 2 on each order, unnoticed)."""
    from benchmarks import apibound
    from benchmarks.servers import RcloneS3

    scenario = apibound.Scenario(start="2022-01-01", end="2022-01-31", file_kib=16, workers=2)
    with RcloneS3(tmp_path / "s3", tmp_path / "rclone.log").start() as s3:
        result = apibound.run(tmp_path / "api", s3, ["threads"], scenario, say=lambda line: None)
    assert [(r["processes"], r["submit"]["orders"]) for r in result["runs"]] == [(1, 3), (3, 3)]
    for entry in result["runs"]:
        submit, check = entry["submit"], entry["check"]
        assert submit["exit_codes"] == [0] and check["exit_codes"] == [0] * entry["processes"]
        assert check["files_expected"] > 0 and check["files_delivered"] == check["files_expected"]
        assert submit["ratio"] > 1.0 and check["ratio"] > 0  # measured against a floor the limits allow
    cli = result["planet_cli"]
    assert cli["exit_codes"] == [0, 0, 0] and cli["files_delivered"] > 0 and cli["requests"] > 0
    assert {g["goal"] for g in apibound.goals(result)} == {"API-bound batch, threads, 1 process(es)",
                                                         "API-bound batch, threads, 3 process(es)"}
