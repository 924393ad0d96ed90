"""Verification shared by downloaders: hash while streaming, and decide whether a present copy can be kept.

The manifest's sha256 is preferred; md5 is used when sha256 is absent. Files are hashed once, as they stream.
An S3 object counts as present and verified from its size and the digest flowzero stored in its metadata
(``x-amz-meta-sha256`` / ``x-amz-meta-md5``) at upload, so checking never downloads it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from flowzero.errors import TransferError
from flowzero.models import FailureReason, TransferJob

CHUNK_SIZE = 1024 * 1024


class ChecksumMismatch(TransferError):
    """The bytes received do not match the manifest's size or digest."""

    default_reason = FailureReason.CHECKSUM


class StreamHasher:
    """The digest a job is verified with (sha256, else md5; sha256 when the manifest has none), fed once."""

    def __init__(self, job: TransferJob) -> None:
        self.expected: str | None
        if job.sha256:
            self.algorithm, self.expected = "sha256", job.sha256.lower()
        elif job.md5:
            self.algorithm, self.expected = "md5", job.md5.lower()
        else:
            self.algorithm, self.expected = "sha256", None
        self.expected_size = job.size
        self.reset()

    def reset(self) -> None:
        """Start over (the source restarted from byte 0)."""
        self._hash = hashlib.new(self.algorithm)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def check(self, name: str) -> str:
        """The digest if size and digest match the manifest, else :class:`ChecksumMismatch`."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise ChecksumMismatch(
                f"{name}: size mismatch: got {self.size} bytes, manifest says {self.expected_size}")
        digest = self.hexdigest()
        if self.expected is not None and digest != self.expected:
            raise ChecksumMismatch(
                f"{name}: {self.algorithm} mismatch: got {digest}, manifest says {self.expected}")
        return digest

    def metadata(self) -> dict[str, str]:
        """What to store with an S3 object so a later run can trust it without downloading it."""
        return {self.algorithm: self.hexdigest()}


def hash_file(path: str, algorithm: str) -> str:
    """The hex digest of a local file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def local_copy_verified(path: str, job: TransferJob) -> bool:
    """True if ``path`` exists with the manifest's size and digest (no known digest: size only)."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return False
    if not os.path.isfile(path):
        return False
    if job.size is not None and size != job.size:
        return False
    if job.sha256:
        return hash_file(path, "sha256") == job.sha256.lower()
    if job.md5:
        return hash_file(path, "md5") == job.md5.lower()
    return job.size is not None


def s3_copy_verified(head: dict[str, Any] | None, job: TransferJob) -> bool:
    """True if a HeadObject answer shows the manifest's size and the digest recorded at upload."""
    if not head:
        return False
    if job.size is not None and int(head.get("ContentLength", -1)) != job.size:
        return False
    meta = {k.lower(): str(v).lower() for k, v in (head.get("Metadata") or {}).items()}
    if job.sha256:
        return meta.get("sha256") == job.sha256.lower()
    if job.md5:
        return meta.get("md5") == job.md5.lower()
    return job.size is not None and "sha256" in meta
