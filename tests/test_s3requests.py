"""Both S3Requests implementations (boto3, the Rust core) behave alike against a real S3 endpoint (moto)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from flowzero.config import load_config
from flowzero.delivery.destination import Destination, write_document
from flowzero.delivery.leftovers import abort_stale_uploads
from flowzero.delivery.s3requests import ObjectRequests, S3Requests, parse_time, s3_requests

IMPLEMENTATIONS = ["threads", "fast"]  # the downloader decides which one a delivery uses


def config_for(bucket: Any) -> Any:
    return load_config(overrides={"s3.endpoint_url": bucket.endpoint_url})


@pytest.fixture(params=IMPLEMENTATIONS)
def requests(request: pytest.FixtureRequest, s3_bucket: Any) -> S3Requests:
    config = config_for(s3_bucket)
    return s3_requests(config, request.param)


def test_the_fast_downloader_gets_the_rust_requests(s3_bucket: Any) -> None:
    config = config_for(s3_bucket)
    assert isinstance(s3_requests(config, "fast"), ObjectRequests)
    assert not isinstance(s3_requests(config, "s5cmd"), ObjectRequests)


def test_put_and_head_round_trip_metadata(requests: S3Requests, s3_bucket: Any) -> None:
    key = "rivers/Ünïcode & spaces/metadata.json"
    assert requests.head_metadata(s3_bucket.name, key) is None
    requests.put_document(s3_bucket.name, key, b'{"a": 1}', "application/json", {"sha256": "ab" * 32})

    assert s3_bucket.get(key) == b'{"a": 1}'
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
    assert head["ContentType"] == "application/json" and head["Metadata"] == {"sha256": "ab" * 32}
    assert requests.head_metadata(s3_bucket.name, key) == {"sha256": "ab" * 32}


def test_write_document_skips_an_identical_copy(requests: S3Requests, s3_bucket: Any) -> None:
    destination = Destination("s3", s3_bucket.name, "out")
    document = json.dumps({"id": "o1"}).encode()
    assert write_document(destination, "aoi/metadata.json", document, requests) is True
    assert write_document(destination, "aoi/metadata.json", document, requests) is False
    assert write_document(destination, "aoi/metadata.json", document + b" ", requests) is True
    assert s3_bucket.get("out/aoi/metadata.json") == document + b" "


def test_only_uploads_begun_before_the_run_are_aborted(requests: S3Requests, s3_bucket: Any) -> None:
    client, bucket = s3_bucket.client, s3_bucket.name
    stale = [client.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]
             for k in ("a/x.tif", "a/R&D <1>.tif", "b/y.tif")]
    listed = requests.uploads(bucket, "a/")
    assert sorted((k, u) for k, u, _ in listed) == sorted([("a/R&D <1>.tif", stale[1]), ("a/x.tif", stale[0])])
    assert all(isinstance(when, dt.datetime) and when.tzinfo for _, _, when in listed)

    started = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    assert sorted(abort_stale_uploads(requests, bucket, ["a/"], started)) == ["a/R&D <1>.tif", "a/x.tif"]
    assert [u["Key"] for u in s3_bucket.multipart_uploads()] == ["b/y.tif"]  # another folder: left alone


class ListedUploads:
    """S3Requests listing fixed uploads (moto reports every upload as begun in 2010, so it cannot show this)."""

    def __init__(self, uploads: list[tuple[str, str, dt.datetime | None]]) -> None:
        self.listed, self.aborted = uploads, []

    def uploads(self, bucket: str, prefix: str) -> list[tuple[str, str, dt.datetime | None]]:
        return [u for u in self.listed if u[0].startswith(prefix)]

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.aborted.append(upload_id)


def test_uploads_begun_after_the_run_started_are_live_and_kept() -> None:
    started = dt.datetime(2026, 11, 24, 12, tzinfo=dt.timezone.utc)
    listed = ListedUploads([("a/1", "old", started - dt.timedelta(seconds=1)), ("a/2", "new", started),
                            ("a/3", "unknown", None), ("b/4", "elsewhere", None)])
    assert abort_stale_uploads(listed, "bucket", ["a/"], started) == ["a/1", "a/3"]  # type: ignore[arg-type]
    assert listed.aborted == ["old", "unknown"]


def test_missing_credentials_are_one_clear_error(s3_bucket: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    config = config_for(s3_bucket)
    with pytest.raises(Exception, match="AWS_ACCESS_KEY_ID") as caught:
        s3_requests(config, "fast")
    assert type(caught.value).__name__ == "CredentialsError"


def test_s3_times_are_read_as_utc() -> None:
    assert parse_time("2026-11-24T10:00:00.000Z") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc)
    assert parse_time("2026-11-24T10:00:00") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc)
    assert parse_time("") is None and parse_time("yesterday") is None
