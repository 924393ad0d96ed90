"""Importing the old tool's orders.json: varying record shapes, basemaps with N/A dates, reruns, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowzero.errors import UsageError
from flowzero.storage.import_json import InvalidRecord, import_orders_json, legacy_record_to_order
from flowzero.storage.sqlite import SqliteOrderStore

LEGACY = Path(__file__).parent / "data" / "orders_legacy.json"


def test_import_counts_and_is_idempotent(store: SqliteOrderStore) -> None:
    records = json.loads(LEGACY.read_text(encoding="utf-8"))
    assert len(records) >= 10
    first = import_orders_json(store, LEGACY)
    assert (first.total, first.imported, first.already_present, first.invalid) == (13, 10, 1, 2)
    assert first.problems == [
        "record 12: missing order_id",
        "record 13: order 0f6e2d9c-7b1a-4c3e-8f5d-2a9b6c4e1d33: start_date '2024-13-01' is not a date "
        "(YYYY-MM-DD or N/A)",
    ]
    assert len(store.list_orders()) == 10
    snapshot = {o.order_id: o for o in store.list_orders()}
    again = import_orders_json(store, LEGACY)
    assert (again.imported, again.already_present, again.invalid) == (0, 11, 2)
    assert {o.order_id: o for o in store.list_orders()} == snapshot  # nothing rewritten


def test_imported_records_keep_their_shape(store: SqliteOrderStore) -> None:
    import_orders_json(store, LEGACY)
    basemap = store.get_order("5d0f8c3e-6a2b-4e91-a7c4-1f9e8d2b3a40")
    assert basemap is not None
    assert (basemap.order_type, basemap.start_date, basemap.end_date) == ("Basemap (Composite)", None, None)
    assert basemap.mosaic_name == "global_monthly_2024_01_mosaic" and basemap.scenes_found is None
    raw = store._conn.execute("SELECT start_date, end_date FROM orders WHERE order_id = ?",
                              (basemap.order_id,)).fetchall()
    assert raw == [(None, None)]  # SQL NULL, not the text "N/A"

    oldest = store.get_order("3a1c6e0b-2f4d-4c8e-9b51-7d0e2a9f1c01")  # no batch_id, bundle, area, selected
    assert oldest is not None
    assert (oldest.batch_id, oldest.product_bundle, oldest.aoi_area_sqkm, oldest.scenes_selected) == (
        None, None, None, None)
    assert (oldest.scenes_found, oldest.quota_hectares, oldest.batch_order) == (41, 2215.4, False)
    assert oldest.created_at is not None and oldest.created_at.startswith("2023-07-0")
    assert oldest.metadata == {"imported_from": "orders_legacy.json"}

    extra = store.get_order("3a1c6e0b-2f4d-4c8e-9b51-7d0e2a9f1c02")
    assert extra is not None and extra.metadata["item_ids"][0] == "20230703_183012_61_2479"

    batch = store.get_batch_orders("batch-ScottRiver-20240215T101500")
    assert [(o.start_date, o.status, o.num_bands) for o in batch] == [
        ("2024-01-01", "success", "8B"), ("2024-02-01", "partial", "8B"), ("2024-03-01", "failed", "8B")]
    assert all(o.batch_order for o in batch)
    assert batch[2].metadata["error"] == "no scenes covering at least 98% of the AOI"

    no_status = store.get_order("9c4b1f7a-3e8d-42b6-b0a9-5e7c2d1f8a90")
    assert no_status is not None and no_status.status == "unknown" and no_status.clipped is False
    assert store.find_existing_order("SalinasRiver", "2024-06-01", "2024-06-30") is not None
    clipped_text = store.get_order("e2a9b6c1-0d3f-47e8-9c15-6b8a4f2d9e70")
    assert clipped_text is not None and clipped_text.clipped is True


def test_imported_history_prevents_reordering(store: SqliteOrderStore) -> None:
    import_orders_json(store, LEGACY)
    assert store.has_completed_order("ScottRiver", "2024-01-01", "2024-01-31")
    assert store.find_existing_order("ScottRiver", "2024-03-01", "2024-03-31") is None  # that one failed
    assert store.find_existing_order("Cosumnes_Badger", "2024-05-01", "2024-05-31") is None  # cancelled
    assert store.find_existing_order("Cosumnes_Badger", "2024-04-01", "2024-04-30") is not None  # queued


@pytest.mark.parametrize(("record", "reason"), [
    ("just a string", "expected an object"),
    ({"aoi_name": "x"}, "missing order_id"),
    ({"order_id": "o", "aoi_name": ""}, "missing aoi_name"),
    ({"order_id": "o", "aoi_name": "x", "scenes_found": "many"}, "scenes_found should be a number"),
    ({"order_id": "o", "aoi_name": "x", "scenes_selected": 2.5}, "whole number"),
    ({"order_id": "o", "aoi_name": "x", "clipped": "maybe"}, "clipped should be true or false"),
    ({"order_id": "o", "aoi_name": "x", "quota_hectares": True}, "quota_hectares should be a number"),
    ({"order_id": "o", "aoi_name": "x", "end_date": "31/01/2024"}, "end_date '31/01/2024' is not a date"),
    ({"order_id": "o", "aoi_name": {"n": 1}}, "aoi_name should be text"),
])
def test_invalid_records_say_why(record: object, reason: str) -> None:
    with pytest.raises(InvalidRecord, match=reason):
        legacy_record_to_order(record)


def test_lenient_conversions() -> None:
    order = legacy_record_to_order({
        "order_id": " o-1 ", "aoi_name": "x", "start_date": "2024-01-01T00:00:00Z", "end_date": "n/a",
        "scenes_found": "12", "quota_hectares": "1,234.5", "clipped": 0, "status": "SUCCESS",
        "timestamp": "not a time", "batch_id": "b"})
    assert (order.order_id, order.start_date, order.end_date) == ("o-1", "2024-01-01", None)
    assert (order.scenes_found, order.quota_hectares, order.clipped) == (12, 1234.5, False)
    assert order.status == "success"
    assert order.batch_order is True  # inferred from batch_id when the old record does not say
    assert order.created_at is None and order.metadata["legacy_timestamp"] == "not a time"
    odd = legacy_record_to_order({"order_id": "o-2", "aoi_name": "x", "status": "Completed"})
    assert odd.status == "unknown" and odd.metadata["legacy_status"] == "Completed"


def test_unparseable_values_do_not_leak_tokens(store: SqliteOrderStore, tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([{"order_id": "o", "aoi_name": "x",
                                 "start_date": "https://h/x?token=leaky-token-123"}]), encoding="utf-8")
    report = import_orders_json(store, path)
    assert report.invalid == 1 and "leaky-token-123" not in report.problems[0]


@pytest.mark.parametrize(("content", "message"), [
    ('[{"order_id": "a", ', "not valid JSON"),
    ('{"orders": []}', "expected a JSON list of order records, got an object"),
    ('"orders"', "expected a JSON list of order records, got str"),
])
def test_bad_files_are_one_line_usage_errors(store: SqliteOrderStore, tmp_path: Path, content: str,
                                             message: str) -> None:
    path = tmp_path / "orders.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message) as caught:
        import_orders_json(store, path)
    assert "\n" not in str(caught.value)
    assert store.list_orders() == []


def test_missing_file_is_a_usage_error(store: SqliteOrderStore, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        import_orders_json(store, tmp_path / "nope.json")
