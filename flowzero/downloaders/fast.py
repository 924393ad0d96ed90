"""The ``fast`` downloader: a typed facade over the Rust core ``flowzero._fast``.

One tokio runtime moves the whole batch with the GIL released: streaming GETs hashed once as they arrive, fed
straight into S3 multipart uploads (or a temp file beside the target), committed only when the manifest digest
matches. The extension is imported lazily so that CLI start-up does not load it. AWS credentials, region,
endpoint and CA bundle come from :mod:`flowzero.aws`, as for every downloader; the core asks the credential
provider again before temporary credentials expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

from flowzero import aws
from flowzero.downloaders.base import DownloadOptions
from flowzero.errors import PluginError, TransferError
from flowzero.hookspecs import hookimpl
from flowzero.models import FailureReason, TransferJob, TransferResult
from flowzero.plugins import Registrar
from flowzero.redact import redact


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


def native_s3_access(options: DownloadOptions) -> dict[str, Any]:
    """The keyword arguments that give the Rust core a run's S3 access (region, endpoint, credentials, CA)."""
    access = aws.resolve(options.s3_region, options.s3_endpoint_url, options.s3_profile)
    return {"region": access.region, "endpoint_url": access.endpoint_url or None,
            "credentials": access.provider(), "ca_bundle": access.ca_bundle}


class FastDownloader:
    """Rust core: one hash pass per file, S3 multipart straight from the HTTP stream, resumable."""

    name: ClassVar[str] = "fast"
    description: ClassVar[str] = (
        "Rust core: streams into S3 multipart uploads or local files, verifies with one hash pass, resumes"
    )

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    @classmethod
    def s3_objects(cls, config: Any) -> Any:
        """The Rust core's client for a delivery's few other S3 requests (metadata.json, cleaning after killed
        runs), with the transfers' credentials, endpoint and signer, so the fast path never loads boto3."""
        access = aws.resolve(config.s3.region, config.s3.endpoint_url, config.s3.profile)
        return load_extension().S3Objects(
            region=access.region, endpoint_url=access.endpoint_url or None, credentials=access.provider(),
            ca_bundle=access.ca_bundle, timeout=config.planet.timeout, max_retries=config.planet.max_retries)

    def transfer(self, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        """Move every job; one result per job, in order. Raises only for batch-wide trouble (credentials)."""
        if not jobs:
            return []
        native = load_extension()
        if any(job.destination.startswith("s3://") for job in jobs):
            access = native_s3_access(self.options)
        else:
            access = {"ca_bundle": aws.ca_bundle()}
        results = self._run(native, jobs, access)
        # As every downloader does: a checksum mismatch is fetched once more before it is a failure.
        again = [i for i, r in enumerate(results) if r.reason is FailureReason.CHECKSUM]
        if again:
            for i, result in zip(again, self._run(native, [jobs[i] for i in again], access)):
                results[i] = result
        return results

    def _run(self, native: ModuleType, jobs: Sequence[TransferJob], access: dict[str, Any]) -> list[TransferResult]:
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
                part_size=opts.part_size,
                timeout=opts.timeout,
                max_retries=opts.max_retries,
                progress=opts.progress,
                download_rate=opts.download_rate,
                rate_file=opts.rate_file,
                throttle_budget=opts.throttle_budget,
                max_unknown_size=opts.max_unknown_size,
                min_speed=opts.min_speed,
                **access,
            )
        except native.CredentialsError as exc:
            raise TransferError(redact(str(exc)), hint=aws.CREDENTIALS_HINT) from None
        except native.TransferError as exc:
            raise TransferError(redact(str(exc))) from None
        return [_result(job, r) for job, r in zip(jobs, results)]


def _result(job: TransferJob, r: Any) -> TransferResult:
    """A native JobResult as the Python contract: the reason typed, the error redacted (and, for a refused link,
    saying in words that it may have expired, as the other downloaders do)."""
    reason = FailureReason(r.reason) if r.reason else None
    error = redact(r.error) if r.error else None
    if error and reason is FailureReason.EXPIRED_LINK:
        error += " (the download link may have expired)"
    return TransferResult(job=job, ok=r.ok, skipped=r.skipped, bytes=r.bytes, seconds=r.seconds, digest=r.digest,
                          error=error, reason=reason)


@hookimpl
def register_downloaders(register: Registrar) -> None:
    register(FastDownloader)
