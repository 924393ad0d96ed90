"""The poller: within the order-GET rate, the oldest order due is asked about when its slot comes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from flowzero.delivery import polling
from flowzero.delivery.polling import Poller
from flowzero.pacing import Pacer

RATE = 8.0  # order GETs per second in these tests


class PacedPlanet:
    """Answers order GETs at once; each order is ``queued`` on its first poll and ``success`` on the second.

    Its pacing is a real :class:`Pacer`, used the way :class:`flowzero.planet.client.PlanetClient` uses it:
    ``hold_slot`` waits for a slot that the thread's next ``get_order`` then spends."""

    def __init__(self, hold: bool = True) -> None:
        self.pacer = Pacer(RATE)
        self.polls: list[tuple[float, str]] = []
        self._held = threading.local()
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        if not hold:
            self.hold_slot = None  # type: ignore[assignment]  # a client that cannot hold a slot

    def hold_slot(self, endpoint: str) -> None:
        assert endpoint == "orders_get"
        self.pacer.wait()
        self._held.slot = True

    def get_order(self, order_id: str) -> dict[str, Any]:
        if not getattr(self._held, "slot", False):
            self.pacer.wait()
        self._held.slot = False
        with self._lock:
            self.polls.append((time.monotonic(), order_id))
            self._seen[order_id] = self._seen.get(order_id, 0) + 1
            state = "success" if self._seen[order_id] >= 2 else "queued"
        return {"id": order_id, "state": state}


def _poll_all(planet: Any, orders: list[str]) -> list[str]:
    finished: list[str] = []
    with Poller(planet, [(order_id, None) for order_id in orders], wait=True, timeout=30, say=lambda _: None) as p:
        for batch in p.finished():
            finished += [polled.order_id for polled in batch]
    return finished


@pytest.fixture(autouse=True)
def _short_first_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(polling, "FIRST_INTERVAL", 0.25)  # two slots: due again before the last first poll


def test_an_order_due_again_is_asked_before_orders_not_yet_asked_about() -> None:
    planet = PacedPlanet()
    orders = [f"o{i}" for i in range(1, 9)]

    finished = _poll_all(planet, orders)

    asked = [order_id for _, order_id in planet.polls]
    assert sorted(finished) == sorted(orders) and len(asked) == 2 * len(orders)
    # o1 is asked again at its first slot after 0.25 s, ahead of the five orders still waiting for a first poll
    # (four threads that had each committed to an order before its slot came would have asked those first).
    assert asked.index("o1", 1) < asked.index("o5")
    assert finished[0] == "o1"
    gaps = [b - a for (a, _), (b, _) in zip(planet.polls, planet.polls[1:])]
    assert min(gaps) > 0.8 / RATE  # and the rate holds: slots stay 1/RATE apart


def test_a_client_without_pacing_is_polled_all_the_same() -> None:
    planet = PacedPlanet(hold=False)
    orders = ["a", "b", "c"]
    assert sorted(_poll_all(planet, orders)) == orders and len(planet.polls) == 6
