"""Where a delivery goes: a local folder or an S3 bucket/prefix, parsed once from ``--output``."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowzero.delivery.layout import join_key, split_result_name
from flowzero.downloaders.sinks import LocalSink
from flowzero.errors import ConfigError, UsageError
from flowzero.s3 import split_s3_url

if TYPE_CHECKING:
    from flowzero.delivery.s3requests import S3Requests


@dataclass(frozen=True)
class Destination:
    """``kind`` "local": ``root`` is an folder; ``kind`` "s3": ``root`` is a bucket, plus ``prefix``."""

    kind: str
    root: str
    prefix: str = ""

    @property
    def is_s3(self) -> bool:
        return self.kind == "s3"

    def target(self, key: str) -> str:
        """The full destination of relative ``key``: a local path or an ``s3://bucket/key`` URL."""
        split_result_name(key)  # a last guard: never a key that climbs out of the destination
        if self.is_s3:
            return f"s3://{self.root}/{join_key(self.prefix, key)}"
        return str(Path(self.root, *key.split("/")))

    def describe(self) -> str:
        """How the destination is shown and recorded in the order store."""
        if self.is_s3:
            return f"s3://{self.root}/{self.prefix.strip('/')}".rstrip("/") + "/"
        return self.root


def parse_output(output: str, config: Any) -> Destination:
    """``s3`` (config s3.bucket_name), ``s3://bucket/prefix`` or a local folder."""
    value = output.strip()
    if not value:
        raise UsageError("--output is empty", hint="use s3, s3://bucket/prefix or a folder")
    if value.lower() == "s3":
        bucket = config.s3.bucket_name
        if not bucket:
            raise ConfigError(
                "--output s3 needs an S3 bucket, but s3.bucket_name is not set",
                hint="set s3.bucket_name in config.yaml or FLOWZERO_S3_BUCKET_NAME, or use --output s3://bucket/prefix",
            )
        return Destination("s3", bucket, "")
    if value.lower().startswith("s3://"):
        bucket, _, prefix = value[5:].partition("/")
        if not bucket:
            raise UsageError(f"--output {value}: no bucket name", hint="use s3://bucket/prefix")
        prefix = prefix.strip("/")
        if prefix:
            split_result_name(prefix)
        return Destination("s3", bucket, prefix)
    folder = os.path.abspath(os.path.expanduser(value))
    check_writable_folder(folder, f"--output {value}")
    return Destination("local", folder)


def check_writable_folder(folder: str, what: str) -> None:
    """A local destination is a folder (or can become one) that files can be created in: checked before anything
    is fetched, not once per file afterwards. The nearest existing folder is tried with a nameless temp file,
    so a read-only place, or one like /proc where nothing can be created even by root, is found at once."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"{what}: {folder} is a file, not a folder", hint="give a folder; it is created if missing")
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{what}: {existing} is a file, so no folder can be made under it",
                         hint="give a folder; it is created if missing")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"{what}: cannot create files in {existing} ({exc.strerror or exc})",
                         hint="choose a folder you can write to") from None


def write_document(destination: Destination, key: str, data: bytes, s3: S3Requests | None = None) -> bool:
    """Write a small file (metadata.json) atomically; False when an identical copy is already there.

    ``s3`` makes the requests for an S3 destination (see :mod:`flowzero.delivery.s3requests`).
    """
    digest = hashlib.sha256(data).hexdigest()
    target = destination.target(key)
    if destination.is_s3:
        if s3 is None:
            raise ValueError("an S3 destination needs S3 requests")
        bucket, object_key = split_s3_url(target)
        try:
            present = s3.head_metadata(bucket, object_key)
        except Exception:  # e.g. a key allowed to PutObject but not to read: just write it
            present = None
        if (present or {}).get("sha256") == digest:
            return False
        s3.put_document(bucket, object_key, data, "application/json", {"sha256": digest})
        return True
    try:
        with open(target, "rb") as handle:
            if hashlib.sha256(handle.read()).hexdigest() == digest:
                return False
    except OSError:
        pass
    sink = LocalSink(target)
    try:
        sink.write(data)
        sink.commit({})
    except BaseException:
        sink.abort()
        raise
    return True
