"""The order-store contract, run against every backend: what a third backend must pass.

Each test runs once per backend (``sqlite`` on a real file, ``postgres`` on a real server started by
``tests/fixtures/postgres.py``), through ``open_store`` as flowzero itself opens stores. Covered: every
``OrderStore`` method, intents and intent claims, copies between stores, claims (expiry and takeover, several
threads and several processes claiming at once: exactly one wins), migrations applied once by 8 processes opening
a new database.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from flowzero.config import Config, StorageConfig
from flowzero.errors import StorageError
from flowzero.models import Order
from flowzero.storage import NOT_REORDERABLE_STATES, OrderStore
from flowzero.storage.opening import open_store

BACKENDS = ("sqlite", "postgres")
PROCESSES = 8
THREADS = 8
MakeOrder = Callable[..., Order]


@dataclass
class Backend:
    """One backend under test: how to open it, and how to look at what it stored underneath."""

    name: str
    config: Config
    target: str  # what a worker process needs to open it: a file path or a URL
    opened: list[Any] = field(default_factory=list)

    def open(self) -> Any:
        store = open_store(self.config)
        self.opened.append(store)
        return store

    def raw_text(self) -> str:
        """Everything stored in the orders and intents tables, as text."""
        if self.name == "sqlite":
            import apsw

            conn = apsw.Connection(self.target)
            try:
                rows = [*conn.execute("SELECT * FROM orders"), *conn.execute("SELECT * FROM order_intents")]
            finally:
                conn.close()
            return "\n".join(repr(tuple(row)) for row in rows)
        import psycopg

        with psycopg.connect(self.target) as conn:
            rows = [*conn.execute("SELECT o::text FROM orders o"), *conn.execute("SELECT i::text FROM order_intents i")]
        return "\n".join(row[0] for row in rows)

    def execute(self, sql: str) -> None:
        if self.name == "sqlite":
            import apsw

            conn = apsw.Connection(self.target)
            try:
                conn.execute(sql)
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.target, autocommit=True) as conn:
            conn.execute(sql.encode())


def _config_for(name: str, target: str) -> Config:
    config = Config()
    if name == "postgres":
        config.storage = StorageConfig(backend="postgres", url=target)
    else:
        config.database_path = target
    return config


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        target = request.getfixturevalue("postgres_url")
    else:
        target = str(tmp_path / "state" / "flowzero.db")
    under_test = Backend(request.param, _config_for(request.param, target), target)
    yield under_test
    for store in under_test.opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> Any:
    return backend.open()


def _ids(orders: list[Order]) -> list[str]:
    return [o.order_id for o in orders]


# -- the backend itself ----------------------------------------------------------------------------------------


def test_backend_is_an_order_store_selected_by_its_name(backend: Backend, store: Any) -> None:
    from flowzero.storage.migrate import bundled_migrations

    assert isinstance(store, OrderStore)
    assert store.name == backend.name
    assert "pg-Secret" not in store.location and "pg-Secret" not in repr(store)
    stats = store.get_stats()
    assert stats["backend"] == backend.name and stats["database"] == store.location
    newest = bundled_migrations()[-1].version  # every backend is at the same schema level
    assert stats["schema_version"] == newest == store.schema_version


# -- orders -----------------------------------------------------------------------------------------------------


def test_save_and_get_round_trip_every_field(store: Any, make_order: MakeOrder) -> None:
    order = make_order("o-1", batch_id="b-1", batch_order=True, clipped=False, order_type="PSScope",
                       order_name="SalinasRiver_2024-01", mosaic_name=None, quota_hectares=22150.125,
                       aoi_area_sqkm=0.1 + 0.2, metadata={"item_ids": ["a", "b"], "coverage": 99.5, "n": None})
    store.save_order(order)
    got = store.get_order("o-1")
    assert got is not None
    for name in ("order_id", "aoi_name", "order_type", "batch_id", "start_date", "end_date", "status",
                 "num_bands", "product_bundle", "clipped", "aoi_area_sqkm", "scenes_selected", "scenes_found",
                 "quota_hectares", "batch_order", "mosaic_name", "order_name", "metadata"):
        assert getattr(got, name) == getattr(order, name), name
    assert got.clipped is False and got.batch_order is True
    assert got.created_at and got.created_at.endswith("Z") and got.updated_at == got.created_at
    assert store.order_exists("o-1") and not store.order_exists("o-2")
    assert store.get_order("o-2") is None


def test_save_order_upserts_and_keeps_created_at(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1", created_at="2024-02-01T10:00:00.000Z"))
    store.save_order(make_order("o-1", status="running", scenes_selected=7, created_at="2030-01-01T00:00:00.000Z"))
    got = store.get_order("o-1")
    assert got is not None
    assert (got.status, got.scenes_selected, got.created_at) == ("running", 7, "2024-02-01T10:00:00.000Z")
    assert got.updated_at is not None and got.updated_at > got.created_at
    assert _ids(store.list_orders()) == ["o-1"]


def test_save_order_refuses_an_order_without_id_or_aoi(store: Any) -> None:
    with pytest.raises(StorageError, match="order_id"):
        store.save_order(Order(order_id="", aoi_name="x"))
    with pytest.raises(StorageError, match="aoi_name"):
        store.save_order(Order(order_id="o-1", aoi_name=" "))
    assert store.list_orders() == []


def test_find_existing_order_only_blocks_on_live_states(store: Any, make_order: MakeOrder) -> None:
    for i, state in enumerate(("failed", "cancelled", *NOT_REORDERABLE_STATES)):
        store.save_order(make_order(f"o-{state}", aoi_name=f"aoi-{state}", status=state,
                                    created_at=f"2024-01-0{i + 1}T00:00:00.000Z"))
    for state in NOT_REORDERABLE_STATES:
        found = store.find_existing_order(f"aoi-{state}", "2024-01-01", "2024-01-31")
        assert found is not None and found.order_id == f"o-{state}"
    assert store.find_existing_order("aoi-failed", "2024-01-01", "2024-01-31") is None
    assert store.find_existing_order("aoi-cancelled", "2024-01-01", "2024-01-31") is None
    assert store.find_existing_order("aoi-success", "2024-01-01", "2024-02-29") is None
    assert store.find_existing_order("nowhere", "2024-01-01", "2024-01-31") is None


def test_find_existing_order_matches_missing_dates_product_and_type_newest_first(store: Any,
                                                                                 make_order: MakeOrder) -> None:
    store.save_order(make_order("mosaic-old", start_date=None, end_date=None, order_type="Basemap",
                                product_bundle=None, mosaic_name="global_monthly_2024_01_mosaic",
                                created_at="2024-01-01T00:00:00.000Z"))
    store.save_order(make_order("mosaic-new", start_date=None, end_date=None, order_type="Basemap",
                                product_bundle=None, created_at="2024-03-01T00:00:00.000Z"))
    store.save_order(make_order("sr", product_bundle="analytic_sr_udm2", created_at="2024-01-01T00:00:00.000Z"))
    store.save_order(make_order("plain", product_bundle="analytic_udm2", created_at="2024-02-01T00:00:00.000Z"))
    found = store.find_existing_order("SalinasRiver", None, None)
    assert found is not None and found.order_id == "mosaic-new"
    assert store.find_existing_order("SalinasRiver", None, None, order_type="PSScope") is None
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31").order_id == "plain"
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31",
                                     product_bundle="analytic_sr_udm2").order_id == "sr"
    assert store.find_existing_order("SalinasRiver", "2024-01-01", "2024-01-31", product_bundle="x") is None
    assert store.find_existing_order("SalinasRiver", "2024-01-01", None) is None


def test_has_completed_order_needs_success(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1", status="partial"))
    assert not store.has_completed_order("SalinasRiver", "2024-01-01", "2024-01-31")
    store.update_order_status("o-1", "success")
    assert store.has_completed_order("SalinasRiver", "2024-01-01", "2024-01-31")
    assert not store.has_completed_order("SalinasRiver", "2024-01-01", "2024-02-01")
    store.save_order(make_order("basemap", aoi_name="Yolo", start_date=None, end_date=None, status="success"))
    assert store.has_completed_order("Yolo", None, None)


def test_update_order_status_merges_metadata(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1", metadata={"item_ids": ["a"], "history": ["queued"]}))
    before = store.get_order("o-1")
    assert store.update_order_status("o-1", "success", {"history": ["queued", "success"], "files": 4})
    after = store.get_order("o-1")
    assert after.status == "success" and after.updated_at >= before.updated_at
    assert after.metadata == {"item_ids": ["a"], "history": ["queued", "success"], "files": 4}
    assert store.update_order_status("o-1", "partial") is True
    assert store.get_order("o-1").metadata["files"] == 4
    assert store.update_order_status("missing", "success") is False
    assert not store.order_exists("missing")


def test_listings_filter_and_sort_byte_wise(store: Any, make_order: MakeOrder) -> None:
    same = "2024-05-01T00:00:00.000Z"
    # Byte order, as SQLite sorts: "B" < "a-1" < "a2" < "a_1" (a locale would give a_1, a-1, a2, B).
    for order_id in ("a_1", "a2", "B", "a-1"):
        store.save_order(make_order(order_id, created_at=same, status="running", batch_id="b1"))
    store.save_order(make_order("early", created_at="2024-04-01T00:00:00.000Z", aoi_name="Yolo", batch_id="b2"))
    assert _ids(store.list_orders()) == ["early", "B", "a-1", "a2", "a_1"]
    assert _ids(store.list_orders(status="running")) == ["B", "a-1", "a2", "a_1"]
    assert _ids(store.list_orders(status="running", aoi_name="Yolo")) == []
    assert _ids(store.list_orders(aoi_name="Yolo")) == ["early"]
    assert _ids(store.list_orders(batch_id="b2", status="queued")) == ["early"]
    assert _ids(store.get_orders_by_status("queued")) == ["early"]
    assert store.get_orders_by_status("nothing") == []


def test_get_batch_orders_by_start_date(store: Any, make_order: MakeOrder) -> None:
    for order_id, start in (("m3", "2024-03-01"), ("m1", "2024-01-01"), ("m2", "2024-02-01")):
        store.save_order(make_order(order_id, batch_id="batch-1", start_date=start))
    store.save_order(make_order("other", batch_id="batch-2"))
    assert _ids(store.get_batch_orders("batch-1")) == ["m1", "m2", "m3"]
    assert store.get_batch_orders("nope") == []


def test_stats_and_batches(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("a", batch_id="b1", status="success", quota_hectares=100.5, scenes_selected=3,
                                scenes_found=9, created_at="2024-01-01T00:00:00.000Z"))
    store.save_order(make_order("b", batch_id="b1", aoi_name="Yolo", start_date="2024-02-01", end_date="2024-02-29",
                                quota_hectares=50.25, scenes_selected=2, scenes_found=4))
    store.save_order(make_order("c", order_type="Basemap", start_date=None, end_date=None, status="failed",
                                quota_hectares=None, scenes_selected=None, scenes_found=None))
    store.record_intent("pending-1", {})
    store.record_intent("done-1", {})
    store.resolve_intent("done-1", "a")
    stats = store.get_stats()
    assert {k: stats[k] for k in ("total_orders", "by_status", "by_order_type", "total_scenes_selected",
                                  "total_scenes_found", "batches", "aois", "pending_intents")} == {
        "total_orders": 3, "by_status": {"failed": 1, "queued": 1, "success": 1},
        "by_order_type": {"Basemap": 1, "PSScope": 2}, "total_scenes_selected": 5, "total_scenes_found": 13,
        "batches": 1, "aois": 2, "pending_intents": 1}
    assert stats["total_quota_hectares"] == pytest.approx(150.75)
    [batch] = store.list_batches()
    updated = batch.pop("updated_at")
    assert batch == {"batch_id": "b1", "aoi_names": ["SalinasRiver", "Yolo"], "orders": 2,
                     "start_date": "2024-01-01", "end_date": "2024-02-29", "statuses": {"queued": 1, "success": 1},
                     "quota_hectares": pytest.approx(150.75), "scenes_selected": 5,
                     "created_at": "2024-01-01T00:00:00.000Z"}
    assert updated == max(o.updated_at for o in store.get_batch_orders("b1"))


def test_empty_store_stats(store: Any) -> None:
    stats = store.get_stats()
    assert (stats["total_orders"], stats["by_status"], stats["total_quota_hectares"], stats["batches"],
            stats["pending_intents"]) == (0, {}, 0.0, 0, 0)
    assert store.list_batches() == [] and store.list_orders() == [] and store.list_intents() == []


def test_secrets_and_url_tokens_never_reach_the_database(backend: Backend, store: Any, make_order: MakeOrder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_API_KEY", "PLAKsupersecret123")
    store.save_order(make_order("o-1", metadata={
        "location": "http://127.0.0.1:1/download/o-1/x.tif?token=tok-abcdef-123456", "key": "PLAKsupersecret123"}))
    store.update_order_status("o-1", "success", {"manifest": "https://h/m.json?token=another-token-987"})
    store.record_intent("n-1", {"api_key_was": "PLAKsupersecret123"})
    raw = backend.raw_text()
    assert "o-1" in raw and "n-1" in raw
    for secret in ("PLAKsupersecret123", "tok-abcdef-123456", "another-token-987"):
        assert secret not in raw
    assert store.get_order("o-1").metadata["key"] == "****"


# -- intents ----------------------------------------------------------------------------------------------------


def test_intents_record_resolve_and_list(store: Any) -> None:
    store.record_intent("flowzero-a", {"aoi": "A", "items": ["x", "y"]})
    time.sleep(0.002)
    store.record_intent("flowzero-b", {"aoi": "B"})
    pending = store.pending_intents()
    assert [(i["order_name"], i["details"]) for i in pending] == [
        ("flowzero-a", {"aoi": "A", "items": ["x", "y"]}), ("flowzero-b", {"aoi": "B"})]
    assert all(i["created_at"].endswith("Z") for i in pending)
    assert store.resolve_intent("flowzero-a", "order-1") is True
    assert store.resolve_intent("flowzero-b", None) is True
    assert store.resolve_intent("unknown", "x") is False
    assert store.pending_intents() == []
    listed = store.list_intents()
    assert [(i["order_name"], i["order_id"]) for i in listed] == [("flowzero-a", "order-1"), ("flowzero-b", None)]
    assert all(i["resolved_at"] for i in listed)
    store.record_intent("flowzero-a", {"aoi": "A", "again": True})  # recorded again: pending again
    [again] = store.pending_intents()
    assert (again["order_name"], again["details"]) == ("flowzero-a", {"aoi": "A", "again": True})
    assert [i["resolved_at"] is None for i in store.list_intents()] == [False, True]


def test_intent_claims_hold_renew_release_and_hand_over_orphans(store: Any) -> None:
    got = store.claim_intent("flowzero-a", {"aoi": "A"}, "host-a:1:aa", 60)
    assert got.taken and not got.orphan
    [pending] = store.pending_intents()
    assert (pending["order_name"], pending["details"], pending["owner"]) == ("flowzero-a", {"aoi": "A"}, "host-a:1:aa")
    assert pending["lease_expires_at"] > pending["created_at"]
    held = store.claim_intent("flowzero-a", {"aoi": "other"}, "host-b:2:bb", 60)
    assert not held.taken and held.holder == "host-a:1:aa" and held.expires_at == pending["lease_expires_at"]
    assert store.claim_intent("flowzero-a", {"aoi": "A"}, "host-a:1:aa", 60).taken  # its own: renewed
    assert store.renew_intent("flowzero-a", "host-a:1:aa", 120) is True
    assert store.pending_intents()[0]["lease_expires_at"] > pending["lease_expires_at"]
    assert store.renew_intent("flowzero-a", "host-b:2:bb", 60) is False
    assert store.release_intent("flowzero-a", "host-b:2:bb") is False  # only its owner lets it go
    assert store.release_intent("flowzero-a", "host-a:1:aa") is True
    [free] = store.pending_intents()
    assert (free["owner"], free["lease_expires_at"], free["details"]) == (None, None, {"aoi": "A"})
    orphan = store.claim_intent("flowzero-a", {"aoi": "new"}, "host-b:2:bb", 60)
    assert orphan.taken and orphan.orphan and orphan.details == {"aoi": "A"}  # what the gone run recorded
    assert store.resolve_intent("flowzero-a", "order-1") is True
    assert store.renew_intent("flowzero-a", "host-b:2:bb", 60) is False  # resolved: nothing to hold
    again = store.claim_intent("flowzero-a", {"aoi": "again"}, "host-c:3:cc", 60)  # placed again (it failed)
    assert again.taken and not again.orphan
    [renewed] = store.pending_intents()
    assert (renewed["details"], renewed["owner"]) == ({"aoi": "again"}, "host-c:3:cc")


def test_intent_whose_lease_ran_out_is_an_orphan_the_late_owner_cannot_take_back(store: Any) -> None:
    assert store.claim_intent("flowzero-x", {"n": 1}, "dead-run", 0.3).taken
    assert store.claim_intent("flowzero-x", {}, "live-run", 30).taken is False
    time.sleep(0.4)
    got = store.claim_intent("flowzero-x", {}, "live-run", 30)
    assert got.taken and got.orphan and got.details == {"n": 1}
    assert store.renew_intent("flowzero-x", "dead-run", 30) is False
    assert store.pending_intents()[0]["owner"] == "live-run"


def test_claiming_only_pending_intents_leaves_absent_and_resolved_ones_alone(store: Any) -> None:
    absent = store.claim_intent("flowzero-none", {}, "w", 60, pending_only=True)
    assert (absent.taken, absent.holder) == (False, None) and store.list_intents() == []
    store.record_intent("flowzero-done", {"aoi": "D"})
    store.resolve_intent("flowzero-done", "order-9")
    assert store.claim_intent("flowzero-done", {}, "w", 60, pending_only=True).taken is False
    assert [(i["order_id"], i["resolved_at"] is not None) for i in store.list_intents()] == [("order-9", True)]
    store.record_intent("flowzero-old", {"aoi": "O"})  # written without an owner (before schema 3): an orphan
    got = store.claim_intent("flowzero-old", {}, "w", 60, pending_only=True)
    assert got.taken and got.orphan and got.details == {"aoi": "O"}
    with pytest.raises(ValueError):
        store.claim_intent("flowzero-old", {}, "", 60)
    with pytest.raises(ValueError):
        store.claim_intent("flowzero-old", {}, "w", 0)


# -- claims -----------------------------------------------------------------------------------------------------


def test_claim_release_and_renew(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1"))
    before = store.get_order("o-1")
    assert store.get_claim("o-1") is None
    assert store.claim("o-1", "host-a:1:aa", 60) is True
    first = store.get_claim("o-1")
    assert first is not None and first["worker"] == "host-a:1:aa" and first["expires_at"].endswith("Z")
    assert store.claim("o-1", "host-b:2:bb", 60) is False
    time.sleep(0.01)
    assert store.claim("o-1", "host-a:1:aa", 120) is True  # ours already: renewed, later expiry
    assert store.get_claim("o-1")["expires_at"] > first["expires_at"]
    assert store.release("o-1", "host-b:2:bb") is False  # only the holder releases
    assert store.get_claim("o-1")["worker"] == "host-a:1:aa"
    assert store.release("o-1", "host-a:1:aa") is True
    assert store.get_claim("o-1") is None and store.release("o-1", "host-a:1:aa") is False
    assert store.claim("o-1", "host-b:2:bb", 60) is True
    after = store.get_order("o-1")
    assert after == before  # claims touch no order field, not even updated_at


def test_a_claim_says_where_its_holder_delivers(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1"))
    assert store.claim("o-1", "w1", 60, "s3://bucket/prefix/")
    assert store.get_claim("o-1")["destination"] == "s3://bucket/prefix/"
    assert store.claim("o-1", "w1", 60, "/data/out")  # renewed for where it delivers now
    assert store.get_claim("o-1")["destination"] == "/data/out"
    assert store.release("o-1", "w1")
    assert store.claim("o-1", "w2", 60)
    assert store.get_claim("o-1")["destination"] is None  # not said: nothing left over from the last holder


def test_integrity_check_passes_on_a_sound_store(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1"))
    assert store.check_integrity() is None
    assert store.check_integrity() is None  # again: cheap, nothing changes
    assert store.get_order("o-1") is not None


def test_claims_survive_upserts_and_status_updates(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1"))
    assert store.claim("o-1", "w1", 60)
    store.save_order(make_order("o-1", status="running"))
    store.update_order_status("o-1", "success", {"files": 2})
    assert store.get_claim("o-1")["worker"] == "w1"
    assert store.claim("o-1", "w2", 60) is False


def test_claim_of_unknown_order_and_bad_arguments(store: Any, make_order: MakeOrder) -> None:
    assert store.claim("missing", "w1", 60) is False
    assert store.release("missing", "w1") is False
    assert store.get_claim("missing") is None
    store.save_order(make_order("o-1"))
    for worker, lease in (("", 60), ("  ", 60), ("w1", 0), ("w1", -5)):
        with pytest.raises(ValueError):
            store.claim("o-1", worker, lease)
    assert store.get_claim("o-1") is None


def test_expired_claim_is_taken_over(store: Any, make_order: MakeOrder) -> None:
    store.save_order(make_order("o-1"))
    store.save_order(make_order("o-2"))
    assert store.claim("o-1", "dead-worker", 0.3)
    assert store.claim("o-2", "dead-worker", 30)
    assert store.claim("o-1", "live-worker", 30) is False
    time.sleep(0.45)
    assert store.get_claim("o-1") is None  # the lease ran out: free for anyone
    assert store.claim("o-1", "live-worker", 30) is True
    assert store.get_claim("o-1")["worker"] == "live-worker"
    assert store.release("o-1", "dead-worker") is False  # the late holder cannot drop the new claim
    assert store.claim("o-2", "live-worker", 30) is False  # a running lease is not affected


def test_claims_from_another_connection_are_seen(backend: Backend, store: Any, make_order: MakeOrder) -> None:
    other = backend.open()
    store.save_order(make_order("o-1"))
    assert other.claim("o-1", "w-other", 60)
    assert store.claim("o-1", "w-mine", 60) is False
    assert store.get_claim("o-1")["worker"] == "w-other"
    assert other.release("o-1", "w-other")
    assert store.claim("o-1", "w-mine", 60)


def _one_winner_each(backend: Backend, keys: list[str], take: Callable[[Any, str, str], bool]) -> dict[str, int]:
    """THREADS threads, each with its own connection, all ``take(store, key, worker)`` every key at once;
    returns the one winning thread of each key (the test fails if any key had none or several)."""
    stores = [backend.open() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    wins: dict[str, list[int]] = {key: [] for key in keys}
    errors: list[str] = []

    def contend(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for key in keys:
                if take(stores[n], key, f"worker-{n}"):
                    wins[key].append(n)
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert {key: len(winners) for key, winners in wins.items()} == {key: 1 for key in keys}
    return {key: winners[0] for key, winners in wins.items()}


def test_threads_claiming_at_once_exactly_one_wins_each_order(backend: Backend, make_order: MakeOrder) -> None:
    setup = backend.open()
    orders = [f"o-{i:02d}" for i in range(12)]
    for order_id in orders:
        setup.save_order(make_order(order_id))
    winners = _one_winner_each(backend, orders, lambda store, key, worker: store.claim(key, worker, 60))
    for order_id, winner in winners.items():
        assert setup.get_claim(order_id)["worker"] == f"worker-{winner}"


def test_threads_claiming_the_same_intents_at_once_exactly_one_takes_each(backend: Backend) -> None:
    names = [f"flowzero-n{i:02d}" for i in range(12)]
    winners = _one_winner_each(backend, names, lambda store, key, worker: store.claim_intent(
        key, {"by": worker}, worker, 60).taken)
    pending = {i["order_name"]: i for i in backend.open().pending_intents()}
    for name, winner in winners.items():
        assert pending[name]["owner"] == f"worker-{winner}"
        assert pending[name]["details"] == {"by": f"worker-{winner}"}  # the loser wrote nothing


# -- processes: migrations once, and one claim winner -----------------------------------------------------------


def _open_migrate_and_claim(name: str, target: str, n: int, barrier: Any, results: Any) -> None:
    """Worker process: open a store on a database nobody has migrated yet, all at once; then claim one order."""
    try:
        from flowzero.models import Order
        from flowzero.storage.opening import open_store

        barrier.wait(timeout=60)
        store = open_store(_config_for(name, target))
        store.save_order(Order("contested", aoi_name="shared"))  # every process upserts the same row
        barrier.wait(timeout=60)
        won = store.claim("contested", f"proc-{n}", 60)
        results.put(("ok", n, store.schema_version, won))
        store.close()
    except BaseException:
        results.put(("error", n, traceback.format_exc(), False))


def test_processes_opening_a_new_database_migrate_once_and_one_claim_wins(backend: Backend) -> None:
    from flowzero.storage.migrate import bundled_migrations

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_open_migrate_and_claim, args=(backend.name, backend.target, n, barrier, results))
             for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert [o[2] for o in outcomes if o[0] != "ok"] == []
    newest = bundled_migrations()[-1].version
    assert {o[2] for o in outcomes} == {newest}
    winners = [o[1] for o in outcomes if o[3]]
    assert len(winners) == 1
    store = backend.open()
    assert store.get_claim("contested")["worker"] == f"proc-{winners[0]}"
    assert store.list_orders()[0].order_id == "contested" and len(store.list_orders()) == 1
    counted = _migration_counts(backend)
    assert counted == [(m.version, 1) for m in bundled_migrations()]


def _migration_counts(backend: Backend) -> list[tuple[int, int]]:
    sql = "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version"
    if backend.name == "sqlite":
        import apsw

        conn = apsw.Connection(backend.target)
        try:
            return [tuple(row) for row in conn.execute(sql)]  # type: ignore[misc]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(backend.target) as conn:
        return [tuple(row) for row in conn.execute(sql)]  # type: ignore[misc]


def test_reopening_applies_nothing_and_a_newer_schema_is_refused(backend: Backend, store: Any,
                                                                  make_order: MakeOrder) -> None:
    store.save_order(make_order("kept"))
    again = backend.open()
    assert again.get_order("kept") is not None and again.schema_version == store.schema_version
    backend.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (999, 'from_the_future', '2030-01-01T00:00:00.000Z')")
    with pytest.raises(StorageError, match=r"newer flowzero \(schema 999 >"):
        backend.open()
    assert store.get_order("kept") is not None


# -- copying between stores -------------------------------------------------------------------------------------


def test_import_records_keeps_history_and_reruns_add_nothing(store: Any, make_order: MakeOrder) -> None:
    from flowzero.storage.copying import CopyCounts

    orders = [make_order("o-1", created_at="2023-01-01T00:00:00.000Z", updated_at="2023-01-02T00:00:00.000Z",
                         status="success", metadata={"files": ["a.tif"]}),
              make_order("o-2", created_at="2023-02-01T00:00:00.000Z", updated_at="2023-02-01T00:00:00.000Z")]
    intents = [{"order_name": "n-1", "details": {"aoi": "A"}, "created_at": "2023-01-01T00:00:00.000Z",
                "order_id": "o-1", "resolved_at": "2023-01-01T00:00:01.000Z"},
               {"order_name": "n-2", "details": {}, "created_at": "2023-03-01T00:00:00.000Z",
                "order_id": None, "resolved_at": None}]
    first = store.import_records(orders, intents)
    assert first == {"orders": CopyCounts(2, 0, 0), "intents": CopyCounts(2, 0, 0)}
    got = store.get_order("o-1")
    assert (got.created_at, got.updated_at, got.status, got.metadata) == (
        "2023-01-01T00:00:00.000Z", "2023-01-02T00:00:00.000Z", "success", {"files": ["a.tif"]})
    assert store.list_intents() == intents
    assert [i["order_name"] for i in store.pending_intents()] == ["n-2"]
    assert store.import_records(orders, intents) == {"orders": CopyCounts(0, 0, 2), "intents": CopyCounts(0, 0, 2)}

    newer = make_order("o-2", created_at="2023-02-01T00:00:00.000Z", updated_at="2023-06-01T00:00:00.000Z",
                       status="failed")
    older = make_order("o-1", created_at="2023-01-01T00:00:00.000Z", updated_at="2022-12-01T00:00:00.000Z",
                       status="queued")
    resolved = {**intents[1], "order_id": "o-9", "resolved_at": "2023-03-02T00:00:00.000Z"}
    counts = store.import_records([older, newer, make_order("o-3")], [resolved])
    assert counts == {"orders": CopyCounts(1, 1, 1), "intents": CopyCounts(0, 1, 0)}
    assert store.get_order("o-2").status == "failed" and store.get_order("o-1").status == "success"
    assert store.get_order("o-3").updated_at is not None and store.pending_intents() == []


def test_copy_store_to_the_other_backend_and_back(backend: Backend, store: Any, make_order: MakeOrder,
                                                  request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from flowzero.storage.copying import CopyCounts, copy_store

    store.save_order(make_order("o-1", batch_id="b", metadata={"x": 1}))
    store.update_order_status("o-1", "success", {"files": 3})
    store.save_order(make_order("o-2", aoi_name="Yolo", start_date=None, end_date=None))
    store.record_intent("n-1", {"aoi": "Yolo"})
    other_name = "postgres" if backend.name == "sqlite" else "sqlite"
    other_target = request.getfixturevalue("postgres_url") if other_name == "postgres" else str(tmp_path / "o.db")
    other = open_store(_config_for(other_name, other_target))
    try:
        assert copy_store(store, other) == {"orders": CopyCounts(2, 0, 0), "intents": CopyCounts(1, 0, 0)}
        assert other.list_orders() == store.list_orders()
        assert other.list_intents() == store.list_intents()
        assert other.get_stats()["by_status"] == store.get_stats()["by_status"]
        assert other.list_batches() == store.list_batches()
        assert copy_store(other, store) == {"orders": CopyCounts(0, 0, 2), "intents": CopyCounts(0, 0, 1)}
    finally:
        other.close()


# -- searches (the coverage calendar) --------------------------------------------------------------------------


def test_searches_are_kept_so_no_imagery_is_told_apart_from_never_asked(store: Any) -> None:
    from flowzero.models import SearchRecord

    days = {"2024-03-05": {"found": 2, "eligible": 0, "best_coverage_pct": 71.5}}
    first = store.record_search(SearchRecord("SalinasRiver", "2024-03-01", "2024-03-31", "weekly", 2, 0, 0,
                                             min_coverage_pct=98.0, days=days, searched_at="2024-04-01T00:00:00.000Z"))
    second = store.record_search(SearchRecord("ScottRiver", "2024-03-01", "2024-03-31", "daily", 9, 4, 4,
                                              batch_id="b-1", product_bundle="analytic_sr_udm2"))
    assert first and second and first != second
    assert store.list_searches(aoi_name="Nowhere") == []
    [salinas] = store.list_searches(aoi_name="SalinasRiver")
    assert (salinas.search_id, salinas.cadence, salinas.found, salinas.eligible, salinas.selected) == (
        first, "weekly", 2, 0, 0)
    assert salinas.days == days and salinas.min_coverage_pct == 98.0 and salinas.batch_id is None
    assert salinas.searched_at == "2024-04-01T00:00:00.000Z"
    [scott] = store.list_searches(batch_id="b-1")
    assert scott.aoi_name == "ScottRiver" and scott.product_bundle == "analytic_sr_udm2" and scott.searched_at
    assert [s.search_id for s in store.list_searches()] == [first, second]  # oldest first
    store.record_search(salinas)  # the same search again: kept once
    assert len(store.list_searches()) == 2
