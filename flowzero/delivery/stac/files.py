"""The catalog's JSON documents at a destination: read, written only when changed, listed; local or S3 alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from flowzero.delivery.destination import Destination, write_document
from flowzero.delivery.layout import join_key
from flowzero.s3 import split_s3_url

if TYPE_CHECKING:
    from flowzero.delivery.s3requests import S3Requests


class CatalogFiles:
    """Small documents under a destination, by relative key (``stac/catalog.json``...).

    Writes go through :func:`flowzero.delivery.destination.write_document`: atomic (temp file + rename, or one
    PUT) and skipped when an identical copy is there, so a rerun rewrites nothing.
    """

    def __init__(self, destination: Destination, s3: Optional[Callable[[], S3Requests]] = None) -> None:
        if destination.is_s3 and s3 is None:
            raise ValueError("an S3 destination needs S3 requests")
        self.destination = destination
        self._s3 = s3

    def href(self, key: str) -> str:
        """Where a delivered file is, as an asset of an item at ``stac/<collection>/items/``: relative for a
        folder, ``s3://bucket/key`` for S3."""
        if self.destination.is_s3:
            return self.destination.target(key)
        return f"../../../{key}"

    def read(self, key: str) -> bytes | None:
        target = self.destination.target(key)
        if self.destination.is_s3:
            return self._requests().get_document(*split_s3_url(target))
        try:
            return Path(target).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key``; False when it was already there, identical."""
        if not self.destination.is_s3:
            Path(self.destination.target(key)).parent.mkdir(parents=True, exist_ok=True)
        return write_document(self.destination, key, data, self._requests() if self.destination.is_s3 else None)

    def keys(self, prefix: str) -> list[str]:
        """Relative keys of every document under ``prefix`` (a folder key ending in ``/``), sorted."""
        if self.destination.is_s3:
            full = join_key(self.destination.prefix, prefix)
            skip = len(full) - len(prefix)
            return [key[skip:] for key in self._requests().list_keys(self.destination.root, full)]
        root = Path(self.destination.root)
        base = root / prefix
        if not base.is_dir():
            return []
        found = []
        for folder, _, names in os.walk(base):
            for name in names:
                if not name.startswith("."):  # temp files of writes in flight
                    found.append((Path(folder) / name).relative_to(root).as_posix())
        return sorted(found)

    def _requests(self) -> S3Requests:
        assert self._s3 is not None
        return self._s3()
