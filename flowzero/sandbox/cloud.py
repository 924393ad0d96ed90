"""Cloud delivery as Planet does it: an order's files written straight into the customer's bucket.

An order may carry ``delivery.s3_compatible`` (endpoint, bucket, region, keys, use_path_style),
``delivery.amazon_s3`` (bucket, aws_region, keys) or ``delivery.destination`` (a Destinations API ``ref``), each
with an optional ``path_prefix``. When the order is accepted the sandbox checks it can write and delete
``<prefix>planetverify.txt``; once the files exist it uploads them to ``<path_prefix><order id>/<path>`` with
boto3 and the order's credentials, ``manifest.json`` last. Big files go up as multipart uploads (their ETag is
then no md5), as they do at Planet. Amazon S3 itself is never contacted: ``amazon_s3`` orders go to the
stand-in endpoint the sandbox was started with, or are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowzero.sandbox.api import ApiError, bad_request
from flowzero.sandbox.destinations import Destinations, check_parameters

VERIFY_NAME = "planetverify.txt"
MULTIPART_THRESHOLD = 8 * 1024 * 1024
_KINDS = ("s3_compatible", "amazon_s3", "destination")
_IGNORED = ("archive_type", "archive_filename", "single_archive")


class CloudDeliveryError(Exception):
    """Writing an order's files into its bucket failed; the message names the bucket, never a secret."""


@dataclass(frozen=True)
class CloudSpec:
    """Where and how one order's files are written."""

    kind: str
    bucket: str
    region: str
    endpoint: str | None
    path_style: bool
    path_prefix: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)

    def key(self, order_id: str, path: str) -> str:
        return f"{self.path_prefix}{order_id}/{path}"

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.path_prefix}"


def _prefix(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or value.startswith("/") or ".." in value.split("/") or "\\" in value:
        raise bad_request(f"delivery path_prefix {value!r} must be a relative key prefix",
                          "delivery.path_prefix")
    return value


def _describe_error(exc: Exception) -> str:
    """A boto error as one line: its code and message (boto never puts the secret key in them)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code, message = error.get("Code", ""), error.get("Message", "")
        return f"{code}: {message}".strip(": ") or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class CloudDelivery:
    """Turns delivery blocks into :class:`CloudSpec` and writes files to them."""

    def __init__(self, amazon_s3_endpoint: str | None = None) -> None:
        self.amazon_s3_endpoint = amazon_s3_endpoint
        self.destinations: Destinations | None = None

    # -- delivery blocks -------------------------------------------------------------------------------------

    def spec(self, delivery: Any) -> CloudSpec | None:
        """The cloud target of an order's ``delivery`` block (None: download links only), or a 400."""
        if delivery is None:
            return None
        if not isinstance(delivery, dict):
            raise bad_request("delivery must be an object", "delivery")
        unknown = sorted(set(delivery) - set(_KINDS) - set(_IGNORED))
        if unknown:
            raise bad_request(f"delivery: unknown field(s) {', '.join(unknown)}", f"delivery.{unknown[0]}")
        if delivery.get("archive_type") is not None:
            raise bad_request("delivery.archive_type: the sandbox delivers plain files, not archives",
                              "delivery.archive_type")
        kinds = [k for k in _KINDS if k in delivery]
        if not kinds:
            return None
        if len(kinds) > 1:
            raise bad_request(f"delivery: give one of {', '.join(_KINDS)}, not {' and '.join(kinds)}", "delivery")
        kind = kinds[0]
        block = delivery[kind]
        if not isinstance(block, dict):
            raise bad_request(f"delivery.{kind} must be an object", f"delivery.{kind}")
        prefix = _prefix(block.get("path_prefix"))
        if kind == "destination":
            if self.destinations is None:
                raise bad_request("delivery.destination: this sandbox has no Destinations API", "delivery")
            kind, parameters = self.destinations.resolve(block.get("ref"))
            unknown = sorted(set(block) - {"ref", "path_prefix"})
            if unknown:
                raise bad_request(f"delivery.destination: unknown field(s) {', '.join(unknown)}",
                                  "delivery.destination")
        else:
            parameters = check_parameters(kind, block, f"delivery.{kind}")
        return self._spec(kind, parameters, prefix)

    def _spec(self, kind: str, parameters: dict[str, Any], prefix: str) -> CloudSpec:
        if kind == "amazon_s3":
            if not self.amazon_s3_endpoint:
                raise bad_request("delivery.amazon_s3: the sandbox never contacts Amazon S3; start it with an "
                                  "amazon_s3_endpoint stand-in, or use s3_compatible", "delivery.amazon_s3")
            return CloudSpec(kind, parameters["bucket"], parameters["aws_region"], self.amazon_s3_endpoint, True,
                             prefix, parameters["aws_access_key_id"], parameters["aws_secret_access_key"])
        return CloudSpec(kind, parameters["bucket"], parameters["region"], parameters["endpoint"],
                         bool(parameters.get("use_path_style", False)), prefix, parameters["access_key_id"],
                         parameters["secret_access_key"])

    # -- the bucket ------------------------------------------------------------------------------------------

    def _client(self, spec: CloudSpec) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        config = BotoConfig(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
                            s3={"addressing_style": "path" if spec.path_style else "auto"})
        return boto3.session.Session().client(
            "s3", region_name=spec.region, endpoint_url=spec.endpoint, aws_access_key_id=spec.access_key_id,
            aws_secret_access_key=spec.secret_access_key, config=config)

    def verify_parameters(self, kind: str, parameters: dict[str, Any]) -> None:
        """Planet's access check for a destination being registered."""
        self.verify(self._spec(kind, parameters, ""))

    def verify(self, spec: CloudSpec) -> None:
        """Write and delete ``<prefix>planetverify.txt``; a 400 if the bucket refuses either."""
        key = f"{spec.path_prefix}{VERIFY_NAME}"
        try:
            client = self._client(spec)
            client.put_object(Bucket=spec.bucket, Key=key, Body=b"planet verify\n")
            client.delete_object(Bucket=spec.bucket, Key=key)
        except Exception as exc:
            raise ApiError(400, f"Unable to write to and delete from {spec.where}: {_describe_error(exc)}",
                           {"delivery": [{"message": "check the bucket, endpoint and credentials"}]}) from None

    def deliver(self, spec: CloudSpec, order_id: str, files: list[tuple[str, Path, str]],
                manifest: bytes) -> None:
        """Upload ``(path, local file, media type)`` of one order, then its manifest.json."""
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                                  use_threads=False)
        try:
            client = self._client(spec)
            for path, local, media_type in files:
                client.upload_file(str(local), spec.bucket, spec.key(order_id, path),
                                   ExtraArgs={"ContentType": media_type or "application/octet-stream"},
                                   Config=transfer)
            client.put_object(Bucket=spec.bucket, Key=spec.key(order_id, "manifest.json"), Body=manifest,
                              ContentType="application/json")
        except Exception as exc:
            raise CloudDeliveryError(f"delivery to {spec.where} failed: {_describe_error(exc)}") from None
