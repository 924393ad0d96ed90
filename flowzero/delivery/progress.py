"""One rich progress bar for a whole run: bytes moved and files done, on stderr, only on a terminal."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from flowzero.models import TransferResult


class TransferProgress:
    """A progress callback (bytes) with ``file_done``; a no-op when disabled (--json, --quiet, not a TTY)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._reported: set[int] = set()
        self._files_total = 0
        self._files_done = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TransferProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TextColumn("{task.fields[files]}"), TimeRemainingColumn(),
                console=Console(file=sys.stderr), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("Delivering", total=0, files="0/0 files")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def add(self, total_bytes: int, files: int) -> None:
        """Grow the totals (orders are discovered as the run goes)."""
        with self._lock:
            self._files_total += files
            if self._progress is not None:
                total = (self._progress.tasks[0].total or 0) + total_bytes
                self._progress.update(self._task, total=total, files=self._files_text())

    def __call__(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def file_done(self, result: TransferResult) -> None:
        """A downloader reports one finished file; skipped files count their whole size as done."""
        with self._lock:
            if id(result.job) in self._reported:
                return
            self._reported.add(id(result.job))
            self._files_done += 1
            if self._progress is not None:
                extra = (result.job.size or 0) if result.skipped else 0
                self._progress.update(self._task, advance=extra, files=self._files_text())

    def finish(self, results: Sequence[TransferResult]) -> None:
        """Count files a downloader did not report one by one (plugins need not call ``file_done``)."""
        for result in results:
            self.file_done(result)

    def _files_text(self) -> str:
        return f"{self._files_done}/{self._files_total} files"
