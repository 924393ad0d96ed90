"""flowzero plugin: the ``s5cmd`` downloader (stage verified files locally, upload with one s5cmd run)."""

from __future__ import annotations

from typing import Callable

from flowzero.api import hookimpl
from flowzero_s5cmd.downloader import S5cmdDownloader, find_s5cmd

__all__ = ["S5cmdDownloader", "find_s5cmd"]


@hookimpl
def register_downloaders(register: Callable[[type], None]) -> None:
    register(S5cmdDownloader)
