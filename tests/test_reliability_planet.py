"""Reliability items 6 and 9: Planet rate-limits searches and orders; a run is killed right after Planet
accepted an order.

Everything runs against the Planet sandbox over real sockets with a real SQLite file. The 429s come from the
sandbox's ``rate_limit`` switch; the request log says what Planet saw and when. The crash is a real SIGKILL:
the child process runs the real CLI, with ``PlanetClient.create_order`` wrapped (in the child only, by the
launcher below, not by any hook in flowzero) so that the process kills itself the instant the POST has
returned, before anything is written to the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.sandbox import Sandbox

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
SUBMIT = ("submit", "--geojson", str(SALINAS), "--start-date", "2024-01-01", "--end-date", "2024-01-31",
          "--cadence", "monthly")
ORDERS_PATH = "/compute/ops/orders/v2"
API_KEY = "reliability-planet-key"


@pytest.fixture
def planet_env(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"PL_API_KEY": API_KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
              "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
              "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url, "FLOWZERO_PLANET_MAX_RETRIES": "2",
              "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def arm_before_order_post(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, **switches: Any) -> Any:
    """Set sandbox faults at the moment the order POST is about to go (after the searches); returns a
    function that disarms it."""
    from flowzero.planet.client import PlanetClient

    real = PlanetClient.create_order

    def armed(self: PlanetClient, request: dict) -> dict:
        sandbox.set_faults(**switches)
        return real(self, request)

    monkeypatch.setattr(PlanetClient, "create_order", armed)
    return lambda: monkeypatch.setattr(PlanetClient, "create_order", real)


def calls(sandbox: Sandbox, method: str, path_end: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r["method"] == method and r["path"].endswith(path_end)]


def recorded(db: str) -> tuple[list[Any], list[Any]]:
    from flowzero.storage.sqlite import SqliteOrderStore

    with SqliteOrderStore(db) as store:
        return store.list_orders(), store.pending_intents()


# -- item 6: 429 with Retry-After -----------------------------------------------------------------------------


def test_429_on_search_and_order_is_waited_out(sandbox: Sandbox, planet_env: dict[str, str],
                                               monkeypatch: pytest.MonkeyPatch, fault_ledger: Any) -> None:
    sandbox.set_faults(rate_limit=1, retry_after=1)  # the first search
    arm_before_order_post(monkeypatch, sandbox, rate_limit=1, retry_after=1)  # and the order

    result = invoke(*SUBMIT, "--json")

    assert result.exit_code == 0, result.output
    searches = calls(sandbox, "POST", "/quick-search")
    posts = calls(sandbox, "POST", ORDERS_PATH)
    assert [r["status"] for r in searches[:2]] == [429, 200]
    assert [r["status"] for r in posts] == [429, 202]  # refused, waited, accepted: one order
    for first, retry in ((searches[0], searches[1]), (posts[0], posts[1])):
        assert retry["time"] - first["time"] >= 0.95  # Retry-After: 1 was honoured
    orders, intents = recorded(planet_env["FLOWZERO_DATABASE_PATH"])
    assert len(orders) == 1 and intents == []
    fault_ledger.record(6, "429 Retry-After (search, order)", "submit", 2, survived=True)


def test_a_429_storm_longer_than_the_retries_is_waited_out(sandbox: Sandbox, planet_env: dict[str, str],
                                                          fault_ledger: Any) -> None:
    """429 is flow control: six refusals in a row, with only 2 retries allowed for real errors, still end in one
    order."""
    sandbox.set_faults(rate_limit=6, retry_after=0)
    result = invoke(*SUBMIT, "--json")
    assert result.exit_code == 0, result.output
    statuses = [r["status"] for r in sandbox.requests() if r["path"] != "/_sandbox/faults"]
    assert statuses[:7] == [429] * 6 + [200]
    assert [r["status"] for r in calls(sandbox, "POST", ORDERS_PATH)] == [202]
    orders, intents = recorded(planet_env["FLOWZERO_DATABASE_PATH"])
    assert len(orders) == 1 and intents == []
    fault_ledger.record(6, "429 storm longer than the retries", "submit", 6, survived=True)


def test_429_beyond_the_throttle_budget_is_one_clear_error(sandbox: Sandbox, planet_env: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch, fault_ledger: Any) -> None:
    db = planet_env["FLOWZERO_DATABASE_PATH"]
    monkeypatch.setenv("FLOWZERO_PLANET_THROTTLE_BUDGET", "0.3")
    sandbox.set_faults(rate_limit=1000, retry_after=0)
    search = invoke(*SUBMIT)
    assert search.exit_code == 1
    [line] = search.stderr.strip().splitlines()[-1:]
    assert line.startswith("Error: ") and "rate limited (HTTP 429)" in line and "planet.throttle_budget (0.3 s)" in line
    searches = [r["status"] for r in calls(sandbox, "POST", "/quick-search")]
    assert set(searches) == {429} and len(searches) >= 2  # paced: each refusal doubles the spacing
    refused = len(searches)
    sandbox.reset_faults()
    sandbox.clear_requests()

    disarm = arm_before_order_post(monkeypatch, sandbox, rate_limit=1000, retry_after=0)
    order = invoke(*SUBMIT)
    assert order.exit_code == 1
    last = order.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "HTTP 429" in last
    posts = calls(sandbox, "POST", ORDERS_PATH)
    assert {r["status"] for r in posts} == {429}  # never accepted
    refused += len(posts)
    orders, _ = recorded(db)
    assert orders == []
    sandbox.reset_faults()
    disarm()

    rerun = invoke(*SUBMIT)  # later, without the rate limit: ordered once
    assert rerun.exit_code == 0, rerun.output
    assert [r["status"] for r in calls(sandbox, "POST", ORDERS_PATH)][-1] == 202
    assert sum(r["status"] == 202 for r in calls(sandbox, "POST", ORDERS_PATH)) == 1
    orders, intents = recorded(db)
    assert len(orders) == 1 and intents == []
    fault_ledger.record(6, "429 beyond the throttle budget", "submit", refused, survived=True)


# -- item 9: SIGKILL between Planet accepting an order and the database commit ----------------------------------

_DIE_AFTER_POST = """
import os, signal, sys
from flowzero.planet import client

real = client.PlanetClient.create_order

def create_then_die(self, request):
    real(self, request)
    os.kill(os.getpid(), signal.SIGKILL)  # Planet has the order; nothing is recorded yet

client.PlanetClient.create_order = create_then_die
from flowzero.cli import main
sys.argv = ["flowzero", *sys.argv[1:]]
main()
"""


def test_killed_after_planet_accepted_then_rerun_places_exactly_one_order(sandbox: Sandbox,
                                                                          planet_env: dict[str, str],
                                                                          fault_ledger: Any) -> None:
    env = {**os.environ, **planet_env}
    db = planet_env["FLOWZERO_DATABASE_PATH"]

    killed = subprocess.run([sys.executable, "-c", _DIE_AFTER_POST, *SUBMIT], env=env, capture_output=True,
                            text=True, timeout=120)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [accepted] = [r for r in calls(sandbox, "POST", ORDERS_PATH) if r["status"] == 202]
    orders, intents = recorded(db)
    assert orders == [] and len(intents) == 1  # only the intent noted before the POST survived

    rerun = subprocess.run([sys.executable, "-m", "flowzero", *SUBMIT, "--json"], env=env, capture_output=True,
                           text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert calls(sandbox, "POST", ORDERS_PATH) == [accepted]  # no second order was placed
    assert calls(sandbox, "GET", ORDERS_PATH)  # the rerun asked Planet for orders of that name
    at_planet = httpx.get(sandbox.orders_url, auth=(API_KEY, "")).json()["orders"]
    orders, intents = recorded(db)
    assert [o.order_id for o in orders] == [o["id"] for o in at_planet]  # the one order, recorded
    assert intents == []
    assert orders[0].order_id in rerun.stdout
    fault_ledger.record(9, "SIGKILL after the order POST", "submit", 1, survived=True)
