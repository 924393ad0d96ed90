"""Type stubs for the Rust extension module built from flowzero_fast/."""

from collections.abc import Sequence
from typing import Callable, Optional, final

def version() -> str:
    """Version of the compiled Rust core."""

RETRYABLE_STATUSES: list[int]  # flowzero.transient.RETRYABLE_STATUSES, kept equal
PACE_BACKOFF: float  # flowzero.pacing.BACKOFF: the pacing file's protocol, kept equal
PACE_RECOVERY_STEPS: float  # flowzero.pacing.RECOVERY_STEPS
PACE_MAX_BACKOFF_FACTOR: float  # flowzero.pacing.MAX_BACKOFF_FACTOR

class TransferError(Exception):
    """A batch of transfers could not run (single-file failures are results, not exceptions)."""

class CredentialsError(TransferError):
    """S3 credentials are missing or were refused (403, InvalidAccessKeyId, SignatureDoesNotMatch...)."""

@final
class Job:
    """One file to move: source URL, destination (``s3://bucket/key`` or a local path), size, digests."""

    url: str
    destination: str
    size: Optional[int]
    md5: Optional[str]
    sha256: Optional[str]
    def __init__(
        self,
        url: str,
        destination: str,
        size: Optional[int] = None,
        md5: Optional[str] = None,
        sha256: Optional[str] = None,
    ) -> None: ...

@final
class JobResult:
    """What happened to one job: ``digest`` is the verified hex digest, ``error`` one redacted line, ``reason``
    why it failed (a value of ``flowzero.models.FailureReason``: expired_link, checksum, auth, rate_limited,
    too_large, other), ``throttled`` how many 429 answers it met."""

    ok: bool
    skipped: bool
    bytes: int
    seconds: float
    digest: Optional[str]
    error: Optional[str]
    reason: Optional[str]
    throttled: int

CredentialProvider = Callable[[], tuple[str, str, Optional[str], Optional[float]]]
"""Returns (access_key, secret_key, session_token, expiry as unix seconds or None); called at the start and again
shortly before the expiry."""

def transfer(
    jobs: Sequence[Job],
    *,
    max_workers: int = 8,
    overwrite: bool = False,
    region: Optional[str] = None,
    endpoint_url: Optional[str] = None,
    part_size: int = 16 * 1024 * 1024,
    part_concurrency: int = 4,
    timeout: float = 60.0,
    max_retries: int = 5,
    retry_base_delay: float = 0.25,
    s3_checksums: bool = True,
    progress: Optional[Callable[[int], object]] = None,
    credentials: Optional[CredentialProvider] = None,
    ca_bundle: Optional[str] = None,
    download_rate: Optional[float] = None,
    rate_file: Optional[str] = None,
    throttle_budget: float = 600.0,
    min_speed: int = 1024,
    max_unknown_size: int = 4 * 1024**3,
) -> list[JobResult]:
    """Move every job concurrently with the GIL released; one result per job, in order.

    ``progress`` is called (with the GIL) about every 100 ms with the bytes received since its last call.
    ``credentials``: the S3 credential provider (None: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
    AWS_SESSION_TOKEN). ``ca_bundle``: a PEM file trusted instead of the system's CA store. ``download_rate``:
    GET starts per second (None: no pacing), shared with other processes through ``rate_file``; a 429 is waited
    out (Retry-After or Planet's ``retry-in`` hint) for at most ``throttle_budget`` seconds per file. A transfer
    slower than ``min_speed`` bytes/s for ``timeout`` seconds is a stall, resumed with Range. A body of unknown
    size may have at most ``max_unknown_size`` bytes.
    Ctrl-C cancels the batch, aborts multipart uploads, removes temp files and raises KeyboardInterrupt.
    Raises CredentialsError when S3 credentials are missing or refused, TransferError when the batch
    cannot run.
    """

@final
class S3Objects:
    """The small S3 requests a delivery makes beside its transfers, with the credentials, endpoint, TLS, signer and
    retries of :func:`transfer` (``credentials`` as there; region and endpoint from the arguments, else
    AWS_REGION / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).

    Raises CredentialsError when there are no credentials or S3 refuses them, TransferError for other failures.
    """

    def __init__(
        self,
        *,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry_base_delay: float = 0.25,
        credentials: Optional[CredentialProvider] = None,
        ca_bundle: Optional[str] = None,
    ) -> None: ...
    def head(self, bucket: str, key: str) -> Optional[dict[str, str]]:
        """The object's headers (lower-case names), or None when there is no such object."""
    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Optional[dict[str, str]] = None,
    ) -> None:
        """PUT a small object in one request, with a CRC32C checksum and ``x-amz-meta-*`` metadata."""
    def list_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str, str]]:
        """Incomplete multipart uploads under ``prefix``: (key, upload id, initiated as ISO 8601)."""
    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort one multipart upload (one already gone is not an error)."""
