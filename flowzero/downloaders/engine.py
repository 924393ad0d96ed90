"""The transfer of one job, shared by the ``threads`` and ``s5cmd`` downloaders.

A :class:`TransferSession` holds the pooled HTTP client and (when needed) one S3 client for a whole run;
``transfer_one`` is safe to call from many threads at once. It imports httpx (through :mod:`.http`) at the top:
the downloaders import it inside the functions that transfer.
"""

from __future__ import annotations

import mimetypes
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flowzero.downloaders.base import DownloadOptions
from flowzero.downloaders.http import StreamRules, make_http_client, stream_to_sink  # noqa: TID253 (loaded late)
from flowzero.downloaders.sinks import LocalSink, S3Sink, Sink
from flowzero.downloaders.verify import (
    ChecksumMismatch,
    StreamHasher,
    local_copy_verified,
    s3_copy_verified,
)
from flowzero.errors import TransferError
from flowzero.models import FailureReason, TransferJob, TransferResult
from flowzero.pacing import Pacer
from flowzero.redact import redact
from flowzero.s3 import make_s3_client, split_s3_url

_REFUSED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                            "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId"})
_CREDENTIALS_HINT = ("check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile or role in use) and that "
                     "they may write to the bucket")


class S3CredentialsError(TransferError):
    """S3 refused the credentials: every file of the run would fail the same way, so the run stops at once."""

    default_reason = FailureReason.AUTH


def s3_refusal(exc: BaseException, bucket: str = "", access_key: str = "") -> S3CredentialsError | None:
    """The run-stopping error for an S3 answer that refuses the credentials (HTTP 403), else None.

    The line reads as the Rust core's: the operation, the bucket and only the first eight characters of the
    access key id, so a user sees which identity was refused without the key appearing in a log.
    """
    if isinstance(exc, S3CredentialsError):
        return exc
    try:
        from botocore.exceptions import ClientError, NoCredentialsError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, NoCredentialsError):
        return S3CredentialsError("no AWS credentials were found for S3", hint=_CREDENTIALS_HINT)
    if not isinstance(exc, ClientError):
        return None
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code not in _REFUSED_CODES and status != 403 and code != "403":
        return None
    detail = code if code and code != "403" else "Forbidden"
    who = f" on bucket '{bucket}'" if bucket else ""
    if access_key:
        who += f" for access key {access_key[:8]}…"
    return S3CredentialsError(f"S3 refused the credentials for {exc.operation_name}{who} (HTTP 403 {detail})",
                              hint=_CREDENTIALS_HINT)


def _access_key_of(client: Any) -> str:
    """The access key id a boto3 client signs with ("" if it cannot be read); only its prefix is ever shown."""
    try:
        credentials = client._request_signer._credentials  # botocore keeps the signer's credentials private
        return str(credentials.get_frozen_credentials().access_key) if credentials is not None else ""
    except Exception:
        return ""


class TransferSession:
    """Clients for one run. Use as a context manager so connections are closed."""

    def __init__(self, options: DownloadOptions, need_s3: bool = False, s3_client: Any = None) -> None:
        self.options = options
        self.cancel = threading.Event()  # set on Ctrl-C: running transfers stop and clean up
        self.http = make_http_client(max(1, options.max_workers), options.timeout)
        pacer = None
        if options.download_rate:
            pacer = Pacer(options.download_rate, Path(options.rate_file) if options.rate_file else None)
        self.rules = StreamRules(max_retries=options.max_retries, pacer=pacer,
                                 throttle_budget=options.throttle_budget, max_unknown_size=options.max_unknown_size,
                                 min_speed=options.min_speed, stall_seconds=options.timeout)
        self._s3 = s3_client
        if self._s3 is None and need_s3:
            self._s3 = make_s3_client(options.s3_region, options.s3_endpoint_url, options.max_workers,
                                      options.max_retries, options.s3_profile)

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            raise TransferError("an s3:// destination needs an S3 client")
        return self._s3

    def __enter__(self) -> TransferSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
        if self.rules.pacer is not None:
            self.rules.pacer.close()

    # -- one job ---------------------------------------------------------------------------------------------

    def transfer_one(self, job: TransferJob) -> TransferResult:
        """Move one job; never raises for a failed file (the error is in the result, secrets redacted)."""
        started = time.monotonic()
        try:
            if not self.options.overwrite and self.is_present(job):
                result = TransferResult(job, ok=True, skipped=True, seconds=time.monotonic() - started)
            else:
                digest, size = self._fetch_verified(job)
                result = TransferResult(job, ok=True, bytes=size, digest=digest,
                                        seconds=time.monotonic() - started)
        except Exception as exc:
            refusal = self._refusal(exc, job)
            if refusal is not None:  # not this file's fault: stop the run with one clear error
                raise refusal from None
            message = exc.message if isinstance(exc, TransferError) else f"{type(exc).__name__}: {exc}"
            reason = exc.reason if isinstance(exc, TransferError) else FailureReason.OTHER
            result = TransferResult(job, ok=False, error=redact(message), seconds=time.monotonic() - started,
                                    reason=reason)
        _report_file(self.options.progress, result)
        return result

    def is_present(self, job: TransferJob) -> bool:
        """True if the destination already holds a verified copy (S3: from HeadObject, never a download)."""
        if job.destination.startswith("s3://"):
            bucket, key = split_s3_url(job.destination)
            return s3_copy_verified(self.head(bucket, key), job)
        return local_copy_verified(job.destination, job)

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            refusal = s3_refusal(exc, bucket, _access_key_of(self.s3))
            if refusal is not None:
                raise refusal from None
            raise

    def _refusal(self, exc: BaseException, job: TransferJob) -> S3CredentialsError | None:
        bucket = split_s3_url(job.destination)[0] if job.destination.startswith("s3://") else ""
        return s3_refusal(exc, bucket, _access_key_of(self._s3) if self._s3 is not None else "")

    def _open_sink(self, job: TransferJob, hasher: StreamHasher) -> Sink:
        if job.destination.startswith("s3://"):
            bucket, key = split_s3_url(job.destination)
            expected = {hasher.algorithm: hasher.expected} if hasher.expected else {}
            content_type = mimetypes.guess_type(key)[0] or ""
            return S3Sink(self.s3, bucket, key, self.options.part_size, expected, content_type)
        return LocalSink(job.destination)

    def _fetch_verified(self, job: TransferJob) -> tuple[str, int]:
        """Stream, verify, then commit; a checksum mismatch is fetched once more before it is a failure."""
        hasher = StreamHasher(job)
        sink = self._open_sink(job, hasher)
        try:
            for attempt in (1, 2):
                stream_to_sink(self.http, job, sink, hasher, self.rules, self.options.progress, self.cancel)
                try:
                    digest = hasher.check(job.name or "file")
                    break
                except ChecksumMismatch:
                    if attempt == 2:
                        raise
                    if self.options.progress and sink.offset:
                        self.options.progress(-sink.offset)
                    sink.reset()
                    hasher.reset()
            size = sink.offset
            sink.commit(hasher.metadata())
        except BaseException:
            sink.abort()
            raise
        return digest, size


def run_pool(session: TransferSession, jobs: Sequence[TransferJob], workers: int) -> list[TransferResult]:
    """``session.transfer_one`` over ``workers`` threads; on Ctrl-C, running transfers stop and clean up."""
    pool = ThreadPoolExecutor(max(1, min(workers, len(jobs))))
    try:
        results = list(pool.map(session.transfer_one, jobs))
    except BaseException:
        session.cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _report_file(progress: Any, result: TransferResult) -> None:
    file_done = getattr(progress, "file_done", None)
    if callable(file_done):
        file_done(result)
