"""The run's single progress bar: bytes and files, skipped files counted once, quiet when disabled."""

from __future__ import annotations

import pytest

from flowzero.delivery.progress import TransferProgress
from flowzero.models import TransferJob, TransferResult


def _result(name: str, size: int, skipped: bool = False) -> TransferResult:
    job = TransferJob(url="http://127.0.0.1/x", destination=name, size=size, name=name)
    return TransferResult(job, ok=True, skipped=skipped)


def test_bytes_and_files_are_counted_once(capsys: pytest.CaptureFixture[str]) -> None:
    fetched, present = _result("a", 600), _result("b", 400, skipped=True)
    with TransferProgress(enabled=True) as progress:
        progress.add(1000, 2)
        progress(600)  # bytes streamed for "a"
        progress.file_done(fetched)
        progress.finish([fetched, present])  # "a" was reported already; "b" was not
        task = progress._progress.tasks[0]
        assert (task.completed, task.total) == (1000, 1000)
        assert task.fields["files"] == "2/2 files"
    assert "Delivering" in capsys.readouterr().err


def test_disabled_progress_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with TransferProgress(enabled=False) as progress:
        progress.add(10, 1)
        progress(10)
        progress.finish([_result("a", 10)])
    assert capsys.readouterr() == ("", "")


def test_not_a_terminal_means_quiet() -> None:
    assert TransferProgress().enabled is False  # pytest's stderr is not a TTY
