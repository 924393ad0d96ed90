"""The contract every downloader plugin follows.

A downloader receives a list of :class:`TransferJob` (source URL, destination, expected size and digests from
the order's manifest.json) and returns one :class:`TransferResult` per job, in order. It must:

- skip a job whose destination already holds a verified copy (right size and digest) unless ``overwrite``;
  a present file with a wrong size or digest is fetched again, never counted as done;
- verify every byte it writes against the manifest digest (sha256 when present, else md5);
- never leave a partial file or object at a final name (local: temp file + rename; S3: abort the multipart);
- retry transport errors and 5xx, resuming with Range where the source honours it and restarting from zero
  where it answers 200 instead of 206;
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
    part_size: int = 16 * 1024 * 1024
    timeout: float = 60.0
    max_retries: int = 5
    progress: Optional[ProgressCallback] = field(default=None, repr=False)
    s3_profile: str = ""  # AWS profile (config s3.profile); "" = AWS_PROFILE or the default profile
    download_rate: Optional[float] = None  # GET starts per second per API key (None: no pacing)
    rate_file: Optional[str] = None  # file shared with other processes pacing the same key (None: in-process)
    throttle_budget: float = 600.0  # seconds one file may wait on 429 answers before it fails as rate_limited
    max_unknown_size: int = 4 * 1024**3  # the cap on a body whose size the manifest does not give


class Downloader(Protocol):
    """A transfer engine registered through ``register_downloaders``."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, options: DownloadOptions) -> None: ...

    def transfer(self, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        """Move every job; one result per job, in the same order. Never raises for a single failed file."""
        ...
