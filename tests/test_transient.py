"""One table of retryable statuses and one download backoff for every transport (flowzero.transient)."""

from __future__ import annotations

import inspect

import pytest

from flowzero import transient
from flowzero.downloaders import http
from flowzero.planet import retry


def test_the_rust_core_keeps_the_same_table() -> None:
    native = pytest.importorskip("flowzero._fast")
    assert sorted(native.RETRYABLE_STATUSES) == sorted(transient.RETRYABLE_STATUSES)


def test_python_transports_use_the_table() -> None:
    assert retry.RETRYABLE_STATUSES is transient.RETRYABLE_STATUSES
    assert transient.RETRYABLE_STATUSES - {429} == http.RETRY_STATUS  # 429: paced and waited out, not retried


def test_downloads_back_off_alike_in_python_and_rust() -> None:
    native = pytest.importorskip("flowzero._fast")
    text = inspect.getdoc(native.transfer) or ""
    assert http.BACKOFF_BASE == transient.DOWNLOAD_BACKOFF_BASE == 0.25
    assert "retry_base_delay=0.25" in (native.transfer.__text_signature__ or text)
    delays = [http.backoff_delay(3) for _ in range(200)]
    ceiling = transient.DOWNLOAD_BACKOFF_BASE * 4
    assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 100  # equal jitter
