"""The ``fast`` downloader: a typed facade over the Rust core ``flowzero._fast``.

One tokio runtime moves the whole batch with the GIL released: streaming GETs hashed once as they arrive, fed
straight into S3 multipart uploads (or a temp file beside the target), committed only when the manifest digest
matches. The extension is imported lazily so that CLI start-up does not load it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import ModuleType
from typing import ClassVar

from flowzero.downloaders.base import DownloadOptions
from flowzero.errors import PluginError, TransferError
from flowzero.hookspecs import hookimpl
from flowzero.models import FailureReason, TransferJob, TransferResult
from flowzero.plugins import Registrar
from flowzero.redact import redact

_REFUSED_LINK = re.compile(r"source answered HTTP (401|403|410)\b")
_CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
                     "credentials) with write access to the bucket")


def load_extension() -> ModuleType:
    """``flowzero._fast``, or a PluginError saying how to get it."""
    try:
        from flowzero import _fast
    except ImportError as exc:
        raise PluginError(
            f"the 'fast' downloader needs flowzero's compiled Rust core, which is not available ({exc})",
            hint="reinstall flowzero with a Rust toolchain (pip install .), or use --downloader threads",
        ) from None
    return _fast


class FastDownloader:
    """Rust core: one hash pass per file, S3 multipart straight from the HTTP stream, resumable."""

    name: ClassVar[str] = "fast"
    description: ClassVar[str] = (
        "Rust core: streams into S3 multipart uploads or local files, verifies with one hash pass, resumes"
    )

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    def transfer(self, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        """Move every job; one result per job, in order. Raises only for batch-wide trouble (credentials)."""
        if not jobs:
            return []
        native = load_extension()
        results = self._run(native, jobs)
        # As every downloader does: a checksum mismatch is fetched once more before it is a failure.
        again = [i for i, r in enumerate(results) if r.reason == FailureReason.CHECKSUM]
        if again:
            for i, result in zip(again, self._run(native, [jobs[i] for i in again])):
                results[i] = result
        return results

    def _run(self, native: ModuleType, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        opts = self.options
        native_jobs = [
            native.Job(j.url, j.destination, size=j.size, md5=j.md5 or None, sha256=j.sha256 or None)
            for j in jobs
        ]
        try:
            results = native.transfer(
                native_jobs,
                max_workers=opts.max_workers,
                overwrite=opts.overwrite,
                region=opts.s3_region or None,
                endpoint_url=opts.s3_endpoint_url or None,
                part_size=opts.part_size,
                timeout=opts.timeout,
                max_retries=opts.max_retries,
                progress=opts.progress,
            )
        except native.CredentialsError as exc:
            raise TransferError(redact(str(exc)), hint=_CREDENTIALS_HINT) from None
        except native.TransferError as exc:
            raise TransferError(redact(str(exc))) from None
        return [_result(job, r) for job, r in zip(jobs, results)]


def _result(job: TransferJob, r: object) -> TransferResult:
    error = redact(r.error) if r.error else None  # type: ignore[attr-defined]
    reason = None if r.ok else _reason(error or "")  # type: ignore[attr-defined]
    if reason == FailureReason.EXPIRED_LINK:
        error = f"{error} (the download link may have expired)"
    return TransferResult(job=job, ok=r.ok, skipped=r.skipped, bytes=r.bytes,  # type: ignore[attr-defined]
                          seconds=r.seconds, digest=r.digest, error=error, reason=reason)  # type: ignore[attr-defined]


def _reason(error: str) -> FailureReason:
    """Why the Rust core failed a file (until its results carry the reason themselves)."""
    if _REFUSED_LINK.search(error):
        return FailureReason.EXPIRED_LINK
    return FailureReason.CHECKSUM if "mismatch" in error else FailureReason.OTHER


@hookimpl
def register_downloaders(register: Registrar) -> None:
    register(FastDownloader)
