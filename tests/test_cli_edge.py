"""The CLI's edge: every error, Click's usage errors included, is one line on stderr with a non-zero status."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "No such option '--bogus'"),
        (["nocommand"], "No such command 'nocommand'"),
        (["db", "list-orders", "--nope"], "run 'flowzero db list-orders --help'"),
        (["db", "get"], "Missing argument 'ORDER_ID'"),
        (["submit", "--geojson", "x.geojson"], "Missing option"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    run = subprocess.run([sys.executable, "-m", "flowzero", *args], capture_output=True, text=True)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("Error: ") and expected in lines[0]
    assert run.stdout == ""
