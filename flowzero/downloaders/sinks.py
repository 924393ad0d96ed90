"""Where streamed bytes land before they are verified: nothing ever appears at a final name half-written.

Local: a hidden temp file in the destination folder, fsync'd and renamed over the final name with os.replace;
the file gets the mode any newly created file gets (``0666 & ~umask``), as the ``fast`` downloader's does,
not mkstemp's private 0600.
S3: a buffer of one part; small files are uploaded with one PutObject once verified, large ones as a multipart
upload that is completed only after verification and aborted on any failure.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, Protocol

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest allowed part (except the last)


class Sink(Protocol):
    """A destination being written: ``offset`` bytes so far; ``reset`` starts over from byte 0."""

    offset: int

    def write(self, data: bytes) -> None: ...

    def reset(self) -> None: ...

    def commit(self, metadata: dict[str, str]) -> None: ...

    def abort(self) -> None: ...


class LocalSink:
    """A temp file next to ``path``; ``commit`` fsyncs and renames it into place."""

    def __init__(self, path: str) -> None:
        self.path = path
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        # .flowzero-tmp-<name>.<pid>.<random>.part: the pid lets a later run tell a killed run's leftover from a
        # live run's file (flowzero.delivery.leftovers).
        prefix = f".flowzero-tmp-{os.path.basename(path)[:100]}.{os.getpid()}."
        fd, self.temp_path = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)
        self._file = os.fdopen(fd, "wb")
        self.offset = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.offset += len(data)

    def reset(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self.offset = 0

    def commit(self, metadata: dict[str, str]) -> None:
        self._file.flush()
        os.fchmod(self._file.fileno(), 0o666 & ~current_umask())
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp_path, self.path)
        _fsync_dir(os.path.dirname(self.path) or ".")

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells (``/proc/self/status``); elsewhere it is
    set and restored at once, under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3Sink:
    """An object being uploaded to ``bucket``/``key``; memory is bounded by one part."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int,
                 expected_metadata: dict[str, str] | None = None, content_type: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_size = max(MIN_PART_SIZE, part_size)
        # Known digests go into the object's metadata at creation; it is completed only if they match.
        self.expected_metadata = dict(expected_metadata or {})
        self.content_type = content_type
        self.offset = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.offset += len(data)
        while len(self._buffer) >= self.part_size:
            chunk = bytes(self._buffer[: self.part_size])
            del self._buffer[: self.part_size]
            self._upload_part(chunk)

    def _extra(self, metadata: dict[str, str]) -> dict[str, Any]:
        extra: dict[str, Any] = {"Metadata": metadata}
        if self.content_type:
            extra["ContentType"] = self.content_type
        return extra

    def _upload_part(self, chunk: bytes) -> None:
        if self._upload_id is None:
            answer = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self._extra(self.expected_metadata))
            self._upload_id = answer["UploadId"]
        number = len(self._parts) + 1
        answer = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                         PartNumber=number, Body=chunk)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def reset(self) -> None:
        self.abort()
        self._buffer = bytearray()
        self.offset = 0

    def commit(self, metadata: dict[str, str]) -> None:
        """Upload what is buffered and make the object visible; ``metadata`` are the verified digests."""
        if self._upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer),
                                   **self._extra({**self.expected_metadata, **metadata}))
            self._buffer = bytearray()
            return
        if self._buffer or not self._parts:
            self._upload_part(bytes(self._buffer))
            self._buffer = bytearray()
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                              MultipartUpload={"Parts": self._parts})
        self._upload_id = None
        if not set(metadata) <= set(self.expected_metadata):
            # The digest was not known when the upload began: record it now (server-side copy, no download).
            source = {"Bucket": self.bucket, "Key": self.key}
            extra = self._extra({**self.expected_metadata, **metadata})
            self.client.copy_object(Bucket=self.bucket, Key=self.key, CopySource=source,
                                    MetadataDirective="REPLACE", **extra)

    def abort(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._parts = []
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            except Exception:  # best effort: a lifecycle rule cleans up what an abort could not
                pass
