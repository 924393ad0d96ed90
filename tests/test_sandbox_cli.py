"""`flowzero sandbox serve` as a user runs it: a foreground server that says where it is, stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fixtures.sandbox import order_request, search_request


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowzero", "sandbox", "serve", "--data-dir", str(tmp_path / "data"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _read_banner(process: subprocess.Popen[str]) -> dict[str, str]:
    """The printed lines up to "Press Ctrl-C", as {variable: value} plus the base URL under "url"."""
    assert process.stdout is not None
    found: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("Planet sandbox listening on "):
            found["url"] = line.split()[4]
        if line.startswith("export "):
            name, _, value = line[len("export ") :].split()[0].partition("=")
            found[name] = value
        if line.startswith("Press Ctrl-C"):
            return found
    raise AssertionError(
        f"serve exited early: {process.wait()} {process.stderr.read() if process.stderr else ''}"
    )


def test_serve_prints_its_urls_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    process = _serve(tmp_path, "--port", "0", "--file-size", "2048", "--polls-per-state", "0")
    try:
        banner = _read_banner(process)
        url = banner["url"]
        assert url.startswith("http://127.0.0.1:")
        assert banner["FLOWZERO_PLANET_API_URL"] == f"{url}/data/v1"
        assert banner["FLOWZERO_PLANET_ORDERS_URL"] == f"{url}/compute/ops/orders/v2"
        assert banner["FLOWZERO_PLANET_BASEMAPS_URL"] == f"{url}/basemaps/v1/mosaics"
        with httpx.Client(auth=("cli-key", ""), timeout=10) as client:
            search = client.post(f"{banner['FLOWZERO_PLANET_API_URL']}/quick-search", json=search_request())
            item = search.json()["features"][0]["id"]
            orders = banner["FLOWZERO_PLANET_ORDERS_URL"]
            created = client.post(orders, json=order_request([item], clip=False))
            if created.status_code == 400:  # this scene lacks surface reflectance: take a visual bundle
                created = client.post(orders, json=order_request([item], bundle="visual", clip=False))
            assert created.status_code == 202
            order = client.get(
                f"{orders}/{created.json()['id']}"
            ).json()  # --polls-per-state 0: final at once
            assert order["state"] == "success"
            image = next(r for r in order["_links"]["results"] if r["name"].endswith(".tif"))
            assert len(client.get(image["location"]).content) == 2048
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    assert code == 0
    assert "Sandbox stopped." in (process.stderr.read() if process.stderr else "")
    assert len(list((tmp_path / "data" / "orders").glob("*.json"))) == 1  # the order, kept for a restart


def test_serve_stops_on_sigterm_and_keeps_orders(tmp_path: Path) -> None:
    process = _serve(tmp_path)
    try:
        url = _read_banner(process)["url"]
        with httpx.Client(auth=("cli-key", ""), timeout=10) as client:
            item = client.post(f"{url}/data/v1/quick-search", json=search_request()).json()["features"][0][
                "id"
            ]
            created = client.post(f"{url}/compute/ops/orders/v2", json=order_request([item], bundle="visual"))
            order_id = created.json()["id"]
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
    process = _serve(tmp_path)
    try:
        url = _read_banner(process)["url"]
        with httpx.Client(auth=("cli-key", ""), timeout=10) as client:
            states = [client.get(f"{url}/compute/ops/orders/v2/{order_id}").json()["state"] for _ in range(2)]
            assert states == ["running", "success"]  # the restarted server goes on from "queued"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_on_a_busy_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "flowzero",
                "sandbox",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr
