"""The few S3 requests a delivery makes beside moving files: ``metadata.json`` and aborting killed runs' uploads.

One small interface, two implementations: boto3 for the threads, s5cmd and third-party downloaders (boto3's
full credential chain: profiles, SSO, instance roles), and the Rust core's ``S3Objects`` for the ``fast``
downloader, whose runs then never import boto3 (its start-up costs about 0.4 s of CPU per run) and use the
same credentials, endpoint and signer as the transfers themselves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

META_PREFIX = "x-amz-meta-"


class S3Requests(Protocol):
    def head_metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        """The object's user metadata (lower-case names, no ``x-amz-meta-``), or None if there is no object."""

    def put_document(self, bucket: str, key: str, data: bytes, content_type: str,
                     metadata: dict[str, str]) -> None:
        """PUT a small object in one request."""

    def uploads(self, bucket: str, prefix: str) -> list[tuple[str, str, dt.datetime | None]]:
        """Incomplete multipart uploads under ``prefix``: (key, upload id, when it began, if known)."""

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort one multipart upload."""


class BotoRequests:
    """:class:`S3Requests` over a boto3 client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def head_metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        from flowzero.delivery.s3copy import head

        found = head(self.client, bucket, key)
        return None if found is None else {k.lower(): v for k, v in (found.get("Metadata") or {}).items()}

    def put_document(self, bucket: str, key: str, data: bytes, content_type: str,
                     metadata: dict[str, str]) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata)

    def uploads(self, bucket: str, prefix: str) -> list[tuple[str, str, dt.datetime | None]]:
        found = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []) or []:
                initiated = upload.get("Initiated")
                found.append((upload["Key"], upload["UploadId"],
                              initiated if isinstance(initiated, dt.datetime) else None))
        return found

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


class FastRequests:
    """:class:`S3Requests` over the Rust core (``flowzero._fast.S3Objects``)."""

    def __init__(self, objects: Any) -> None:
        self.objects = objects

    def head_metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        headers = self.objects.head(bucket, key)
        if headers is None:
            return None
        return {name[len(META_PREFIX):]: value for name, value in headers.items() if name.startswith(META_PREFIX)}

    def put_document(self, bucket: str, key: str, data: bytes, content_type: str,
                     metadata: dict[str, str]) -> None:
        self.objects.put(bucket, key, data, content_type=content_type, metadata=metadata)

    def uploads(self, bucket: str, prefix: str) -> list[tuple[str, str, dt.datetime | None]]:
        return [(key, upload_id, parse_time(initiated))
                for key, upload_id, initiated in self.objects.list_uploads(bucket, prefix)]

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.objects.abort(bucket, key, upload_id)


def parse_time(text: str) -> dt.datetime | None:
    """S3's ISO 8601 time (``2026-11-24T10:00:00.000Z``) as an aware datetime; None when absent or unreadable."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def s3_requests(config: Any, downloader: str = "") -> S3Requests:
    """The S3 requests of a delivery by ``downloader``: the Rust core's for ``fast``, boto3's otherwise."""
    if downloader == "fast":
        from flowzero import aws
        from flowzero.downloaders.fast import load_extension

        native = load_extension()
        access = aws.resolve(config.s3.region, config.s3.endpoint_url, config.s3.profile)
        return FastRequests(native.S3Objects(
            region=access.region, endpoint_url=access.endpoint_url or None, credentials=access.provider(),
            ca_bundle=access.ca_bundle, timeout=config.planet.timeout, max_retries=config.planet.max_retries,
        ))
    from flowzero.delivery.s3 import client_from_config

    return BotoRequests(client_from_config(config))
