"""The built-in ``threads`` downloader: a thread pool streaming with httpx, boto3 multipart for S3.

This module is loaded as a plugin at CLI start-up, so httpx and boto3 are imported only when transferring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, ClassVar

from flowzero import hookimpl
from flowzero.downloaders.base import DownloadOptions
from flowzero.models import TransferJob, TransferResult


class ThreadsDownloader:
    """``downloads.max_workers`` threads; verified while streaming; resumes with Range; S3 via multipart."""

    name: ClassVar[str] = "threads"
    description: ClassVar[str] = "thread pool + httpx streaming, boto3 multipart for S3 (built in)"

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    def transfer(self, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        """One verified result per job, in order; a failed file is a failed result, never an exception."""
        if not jobs:
            return []
        from flowzero.downloaders.engine import TransferSession, run_pool

        need_s3 = any(job.destination.startswith("s3://") for job in jobs)
        with TransferSession(self.options, need_s3=need_s3) as session:
            return run_pool(session, jobs, self.options.max_workers)


@hookimpl
def register_downloaders(register: Callable[[type], None]) -> None:
    register(ThreadsDownloader)
