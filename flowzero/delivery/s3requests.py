"""The few S3 requests a delivery makes beside moving files: ``metadata.json``, the STAC catalog, and aborting
killed runs' uploads.

One small interface, two implementations: boto3 for the threads, s5cmd and third-party downloaders (boto3's
full credential chain: profiles, SSO, instance roles), and a downloader's own S3 client where its class offers one
(``s3_objects(config)``; the Rust core's ``S3Objects`` for ``fast``, whose runs then never import boto3, at
about 0.4 s of CPU per run, and use the same credentials, endpoint and signer as the transfers themselves).
Reading and listing (only the STAC catalog's rebuild needs them) go through boto3 on both.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Callable, Protocol

from flowzero import plugins
from flowzero.s3 import client_from_config

META_PREFIX = "x-amz-meta-"


class S3Requests(Protocol):
    def head_metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        """The object's user metadata (lower-case names, no ``x-amz-meta-``), or None if there is no object."""

    def put_document(self, bucket: str, key: str, data: bytes, content_type: str,
                     metadata: dict[str, str]) -> None:
        """PUT a small object in one request."""

    def get_document(self, bucket: str, key: str) -> bytes | None:
        """A small object's bytes, or None if there is no object."""

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""

    def uploads(self, bucket: str, prefix: str) -> list[tuple[str, str, dt.datetime | None]]:
        """Incomplete multipart uploads under ``prefix``: (key, upload id, when it began, if known)."""

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort one multipart upload."""


class BotoRequests:
    """:class:`S3Requests` over a boto3 client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def head_metadata(self, bucket: str, key: str) -> dict[str, str] | None:
        # Not at the top: importing flowzero.delivery.cloud runs its __init__, which imports .arrange, which
        # imports this module (a top-level import here fails with a partially initialised module).
        from flowzero.delivery.cloud.copy import head  # noqa: PLC0415

        found = head(self.client, bucket, key)
        return None if found is None else {k.lower(): v for k, v in (found.get("Metadata") or {}).items()}

    def put_document(self, bucket: str, key: str, data: bytes, content_type: str,
                     metadata: dict[str, str]) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata)

    def get_document(self, bucket: str, key: str) -> bytes | None:
        from flowzero.delivery.cloud.copy import is_not_found  # noqa: PLC0415 (a cycle: see head_metadata)

        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []) or [])
        return sorted(keys)

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


class ObjectRequests:
    """:class:`S3Requests` over a downloader's own S3 client (``s3_objects``: the Rust core's ``S3Objects`` for
    ``fast``: ``head``, ``put``, ``list_uploads``, ``abort``); reads and listings by boto3."""

    def __init__(self, objects: Any, boto: Callable[[], BotoRequests] | None = None) -> None:
        self.objects = objects
        self._boto = functools.cache(boto) if boto is not None else None

    def _reader(self) -> BotoRequests:
        if self._boto is None:
            raise ValueError("these S3 requests cannot read objects")
        return self._boto()

    def get_document(self, bucket: str, key: str) -> bytes | None:
        return self._reader().get_document(bucket, key)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return self._reader().list_keys(bucket, prefix)

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
    """The S3 requests of a delivery: through the downloader's own S3 client when its class offers one
    (``s3_objects(config)``: the Rust core's for ``fast``, so that path never loads boto3), boto3's otherwise."""
    if downloader:
        own = getattr(plugins.downloaders().get(downloader), "s3_objects", None)
        if callable(own):
            return ObjectRequests(own(config), lambda: boto_requests(config))
    return boto_requests(config)


def boto_requests(config: Any) -> BotoRequests:
    """S3 requests through boto3 (reads, listings and writes)."""
    return BotoRequests(client_from_config(config))
