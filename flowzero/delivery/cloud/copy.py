"""Move one staged object to its final key inside S3, verified against the manifest, bytes never leaving S3.

Proof that the staged object is what Planet's manifest describes is taken from the cheapest source that has it:

1. its ETag, when it is a plain md5 (a single-part upload), against the manifest md5;
2. a full-object ``ChecksumSHA256`` S3 already holds for it, against the manifest sha256;
3. the SHA-256 S3 computes while copying (``CopyObject`` with ``ChecksumAlgorithm=SHA256``), made to a temporary
   key first so that nothing unverified ever sits at the final key;
4. only as a last resort (objects above 5 GiB, endpoints without checksums): reading it once and hashing it.

The final object is written with ``CopyObject`` (``UploadPartCopy`` parts above 5 GiB), conditional on the ETag
that was verified, and carries ``x-amz-meta-sha256`` / ``md5`` so a rerun skips it after one HEAD, like the
download path does. The staged copy is deleted once the final one is in place.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from flowzero.downloaders.verify import ChecksumMismatch, StreamHasher, s3_copy_verified
from flowzero.models import TransferJob, TransferResult
from flowzero.redact import redact
from flowzero.s3 import split_s3_url

MAX_SINGLE_COPY = 5 * 1024**3  # CopyObject's limit; above it, UploadPartCopy
COPY_PART_SIZE = 512 * 1024**2
MAX_PARTS = 10_000
_READ_CHUNK = 1024 * 1024
_CHECKSUM_UNSUPPORTED = {"InvalidArgument", "InvalidRequest", "NotImplemented", "XAmzContentChecksumMismatch"}


class _Refused(Exception):
    """The staged object cannot be placed (missing, wrong size or digest); ``str`` says why."""


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(((response or {}).get("Error") or {}).get("Code", "")) if isinstance(response, dict) else ""


def describe_error(exc: BaseException) -> str:
    """One redacted line for a boto error (code and message) or any other exception."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return redact(f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": "))
    return redact(f"{type(exc).__name__}: {exc}")


def head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HeadObject with checksums, or None when there is no such object."""
    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def is_not_found(exc: BaseException) -> bool:
    """Is this boto error S3's "no such object"?"""
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def cheap_proof(found: dict[str, Any], job: TransferJob) -> tuple[str, bool] | None:
    """(how, matches) from what HeadObject already tells, or None when it proves nothing."""
    etag = str(found.get("ETag", "")).strip('"').lower()
    if job.md5 and len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
        return "etag-md5", etag == job.md5.lower()
    checksum = str(found.get("ChecksumSHA256") or "")
    if job.sha256 and checksum and "-" not in checksum:
        return "checksum-sha256", checksum == _b64(job.sha256)
    return None


def final_metadata(job: TransferJob) -> dict[str, str]:
    """The digests a verified final object carries (what :func:`s3_copy_verified` checks on a rerun)."""
    meta = {}
    if job.sha256:
        meta["sha256"] = job.sha256.lower()
    if job.md5:
        meta["md5"] = job.md5.lower()
    return meta


class S3Arranger:
    """Places staged objects at their final keys; one instance serves many threads (boto3 clients are safe)."""

    def __init__(self, client: Any, overwrite: bool = False, multipart_threshold: int = MAX_SINGLE_COPY,
                 part_size: int = COPY_PART_SIZE, content_type: str = "image/tiff") -> None:
        self.client = client
        self.overwrite = overwrite
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.content_type = content_type

    def place(self, job: TransferJob) -> TransferResult:
        """``job.url`` (``s3://`` staged object) -> ``job.destination`` (``s3://`` final key), verified."""
        started = time.perf_counter()
        try:
            result = self._place(job)
        except _Refused as exc:
            result = TransferResult(job, ok=False, error=redact(str(exc)))
        except Exception as exc:
            result = TransferResult(job, ok=False, error=describe_error(exc))
        result.seconds = time.perf_counter() - started
        return result

    def _place(self, job: TransferJob) -> TransferResult:
        source_bucket, source_key = split_s3_url(job.url)
        bucket, key = split_s3_url(job.destination)
        final = head(self.client, bucket, key)
        staged = head(self.client, source_bucket, source_key)
        digest = (job.sha256 or job.md5 or "").lower() or None
        if final is not None and s3_copy_verified(final, job) and (not self.overwrite or staged is None):
            if staged is not None:
                self.client.delete_object(Bucket=source_bucket, Key=source_key)
            return TransferResult(job, ok=True, skipped=True, digest=digest)
        if staged is None:
            raise _Refused(f"the staged copy {job.url} is missing (was it deleted before it was arranged?)")
        size = int(staged.get("ContentLength", -1))
        if job.size is not None and size != job.size:
            raise _Refused(f"size mismatch: the staged copy has {size} bytes, the manifest says {job.size}")
        if not (job.sha256 or job.md5):
            raise _Refused("the manifest gives no digest for it: it cannot be verified")
        etag = str(staged.get("ETag", ""))
        read = 0
        proof = cheap_proof(staged, job)
        if proof is not None and not proof[1]:
            raise _Refused(f"{proof[0]} mismatch: the staged copy is not the file the manifest describes")
        if proof is None and job.sha256 and size <= self.multipart_threshold:
            proof = self._copy_with_checksum(job, source_bucket, source_key, etag, bucket, key)
        if proof is None:
            read = self._read_and_hash(job, source_bucket, source_key, etag)
            proof = ("read", True)
        if proof[0] != "copy-checksum":  # that path already wrote the final object
            self._copy(source_bucket, source_key, etag, size, bucket, key, final_metadata(job))
        self.client.delete_object(Bucket=source_bucket, Key=source_key)
        return TransferResult(job, ok=True, bytes=read, digest=digest)

    # -- proofs ---------------------------------------------------------------------------------------------

    def _copy_with_checksum(self, job: TransferJob, source_bucket: str, source_key: str, etag: str,
                            bucket: str, key: str) -> tuple[str, bool] | None:
        """Copy to a temporary key with S3 computing SHA-256; if it matches, move it to the final key."""
        assert job.sha256
        temp = f"{key}.flowzero-tmp-{secrets.token_hex(4)}"
        try:
            answer = self.client.copy_object(
                Bucket=bucket, Key=temp, CopySource={"Bucket": source_bucket, "Key": source_key},
                CopySourceIfMatch=etag, ChecksumAlgorithm="SHA256", MetadataDirective="REPLACE",
                Metadata=final_metadata(job), ContentType=self.content_type)
        except Exception as exc:
            if _error_code(exc) in _CHECKSUM_UNSUPPORTED:
                return None
            raise
        try:
            got = str((answer.get("CopyObjectResult") or {}).get("ChecksumSHA256") or "")
            if not got or "-" in got:
                return None
            if got != _b64(job.sha256):
                raise _Refused("sha256 mismatch (computed by S3 while copying): the staged copy is not the "
                               "file the manifest describes")
            temp_etag = str((answer.get("CopyObjectResult") or {}).get("ETag", ""))
            self.client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": temp},
                                    CopySourceIfMatch=temp_etag, MetadataDirective="COPY")
            return "copy-checksum", True
        finally:
            self.client.delete_object(Bucket=bucket, Key=temp)

    def _read_and_hash(self, job: TransferJob, bucket: str, key: str, etag: str) -> int:
        """The last resort: stream the staged object once through the hash; bytes read."""
        hasher = StreamHasher(job)
        body = self.client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
        try:
            for chunk in body.iter_chunks(_READ_CHUNK):
                hasher.update(chunk)
        finally:
            body.close()
        try:
            hasher.check(job.name or key)
        except ChecksumMismatch as exc:
            raise _Refused(exc.message) from None
        return hasher.size

    # -- copies ---------------------------------------------------------------------------------------------

    def _copy(self, source_bucket: str, source_key: str, etag: str, size: int, bucket: str, key: str,
              metadata: dict[str, str]) -> None:
        source = {"Bucket": source_bucket, "Key": source_key}
        if size <= self.multipart_threshold:
            self.client.copy_object(Bucket=bucket, Key=key, CopySource=source, CopySourceIfMatch=etag,
                                    MetadataDirective="REPLACE", Metadata=metadata, ContentType=self.content_type)
            return
        part_size = min(max(self.part_size, -(-size // MAX_PARTS)), MAX_SINGLE_COPY)
        upload = self.client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata,
                                                     ContentType=self.content_type)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                answer = self.client.upload_part_copy(
                    Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}", CopySourceIfMatch=etag)
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            self.client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            except Exception:
                pass
            raise
