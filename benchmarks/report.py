"""Turning measurements into what people read: ceilings and ratios, the goals of ``fast``, tables and a chart."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# What `fast` must show (see docs/performance.md).
S3_VS_S5CMD = 1.5
S3_VS_THREADS = 2.0
TLS_VS_THREADS = 2.0
TLS_VS_S5CMD = 3.0
TLS_CPU_OVER_BOUND_MS = 0.1  # fast's CPU per MB over TLS vs the verifying TLS client's (floor + TLS receive + send)
OF_CEILING = 0.8
LOCAL_VS_PLANET = 1.5
CPU_OVER_FLOOR_MS = 0.4
MEMORY_SLACK_MB = 100
FLAT_GROWTH = 1.2  # peak RSS at the largest file may be at most this much above the smallest multipart size's

ORDER = ("source-limit", "sink-limit", "sink-limit-put", "fast", "s5cmd", "threads", "planet-cli+s5cmd", "planet-cli")


# -- derived figures ----------------------------------------------------------------------------------------


def add_ceiling_and_ratios(block: dict[str, Any], source: Mapping[str, Any] | None,
                           floor: Mapping[str, float]) -> None:
    """Add to one destination's results: the limits, the ceiling, each contender's share of it, ratios."""
    contenders = block["contenders"]
    limits = {}
    if source and source.get("mb_s"):
        limits["source"] = source["mb_s"]
    sinks = [e["mb_s"] for n, e in contenders.items() if n.startswith("sink-limit") and e.get("mb_s")]
    if sinks:
        limits["sink"] = max(sinks)  # the sink takes at least what its best probe pushed into it
    block["limits_mb_s"] = limits
    if limits:
        limited_by = min(limits, key=lambda k: limits[k])
        block["ceiling_mb_s"], block["limited_by"] = limits[limited_by], limited_by
    sha256 = floor.get("sha256_ms_per_mb")
    for entry in contenders.values():
        if "mb_s" not in entry:
            continue
        if block.get("ceiling_mb_s"):
            entry["of_ceiling"] = round(entry["mb_s"] / block["ceiling_mb_s"], 3)
        if sha256 is not None and entry.get("kind") != "limit":
            entry["gross_cpu_over_floor_ms_per_mb"] = round(entry["cpu_ms_per_mb"] - sha256, 3)
            if "marginal_cpu_ms_per_mb" in entry:
                entry["cpu_over_floor_ms_per_mb"] = round(entry["marginal_cpu_ms_per_mb"] - sha256, 3)
    fast = contenders.get("fast", {}).get("mb_s")
    block["ratios"] = {}
    if fast:
        for name, entry in contenders.items():
            if name != "fast" and entry.get("kind") != "limit" and entry.get("mb_s"):
                block["ratios"][f"fast/{name}"] = round(fast / entry["mb_s"], 2)


def verifying_client_bound(block: Mapping[str, Any], source: Mapping[str, Any] | None,
                           floor_ms: float | None, cores: int | None) -> dict[str, float] | None:
    """The most any client that receives, hashes and uploads every byte could reach on this machine (S3).

    Such a client needs at least the digest floor + a raw receive (the source probe's CPU per MB) + a raw send
    (the raw-PUT probe's); the servers need at least what they took during those two probes; all of it shares
    ``cores``. Every figure comes from the same run and none from ``fast``, so when this bound is below a goal,
    the goal is out of reach here for any verifying client, not only for ``fast``.
    """
    put = block.get("contenders", {}).get("sink-limit-put", {})
    needed = (source or {}).get("cpu_ms_per_mb"), put.get("cpu_ms_per_mb"), floor_ms, cores
    servers = (source or {}).get("server_cpu_ms_per_mb"), put.get("server_cpu_ms_per_mb")
    if None in needed or None in servers or not block.get("ceiling_mb_s"):
        return None
    receive, send, floor, ncores = needed
    client = floor + receive + send
    server = sum(servers)
    rate = ncores * 1000 / (client + server)
    return {"client_ms_per_mb": round(client, 3), "raw_receive_ms_per_mb": receive, "raw_send_ms_per_mb": send,
            "servers_ms_per_mb": round(server, 3), "mb_s": round(rate, 1),
            "of_ceiling": round(rate / block["ceiling_mb_s"], 3)}


def _goal(text: str, target: str, measured: Any, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"goal": text, "target": target, "measured": measured, "met": met, "note": note}


def goals(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The goals of ``fast`` judged on the main (first) workload and the scaling run; met is None if unmeasured."""
    main = results["workloads"][0]
    s3 = main["destinations"].get("s3", {})
    local = main["destinations"].get("local", {})
    floor = results["digest_floor"].get("sha256_ms_per_mb")
    out = []

    def ratio(block: Mapping[str, Any], other: str, target: float, text: str) -> None:
        value = block.get("ratios", {}).get(f"fast/{other}")
        entries = block.get("contenders", {})
        note = ""
        if entries.get("fast", {}).get("sustained_mb_s") and entries.get(other, {}).get("sustained_mb_s"):
            sustained = entries["fast"]["sustained_mb_s"] / entries[other]["sustained_mb_s"]
            note = f"sustained rates (start-up aside): {sustained:.2f}x"
        out.append(_goal(text, f">= {target}x", value, None if value is None else value >= target, note))

    ratio(s3, "s5cmd", S3_VS_S5CMD, "S3: fast vs the s5cmd downloader")
    ratio(s3, "threads", S3_VS_THREADS, "S3: fast vs the threads downloader")
    fast_s3 = s3.get("contenders", {}).get("fast", {})
    share = fast_s3.get("of_ceiling")
    note = ""
    if fast_s3.get("sustained_mb_s") and s3.get("ceiling_mb_s"):
        note = f"sustained rate (start-up aside): {fast_s3['sustained_mb_s'] / s3['ceiling_mb_s']:.0%}"
    reach = verifying_client_bound(s3, main.get("source_limit"), floor, results.get("machine", {}).get("nproc"))
    if reach:
        note += (f"; the most any verifying client can reach here: {reach['mb_s']:.0f} MB/s = "
                 f"{reach['of_ceiling']:.0%} ({results['machine']['nproc']} cores shared: client >= "
                 f"{reach['client_ms_per_mb']:.2f} ms/MB, servers >= {reach['servers_ms_per_mb']:.2f} ms/MB)")
    out.append(_goal(f"S3: fast vs the ceiling (lower of source and sink, {s3.get('ceiling_mb_s')} MB/s)",
                     f">= {OF_CEILING:.0%}", share, None if share is None else share >= OF_CEILING, note))
    ratio(local, "planet-cli", LOCAL_VS_PLANET, "local: fast vs planet orders download")
    for name, block in (("S3", s3), ("local", local)):
        fast = block.get("contenders", {}).get("fast", {})
        over = fast.get("cpu_over_floor_ms_per_mb")
        gross = fast.get("gross_cpu_over_floor_ms_per_mb")
        note = ""
        if "marginal_user_ms_per_mb" in fast and floor is not None:
            note = (f"user-space {fast['marginal_user_ms_per_mb'] - floor:+.2f} over the floor, kernel "
                    f"{fast['marginal_sys_ms_per_mb']:.2f} ms/MB")
        if name == "S3" and reach:
            note += (f"; any verifying client here: >= raw receive {reach['raw_receive_ms_per_mb']:.2f} + raw send "
                     f"{reach['raw_send_ms_per_mb']:.2f} = +{reach['client_ms_per_mb'] - (floor or 0):.2f} "
                     "over the floor")
        out.append(_goal(f"{name}: fast client CPU per MB (net of fixed start-up) over the sha256 floor "
                         f"({floor} ms/MB)", f"<= {CPU_OVER_FLOOR_MS} ms/MB", over,
                         None if over is None else over <= CPU_OVER_FLOOR_MS, note))
        out.append(_goal(f"{name}: the same, whole process (start-up included)", f"<= {CPU_OVER_FLOOR_MS} ms/MB",
                         gross, None if gross is None else gross <= CPU_OVER_FLOOR_MS))
    settings = results["settings"]
    bound = settings["workers"] * settings["part_size_mib"] * 1.048576 + MEMORY_SLACK_MB  # MiB*1.048576 = MB
    peaks = [block["contenders"]["fast"]["peak_rss_mib"] * 1.048576
             for workload in results["workloads"] for block in workload["destinations"].values()
             if block["contenders"].get("fast", {}).get("peak_rss_mib")]
    peaks += [p["peak_rss_mib"] * 1.048576 for p in results.get("scaling", [])
              if p["contender"] == "fast" and p.get("peak_rss_mib")]
    worst = round(max(peaks), 1) if peaks else None
    out.append(_goal("fast peak RSS (MB), every run", f"<= workers x part + {MEMORY_SLACK_MB} = {bound:.0f} MB",
                     worst, None if worst is None else worst <= bound))
    growth = scaling_growth(results.get("scaling", []), settings["part_size_mib"])
    out.append(_goal("fast peak RSS flat as files grow (largest / smallest multipart size)",
                     f"<= {FLAT_GROWTH}x", growth, None if growth is None else growth <= FLAT_GROWTH))
    for workload in results["workloads"]:
        if workload.get("tls"):
            out += tls_goals(workload, floor, results.get("machine", {}).get("nproc"))
    if results.get("api_bound"):
        from benchmarks.apibound import goals as api_goals

        out.extend(api_goals(results["api_bound"]))
    return out


def tls_goals(workload: Mapping[str, Any], floor: float | None, cores: int | None) -> list[dict[str, Any]]:
    """The goals of ``fast`` over HTTPS: its speed against threads and s5cmd, and its CPU per MB against the
    most frugal verifying TLS client (sha256 floor + curl's TLS receive + curl's TLS send, this same run)."""
    s3 = workload["destinations"].get("s3", {})
    out = []
    for other, target in (("threads", TLS_VS_THREADS), ("s5cmd", TLS_VS_S5CMD)):
        value = s3.get("ratios", {}).get(f"fast/{other}")
        out.append(_goal(f"S3 over TLS: fast vs the {other} downloader", f">= {target}x", value,
                         None if value is None else value >= target))
    reach = verifying_client_bound(s3, workload.get("source_limit"), floor, cores)
    fast = s3.get("contenders", {}).get("fast", {})
    net = fast.get("marginal_cpu_ms_per_mb")
    over = None if reach is None or net is None else round(net - reach["client_ms_per_mb"], 3)
    note = ""
    if reach:
        note = (f"verifying TLS client >= {reach['client_ms_per_mb']:.2f} ms/MB (floor {floor} + TLS receive "
                f"{reach['raw_receive_ms_per_mb']:.2f} + TLS send {reach['raw_send_ms_per_mb']:.2f}); the most any "
                f"verifying client can reach here over TLS: {reach['mb_s']:.0f} MB/s")
    out.append(_goal("S3 over TLS: fast client CPU per MB (net of start-up) over the verifying TLS client's bound",
                     f"<= {TLS_CPU_OVER_BOUND_MS} ms/MB", over, None if over is None else over <= TLS_CPU_OVER_BOUND_MS,
                     note))
    return out


def scaling_growth(points: list[Mapping[str, Any]], part_size_mib: int) -> float | None:
    """Peak RSS of fast at the largest file size over that at the smallest size that needs multipart."""
    fast = sorted((p for p in points if p["contender"] == "fast" and p.get("peak_rss_mib")),
                  key=lambda p: p["size_mib"])
    multipart = [p for p in fast if p["size_mib"] > part_size_mib]
    if len(multipart) < 2:
        return None
    return round(multipart[-1]["peak_rss_mib"] / multipart[0]["peak_rss_mib"], 2)


# -- the machine ----------------------------------------------------------------------------------------------


def machine_info(load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "ram_gib": ram_gib, "kernel": platform.release(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after]}


def tool_versions(tools: Mapping[str, str]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for name, path in tools.items():
        try:
            text = subprocess.run([path, "version" if name == "s5cmd" else "--version"], capture_output=True,
                                  text=True, timeout=30).stdout
            versions[name] = text.splitlines()[0].strip() if text else "?"
        except (OSError, subprocess.SubprocessError):
            versions[name] = "?"
    try:
        from importlib.metadata import version

        versions["planet"] = version("planet")
    except Exception:
        pass
    try:
        from flowzero import _fast

        versions["flowzero._fast"] = _fast.version()
    except Exception:
        pass
    return versions


# -- tables -------------------------------------------------------------------------------------------------

COLUMNS = ("contender", "MB/s", "of ceiling", "sustained MB/s", "wall s", "CPU ms/MB", "net ms/MB (usr+sys)",
           "fixed CPU s", "servers ms/MB", "peak RSS MiB", "spread")


def _rows(block: Mapping[str, Any], source: Mapping[str, Any] | None) -> list[list[str]]:
    entries = dict(block["contenders"])
    if source:
        entries = {"source-limit": source, **entries}
    rows = []
    for name in sorted(entries, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        e = entries[name]
        if "mb_s" not in e:
            rows.append([name, "failed", *[""] * (len(COLUMNS) - 3), e.get("error", "")[:60]])
            continue
        share = f"{e['mb_s'] / block['ceiling_mb_s']:.0%}" if block.get("ceiling_mb_s") else ""
        net = (f"{e['marginal_cpu_ms_per_mb']:.2f} ({e['marginal_user_ms_per_mb']:.2f}+"
               f"{e['marginal_sys_ms_per_mb']:.2f})" if "marginal_cpu_ms_per_mb" in e else "")
        fixed = f"{e['fixed_cpu_s']:.2f}" if "fixed_cpu_s" in e else ""
        sustained = f"{e['sustained_mb_s']:.0f}" if "sustained_mb_s" in e else ""
        servers = f"{e['server_cpu_ms_per_mb']:.2f}" if "server_cpu_ms_per_mb" in e else ""
        rows.append([name, f"{e['mb_s']:.0f}", share, sustained, f"{e['wall_s']:.2f}",
                     f"{e['cpu_ms_per_mb']:.2f}", net, fixed, servers, f"{e['peak_rss_mib']:.0f}",
                     f"±{e['spread_pct'] / 2:.0f} % (n={len(e.get('runs', []))})"])
    return rows


def _title(workload: Mapping[str, Any], destination: str, block: Mapping[str, Any]) -> str:
    ceiling = block.get("ceiling_mb_s")
    limit = f"; ceiling {ceiling:.0f} MB/s ({block.get('limited_by')} limit)" if ceiling else ""
    return f"{workload['name']} -> {destination}{limit}"


def _ratios(block: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}x" for k, v in block.get("ratios", {}).items())


def _met(goal: Mapping[str, Any]) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[goal["met"]]


def print_tables(results: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    floor = results["digest_floor"]
    for workload in results["workloads"]:
        for destination, block in workload["destinations"].items():
            table = Table(title=_title(workload, destination, block))
            for column in COLUMNS:
                table.add_column(column, justify="left" if column == "contender" else "right")
            for row in _rows(block, workload.get("source_limit")):
                table.add_row(*row)
            console.print(table)
            console.print(f"  ratios: {_ratios(block)}; digest floor sha256 {floor.get('sha256_ms_per_mb')} ms/MB")
    if results.get("scaling"):
        table = Table(title="scaling: file size vs throughput and peak RSS")
        for column in ("contender", "size MiB", "files", "MB/s", "peak RSS MiB"):
            table.add_column(column, justify="right")
        for p in results["scaling"]:
            table.add_row(p["contender"], str(p["size_mib"]), str(p["files"]), f"{p.get('mb_s') or 0:.0f}",
                          f"{p.get('peak_rss_mib') or 0:.0f}")
        console.print(table)
    table = Table(title="goals of fast")
    for column in ("goal", "target", "measured", "result", "note"):
        table.add_column(column)
    for goal in results["goals"]:
        table.add_row(goal["goal"], goal["target"], str(goal["measured"]), _met(goal), goal.get("note", ""))
    console.print(table)


def markdown(results: Mapping[str, Any]) -> str:
    """The same tables in Markdown, for docs/performance.md."""
    m = results["machine"]
    floor = results["digest_floor"]
    lines = [f"Measured {results['created']} on {m['nproc']} cores ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
             f"load average {m['load_before'][0]} before / {m['load_after'][0]} after; "
             f"{results['settings']['workers']} workers, {results['settings']['part_size_mib']} MiB parts, "
             f"median of {results['settings']['repeat']} runs after {results['settings']['warmup']} warm-up; "
             f"S3 server: {results['settings'].get('s3_server')}; sha256 floor "
             f"{floor.get('sha256_ms_per_mb')} ms/MB (md5 {floor.get('md5_ms_per_mb')}).", ""]
    for workload in results["workloads"]:
        for destination, block in workload["destinations"].items():
            lines += [f"**{_title(workload, destination, block)}**", "",
                      "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            lines += ["| " + " | ".join(row) + " |" for row in _rows(block, workload.get("source_limit"))]
            lines += ["", f"Ratios: {_ratios(block)}.", ""]
    if results.get("scaling"):
        lines += ["**Scaling** (one run per point)", "", "| contender | size MiB | files | MB/s | peak RSS MiB |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['contender']} | {p['size_mib']} | {p['files']} | {p.get('mb_s') or 0:.0f} | "
                  f"{p.get('peak_rss_mib') or 0:.0f} |" for p in results["scaling"]]
        lines.append("")
    if results.get("api_bound"):
        lines += api_bound_markdown(results["api_bound"])
    lines += ["**Goals of `fast`**", "", "| goal | target | measured | result | note |", "|---|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['target']} | {g['measured']} | {_met(g)} | {g.get('note', '')} |"
              for g in results["goals"]]
    return "\n".join(lines) + "\n"


def api_bound_markdown(api: Mapping[str, Any]) -> list[str]:
    """The API-bound scenario: wall time against the rate floor per phase, requests, refusals, files."""
    lines = ["**API-bound: a 12-order batch at Planet's rate limits** (wall / rate floor; refused of requests)", "",
             "| downloader | processes | batch-submit | batch-check-status --wait | requests | refused | files |",
             "|---|---|---|---|---|---|---|"]
    for run in api.get("runs", []):
        submit, check = run["submit"], run["check"]
        lines.append(f"| {run['downloader']} | {run['processes']} | {submit['wall_s']} s / {submit['floor_s']} s "
                     f"({submit['ratio']}x) | {check.get('wall_s')} s / {check.get('floor_s')} s "
                     f"({check.get('ratio')}x) | {submit['requests'] + check.get('requests', 0)} | "
                     f"{submit['refused'] + check.get('refused', 0)} | "
                     f"{check.get('files_delivered')}/{check.get('files_expected')} |")
    cli = api.get("planet_cli")
    if cli:
        lines.append(f"| planet orders download ({cli['orders']} orders, one by one) | 1 | | {cli['wall_s']} s / "
                     f"{cli['floor_s']} s ({cli['ratio']}x) | {cli['requests']} | {cli['refused']} | "
                     f"{cli['files_delivered']} (all assets) |")
    return [*lines, ""]


# -- chart --------------------------------------------------------------------------------------------------


def chart(results: Mapping[str, Any], path: Path) -> bool:
    """Bars of MB/s per contender (each destination of the main workload) and the scaling run; False if no
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    main = results["workloads"][0]
    panels = list(main["destinations"].items())
    scaling = results.get("scaling") or []
    count = len(panels) + (1 if scaling else 0)
    fig, axes = plt.subplots(1, count, figsize=(6.2 * count, 4.6), squeeze=False)
    colors = {"limit": "#bbbbbb", "flowzero": "#2a7ab9", "peer": "#d98c2b"}
    for ax, (destination, block) in zip(axes[0], panels):
        entries = dict(block["contenders"])
        if main.get("source_limit"):
            entries = {"source-limit": main["source_limit"], **entries}
        names = [n for n in sorted(entries, key=lambda n: ORDER.index(n) if n in ORDER else 99)
                 if entries[n].get("mb_s")]
        values = [entries[n]["mb_s"] for n in names]
        # The source limit is often far above the rest: clip its bar so the others stay readable.
        others = [entries[n]["mb_s"] for n in names if n != "source-limit"]
        top = max([*others, 1]) * 1.25
        shown = [min(v, top) for v in values]
        bars = ax.barh(names, shown, color=[colors.get(entries[n].get("kind", "limit"), "#888") for n in names])
        for bar, name in zip(bars, names):
            e = entries[name]
            clipped = " (bar cut)" if e["mb_s"] > top else ""
            net = f", net {e['marginal_cpu_ms_per_mb']:.2f}" if "marginal_cpu_ms_per_mb" in e else ""
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {e['mb_s']:.0f} MB/s{clipped}; {e['cpu_ms_per_mb']:.2f} ms/MB{net}", va="center",
                    fontsize=8)
        if block.get("ceiling_mb_s"):
            ax.axvline(block["ceiling_mb_s"], color="#c0392b", linestyle="--", linewidth=1,
                       label=f"ceiling {block['ceiling_mb_s']:.0f} MB/s ({block.get('limited_by')})")
            ax.legend(fontsize=8, loc="lower right")
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.9)
        ax.set_xlabel("MB/s (median); CPU ms per MB: whole process, net of start-up")
        ax.set_title(f"{main['name']} -> {destination}", fontsize=10)
    if scaling:
        ax = axes[0][-1]
        ax.set_xscale("log", base=2)
        for name, marker in (("fast", "o"), ("threads", "s")):
            points = sorted((p for p in scaling if p["contender"] == name and p.get("peak_rss_mib")),
                            key=lambda p: p["size_mib"])
            if points:
                sizes, peaks = [p["size_mib"] for p in points], [p["peak_rss_mib"] for p in points]
                ax.plot(sizes, peaks, marker=marker, label=f"{name} peak RSS")
                for p in points:
                    ax.annotate(f"{p.get('mb_s') or 0:.0f} MB/s", (p["size_mib"], p["peak_rss_mib"]),
                                textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
                ax.set_xticks(sizes, [str(x) for x in sizes])
        settings = results["settings"]
        bound_mib = settings["workers"] * settings["part_size_mib"] + MEMORY_SLACK_MB / 1.048576
        ax.axhline(bound_mib, color="#c0392b", linestyle="--", linewidth=1, label="workers x part + 100 MB")
        ax.set_xlabel("file size (MiB)")
        ax.set_ylabel("peak RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"scaling -> {scaling[0]['destination']}", fontsize=10)
        ax.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"flowzero downloaders, {m['nproc']} cores {m['cpu_model']}, {results['created']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
