"""The contract every downloader plugin follows.

A downloader receives a list of :class:`TransferJob` (source URL, destination, expected size and digests from
the order's manifest.json) and returns one :class:`TransferResult` per job, in order. It must:

- skip a job whose destination already holds a verified copy (right size and digest) unless ``overwrite``;
  a present file with a wrong size or digest is fetched again, never counted as done;
- verify every byte it writes against the manifest digest (sha256 when present, else md5);
- never leave a partial file or object at a final name (local: temp file + rename; S3: abort the multipart);
- retry transport errors and 5xx, resuming with Range where the source honours it and restarting from zero
  where it answers 200 instead of 206;
- pace the start of every GET with ``download_rate`` / ``rate_file`` and treat 429 as flow control, not failure;
- refuse a body larger than the manifest's size (or ``max_unknown_size``) as soon as it shows;
- say why a file failed in ``TransferResult.reason`` (:class:`~flowzero.models.FailureReason`): delivery fetches
  fresh links for ``expired_link`` (401/403/410 from the source) and stops for ``auth``;
- stream: memory bounded by workers x chunk size, never by file size.

Destinations are either local paths or ``s3://bucket/key`` URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Optional, Protocol

from flowzero.models import TransferJob, TransferResult

ProgressCallback = Callable[[int], None]  # called with a number of bytes just moved


@dataclass
class DownloadOptions:
    """What every downloader is told besides the jobs."""

    max_workers: int = 8
    overwrite: bool = False
    s3_region: str = "us-west-2"
    s3_endpoint_url: str = ""
    s3_profile: str = ""  # AWS profile (config s3.profile); "" = AWS_PROFILE or the default profile
    part_size: int = 16 * 1024 * 1024
    timeout: float = 60.0
    max_retries: int = 5
    progress: Optional[ProgressCallback] = field(default=None, repr=False)
    # Planet's download rate (requests/s per key, already with flowzero's margin; None: not paced) and the file
    # that shares it with other processes (flowzero.pacing describes its 16 bytes); a downloader paces the start
    # of every GET with them and treats 429 as flow control for up to ``throttle_budget`` seconds per file.
    download_rate: Optional[float] = None
    rate_file: Optional[str] = None
    throttle_budget: float = 600.0
    max_unknown_size: int = 4 * 1024**3  # bytes accepted for a file whose size the manifest does not give
    min_speed: int = 1024  # bytes/s; slower than this for ``timeout`` seconds, a transfer is stalled (retried)


class Downloader(Protocol):
    """A transfer engine registered through ``register_downloaders``."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, options: DownloadOptions) -> None: ...

    def transfer(self, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        """Move every job; one result per job, in the same order. Never raises for a single failed file."""
        ...
