"""The delivery blocks flowzero sends (pure) and how the sandbox takes them: amazon_s3 through a stand-in
endpoint, the Destinations API (also through Planet's own SDK), refused blocks, partial orders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowzero.config import Config
from flowzero.delivery.cloud.block import cloud_delivery, normalize_prefix, redact_block, resolve_delivery
from flowzero.errors import ConfigError
from flowzero.sandbox import Sandbox
from tests.fixtures.s3 import S3Bucket
from tests.fixtures.sandbox import order_request, orderable_item_ids, wait_final

KEY, SECRET = "AKIABLOCKTEST0001", "block-secret-do-not-echo"


def config(bucket: str = "river-data", endpoint: str = "", ref: str = "", prefix: str = "planet-staging/") -> Config:
    cfg = Config()
    cfg.s3.bucket_name, cfg.s3.endpoint_url, cfg.s3.region = bucket, endpoint, "us-west-2"
    cfg.delivery.destination_ref, cfg.delivery.path_prefix = ref, prefix
    return cfg


@pytest.fixture
def aws_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


# -- the blocks flowzero sends ---------------------------------------------------------------------------------


def test_amazon_s3_without_endpoint_s3_compatible_with_one_and_records_mask_the_keys(aws_keys: None) -> None:
    amazon = cloud_delivery(config(prefix="staging"))
    assert amazon.block == {"amazon_s3": {"bucket": "river-data", "aws_region": "us-west-2", "aws_access_key_id": KEY,
                                          "aws_secret_access_key": SECRET, "path_prefix": "staging/"}}
    compatible = cloud_delivery(config(endpoint="https://minio.example:9000", prefix=""))
    assert compatible.block == {"s3_compatible": {
        "endpoint": "https://minio.example:9000", "bucket": "river-data", "region": "us-west-2",
        "access_key_id": KEY, "secret_access_key": SECRET, "use_path_style": True}}
    for target in (amazon, compatible):
        text = json.dumps(target.record()) + repr(target)
        assert KEY not in text and SECRET not in text and "****" in text
    assert redact_block({"a": [{"secret_access_key": "x", "bucket": "b"}]}) == {
        "a": [{"secret_access_key": "****", "bucket": "b"}]}


def test_a_destination_ref_sends_no_secret_and_learns_the_bucket_from_planet() -> None:
    seen = []

    def lookup(ref: str) -> dict[str, Any] | None:
        seen.append(ref)
        return {"pl:ref": ref, "parameters": {"bucket": "dest-bucket", "endpoint": "http://127.0.0.1:1"}}

    target = resolve_delivery("cloud", config(ref="pl:destinations/river-abc"), lookup)
    assert target is not None and seen == ["pl:destinations/river-abc"]
    assert target.block == {"destination": {"ref": "pl:destinations/river-abc", "path_prefix": "planet-staging/"}}
    assert (target.bucket, target.endpoint) == ("dest-bucket", "http://127.0.0.1:1")
    assert resolve_delivery(None, config(ref="pl:destinations/river-abc"), lookup) is None  # mode: download
    with pytest.raises(ConfigError, match="not registered with Planet"):
        resolve_delivery("cloud", config(ref="pl:destinations/gone"), lambda ref: None)
    with pytest.raises(ConfigError, match="not a destination reference"):
        resolve_delivery("cloud", config(ref="my-bucket"), lookup)


def test_settings_that_cannot_work_are_refused_before_ordering(aws_keys: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_prefix("/a/b") == "a/b/" and normalize_prefix("") == ""
    with pytest.raises(ConfigError, match="not a safe key prefix"):
        normalize_prefix("staging/../../etc")
    with pytest.raises(ConfigError, match=r"s3\.bucket_name is not set"):
        cloud_delivery(config(bucket=""))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "temporary-token-1234")
    with pytest.raises(ConfigError, match="temporary AWS credentials"):
        cloud_delivery(config())
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    with pytest.raises(ConfigError, match="needs AWS credentials"):
        cloud_delivery(config())


# -- the sandbox's side ----------------------------------------------------------------------------------------


@pytest.fixture
def planet_http() -> Iterator[httpx.Client]:
    with httpx.Client(auth=("sandbox-key", ""), timeout=30) as client:
        yield client


def compatible(bucket: S3Bucket, **extra: Any) -> dict[str, Any]:
    return {"endpoint": bucket.endpoint_url, "bucket": bucket.name, "region": "us-east-1", "access_key_id": KEY,
            "secret_access_key": SECRET, "use_path_style": True, **extra}


def test_amazon_s3_orders_go_to_the_stand_in_endpoint_or_are_refused(s3_bucket: S3Bucket, tmp_path: Path,
                                                                     planet_http: httpx.Client) -> None:
    block = {"amazon_s3": {"bucket": s3_bucket.name, "aws_region": "us-east-1", "aws_access_key_id": KEY,
                           "aws_secret_access_key": SECRET, "path_prefix": "in/"}}
    with Sandbox(tmp_path / "plain", polls_per_state=0, file_size=4096) as sandbox:
        request = {**order_request(orderable_item_ids(planet_http, sandbox, 1)), "delivery": block}
        refused = planet_http.post(sandbox.orders_url, json=request)
        assert refused.status_code == 400 and "amazon_s3" in refused.text
    with Sandbox(tmp_path / "aws", polls_per_state=0, file_size=4096,
                 amazon_s3_endpoint=s3_bucket.endpoint_url) as sandbox:
        created = planet_http.post(sandbox.orders_url, json=request)
        assert created.status_code == 202, created.text
        order = wait_final(planet_http, sandbox, created.json()["id"])
        assert order["state"] == "success"
        staged = s3_bucket.keys()
        assert f"in/{order['id']}/manifest.json" in staged
        assert len(staged) == 1 + len(json.loads(s3_bucket.get(f"in/{order['id']}/manifest.json"))["files"])
        assert "planetverify.txt" not in " ".join(staged)  # the access check cleaned up after itself


def test_partial_cloud_orders_stage_only_what_was_delivered(s3_bucket: S3Bucket, sandbox: Sandbox,
                                                           planet_http: httpx.Client) -> None:
    items = orderable_item_ids(planet_http, sandbox, 2)
    sandbox.set_next_order_outcome("partial")
    created = planet_http.post(sandbox.orders_url, json={**order_request(items),
                                                         "delivery": {"s3_compatible": compatible(s3_bucket)}})
    order = wait_final(planet_http, sandbox, created.json()["id"])
    assert order["state"] == "partial"
    staged = s3_bucket.keys()
    assert any(items[0] in key for key in staged) and not any(items[1] in key for key in staged)


@pytest.mark.parametrize(("delivery", "message"), [
    ({"s3_compatible": {"bucket": "b"}}, "missing or empty"),
    ({"destination": {"ref": "pl:destinations/unknown-1"}}, "unknown destination reference"),
    ({"amazon_s3": {}, "s3_compatible": {}}, "give one of"),
    ({"s3_compatible": {"path_prefix": "../up"}}, "relative key prefix"),
    ({"archive_type": "zip", "s3_compatible": {}}, "archives"),
])
def test_bad_delivery_blocks_are_refused_like_planet(sandbox: Sandbox, planet_http: httpx.Client,
                                                     delivery: dict[str, Any], message: str) -> None:
    request = {**order_request(orderable_item_ids(planet_http, sandbox, 1)), "delivery": delivery}
    answer = planet_http.post(sandbox.orders_url, json=request)
    assert answer.status_code == 400 and message in answer.text


def test_destinations_api_never_echoes_secrets_checks_the_bucket_and_persists(s3_bucket: S3Bucket, tmp_path: Path,
                                                                              planet_http: httpx.Client) -> None:
    body = {"name": "river-bucket", "type": "s3_compatible", "parameters": compatible(s3_bucket)}
    with Sandbox(tmp_path / "sb") as sandbox:
        created = planet_http.post(sandbox.destinations_url, json=body)
        assert created.status_code == 201, created.text
        destination = created.json()
        assert destination["pl:ref"].startswith("pl:destinations/river-bucket-")
        assert planet_http.post(sandbox.destinations_url, json=body).status_code == 409  # unique names
        wrong = {**body, "name": "nowhere", "parameters": {**compatible(s3_bucket), "bucket": "no-such-bucket"}}
        assert planet_http.post(sandbox.destinations_url, json=wrong).status_code == 400
        answers = [created.text, planet_http.get(sandbox.destinations_url).text,
                   planet_http.get(f"{sandbox.destinations_url}/{destination['id']}").text]
    assert s3_bucket.keys() == []  # planetverify.txt written and deleted
    with Sandbox(tmp_path / "sb") as restarted:  # registered once, known after a restart
        listed = planet_http.get(restarted.destinations_url).json()["destinations"]
        assert [d["pl:ref"] for d in listed] == [destination["pl:ref"]]
        answers.append(json.dumps(listed))
    for text in answers:
        assert KEY not in text and SECRET not in text
    assert listed[0]["parameters"] == {"endpoint": s3_bucket.endpoint_url, "bucket": s3_bucket.name,
                                       "region": "us-east-1", "use_path_style": True}


def test_planets_own_sdk_registers_and_lists_sandbox_destinations(s3_bucket: S3Bucket, sandbox: Sandbox) -> None:
    import planet

    client = planet.Planet(session=planet.Session(auth=planet.Auth.from_key("sandbox-key")), base_url=sandbox.url)
    created = client.destinations.create_destination({"name": "sdk-dest", "type": "s3_compatible",
                                                      "parameters": compatible(s3_bucket)})
    listed = client.destinations.list_destinations()
    assert [d["pl:ref"] for d in listed["destinations"]] == [created["pl:ref"]]
    assert client.destinations.get_destination(created["id"])["name"] == "sdk-dest"
