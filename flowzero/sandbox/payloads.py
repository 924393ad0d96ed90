"""The files orders deliver: generated once into ``data_dir/payloads`` with their digests, then served as is.

Images are real little GeoTIFFs (:mod:`flowzero.sandbox.geotiff`) padded to the sandbox's file size: the TIFF
header, deterministic pseudo-random bytes from SHAKE-128 in 1 MiB blocks, then the encoded image at the end.
So a 64 MiB benchmark file costs what it did (the padding is as fast and as incompressible as before) and a
64 KiB test file opens in rasterio. The same (item, asset, area, size) always has the same bytes and md5/sha256,
across runs and machines. Digests are computed while writing and kept next to the file, so a 1 GiB payload is
hashed once. ``random_tiff`` (header + random bytes, no image) remains for what has no grid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np

    from flowzero.sandbox.geotiff import Grid

_BLOCK = 1024 * 1024
_TIFF_HEADER = b"II*\x00" + struct.pack("<I", 8)


class GenerationStopped(Exception):
    """The sandbox is shutting down; a half-written payload is discarded."""


@dataclass(frozen=True)
class Payload:
    path: Path
    size: int
    md5: str
    sha256: str
    key: str = ""  # what the content was made from, beyond the file name (a GeoTIFF's area)


class _NameTaken(Exception):
    """A payload of that file name exists but was made from something else."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class PayloadStore:
    """Creates payload files atomically (temp file + rename); safe to call from many threads at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob("*.tmp-*"):
            stale.unlink(missing_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Make running generations give up at their next block."""
        self._stop.set()

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def random_tiff(self, name: str, size: int) -> Payload:
        """A ``size``-byte TIFF-like file whose bytes depend only on ``name`` and ``size``."""
        filename = f"{_safe(name)}_{size}.tif"
        return self._ensure(filename, lambda: _tiff_blocks(name, size, self._stop))

    def geotiff(self, name: str, size: int, key: str,
                render: Callable[[], tuple[np.ndarray, Grid, int | None]]) -> Payload:
        """A GeoTIFF of ``render()`` = (bands, grid, nodata), padded to ``size`` bytes (0: as small as it is).

        A ``size`` below the image's own (10-25 KiB) keeps its meaning: the file is then ``size`` TIFF-like
        bytes, as :meth:`random_tiff` makes, not an image.

        ``key`` names what the image is drawn from (its area): the same name drawn from another area is another
        file, so an order's manifest always matches the file served for it.
        """
        from flowzero.sandbox.geotiff import geotiff

        def produce() -> Iterator[bytes]:
            bands, grid, nodata = render()
            head, padding, tail = geotiff(bands, grid, size, nodata)
            if size and len(head) + len(tail) > size:  # too small for the image: TIFF-like bytes, exactly size
                yield from _tiff_blocks(name, size, self._stop)
                return
            yield head
            yield from _random_blocks(name, size, padding, self._stop)
            yield tail

        base = f"{_safe(name)}_{size}.tif" if size else f"{_safe(name)}.tif"
        try:
            return self._ensure(base, produce, key)
        except _NameTaken:
            return self._ensure(f"{base[:-4]}.{hashlib.sha256(key.encode()).hexdigest()[:12]}.tif", produce, key)

    def content(self, name: str, data: bytes) -> Payload:
        """A file holding exactly ``data`` (its name carries a digest, so other content is another file)."""
        stem, dot, ext = _safe(name).rpartition(".")
        digest = hashlib.sha256(data).hexdigest()[:12]
        filename = f"{stem}.{digest}.{ext}" if dot else f"{ext}.{digest}"
        return self._ensure(filename, lambda: iter([data]))

    def _ensure(self, filename: str, produce: Callable[[], Iterable[bytes]], key: str = "") -> Payload:
        path = self.root / filename
        with self._lock(filename):
            known = _read_digests(path)
            if known is not None:
                if known.key != key:
                    raise _NameTaken(filename)
                return known
            md5, sha256 = hashlib.md5(), hashlib.sha256()
            tmp = path.with_name(f"{filename}.tmp-{os.getpid()}-{threading.get_ident()}")
            size = 0
            try:
                with open(tmp, "wb") as out:
                    for block in produce():
                        out.write(block)
                        md5.update(block)
                        sha256.update(block)
                        size += len(block)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            payload = Payload(path, size, md5.hexdigest(), sha256.hexdigest(), key)
            digests = {"size": size, "md5": payload.md5, "sha256": payload.sha256, "key": key}
            _sidecar(path).write_text(json.dumps(digests))
            return payload


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".digests.json")


def _read_digests(path: Path) -> Payload | None:
    try:
        data = json.loads(_sidecar(path).read_text())
        if path.stat().st_size != data["size"]:
            return None
        return Payload(path, int(data["size"]), str(data["md5"]), str(data["sha256"]), str(data.get("key", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _random_blocks(name: str, size: int, length: int, stop: threading.Event) -> Iterator[bytes]:
    """``length`` pseudo-random bytes in 1 MiB blocks: SHAKE-128(name and size, block index)."""
    seed = hashlib.sha256(f"{name}|{size}".encode()).digest()
    written = 0
    index = 0
    while written < length:
        if stop.is_set():
            raise GenerationStopped(name)
        step = min(_BLOCK, length - written)
        yield hashlib.shake_128(seed + index.to_bytes(8, "big")).digest(step)
        written += step
        index += 1


def _tiff_blocks(name: str, size: int, stop: threading.Event) -> Iterator[bytes]:
    """Yield the file in 1 MiB blocks: TIFF header first, SHAKE-128(name, block index) after."""
    first = True
    for block in _random_blocks(name, size, size, stop):
        if first:
            head = _TIFF_HEADER[:len(block)]
            block = head + block[len(head):]
            first = False
        yield block
