"""Issue #19 item 1: two overlapping runs never place the same order twice.

Run A claims its order's intent and POSTs; the sandbox holds the POST (``create_order_delay_ms``), so Planet
neither has nor lists the order yet. Run B starts meanwhile: it must leave A's live intent alone (not resolve it
as "never placed"), wait for A, and find the order A recorded; with a shorter wait it reports the order as being
placed by another run and posts nothing. Real sockets, real SQLite files and a real PostgreSQL; in processes
(the CLI, as a user runs it twice) and in threads (separate store connections).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flowzero.config import Config, StorageConfig
from flowzero.sandbox import Sandbox
from flowzero.storage.opening import open_store

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
SUBMIT = ("submit", "--geojson", str(SALINAS), "--start-date", "2024-01-01", "--end-date", "2024-01-31",
          "--cadence", "monthly", "--json")
ORDERS_PATH = "/compute/ops/orders/v2"
API_KEY = "race-key"


def _config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Config, dict[str, str]]:
    """The store's config for this test, and the same as environment variables for a CLI process."""
    config = Config()
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        config.storage = StorageConfig(backend="postgres", url=url)
        return config, {"FLOWZERO_STORAGE_BACKEND": "postgres", "FLOWZERO_DATABASE_URL": url}
    config.database_path = str(tmp_path / "orders.db")
    return config, {"FLOWZERO_DATABASE_PATH": config.database_path}


def _wait_for_pending_intent(config: Config, timeout: float = 60.0) -> dict[str, Any]:
    """Run A's pending intent, once written (A is then about to POST, or posting)."""
    store = open_store(config)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = store.pending_intents()
            if pending:
                return pending[0]
            time.sleep(0.02)
    finally:
        store.close()
    raise AssertionError("run A never claimed its intent")


def _order_posts(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r["method"] == "POST" and r["path"] == ORDERS_PATH]


def _settled(config: Config) -> tuple[list[Any], list[Any]]:
    store = open_store(config)
    try:
        return store.list_orders(), store.pending_intents()
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_second_cli_run_during_the_first_runs_order_post_places_nothing(
        backend: str, sandbox: Sandbox, tmp_path: Path, request: pytest.FixtureRequest, fault_ledger: Any) -> None:
    config, store_env = _config(backend, tmp_path, request)
    env = {**os.environ, **store_env, "PL_API_KEY": API_KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
           "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url, "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url}
    sandbox.set_faults(create_order_delay_ms=2500)  # A's POST: Planet has no order, lists none, for 2.5 s
    command = [sys.executable, "-m", "flowzero", *SUBMIT]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        intent = _wait_for_pending_intent(config)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        out, err = first.communicate(timeout=120)

    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in err + second.stderr
    assert len(_order_posts(sandbox)) == 1  # exactly one order placed at Planet: quota spent once
    [placed] = json.loads(out)["orders"]
    [found] = json.loads(second.stdout)["orders"]
    assert (placed["outcome"], found["outcome"]) == ("ordered", "exists")
    assert found["order_id"] == placed["order_id"] and found["order_name"] == intent["order_name"]
    orders, pending = _settled(config)
    assert [o.order_id for o in orders] == [placed["order_id"]] and pending == []
    fault_ledger.record(1, "second run during the order POST", f"submit ({backend})", 1, survived=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_runs_in_threads_wait_for_the_live_owner_or_report_it_and_post_nothing(
        backend: str, sandbox: Sandbox, sandbox_config: Config, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    from flowzero.aoi import load_aoi
    from flowzero.ordering.submit import ELSEWHERE, EXISTS, ORDERED, Owner, submit_orders
    from flowzero.planet.client import PlanetClient
    from flowzero.providers.psscope import PSScopeProvider

    store_config, _ = _config(backend, tmp_path, request)
    sandbox_config.storage, sandbox_config.database_path = store_config.storage, store_config.database_path

    def plan() -> list[Any]:
        client = PlanetClient.from_config(sandbox_config)
        scenes = PSScopeProvider(client, sandbox_config)
        found = scenes.search(load_aoi(SALINAS), date(2024, 1, 1), date(2024, 1, 31), cadence="monthly")
        return scenes.plan(found)

    def run(owner: Owner) -> Any:
        store = open_store(store_config)
        try:
            return submit_orders(plan(), store, PlanetClient.from_config(sandbox_config), owner=owner)
        finally:
            store.close()

    results: dict[str, Any] = {}
    sandbox.set_faults(create_order_delay_ms=1500)
    first = threading.Thread(target=lambda: results.update(first=run(Owner())))
    first.start()
    _wait_for_pending_intent(store_config)
    [hurried] = run(Owner(wait_seconds=0.1))  # gives up waiting while A's POST is still in flight
    [patient] = run(Owner(wait_seconds=30))  # waits until A is done
    first.join(timeout=60)

    [placed] = results["first"]
    assert placed.outcome == ORDERED
    assert hurried.outcome == ELSEWHERE and hurried.holder and hurried.order is None
    assert patient.outcome == EXISTS and patient.order.order_id == placed.order.order_id
    assert len(_order_posts(sandbox)) == 1
    orders, pending = _settled(store_config)
    assert [o.order_id for o in orders] == [placed.order.order_id] and pending == []


def test_cli_reports_an_order_another_run_is_placing_with_exit_status_1(
        sandbox: Sandbox, sandbox_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from flowzero.cli import cli
    from flowzero.ordering import submit

    for key, value in {"PL_API_KEY": API_KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
                       "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
                       "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db")}.items():
        monkeypatch.setenv(key, value)
    dry = CliRunner().invoke(cli, [*SUBMIT, "--dry-run"])
    [planned] = json.loads(dry.stdout)["orders"]
    store = open_store(Config(database_path=str(tmp_path / "orders.db")))
    assert store.claim_intent(planned["order_name"], {}, "other-host:4242:abcdef", 60).taken  # a live run elsewhere
    store.close()
    monkeypatch.setattr(submit, "INTENT_WAIT_SECONDS", 0.2)

    result = CliRunner().invoke(cli, list(SUBMIT[:-1]))

    assert result.exit_code == 1, result.output
    assert "being ordered by another run (other-host:4242:abcdef)" in result.stdout
    assert "nothing placed here" in result.stdout and "Traceback" not in result.output
    assert _order_posts(sandbox) == []
