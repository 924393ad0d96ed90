"""The local sink limit: write N files of a given size the way a verifying downloader must, and nothing else.

Each file is written from one in-memory buffer into a temp file in the destination folder, fsync'd and renamed
(as flowzero's downloaders commit), W files at a time. Run as a subprocess so its CPU is measured like a
contender's: ``python benchmarks/sinkwrite.py DIR FILES SIZE_BYTES WORKERS``.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

BLOCK = 1 << 20


def write_one(folder: str, index: int, size: int, block: bytes) -> None:
    final = os.path.join(folder, f"sink-{index:05d}.tif")
    temp = os.path.join(folder, f".sink-{index:05d}.tif.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(block)
        left = size
        while left:
            left -= os.write(fd, view[: min(left, len(view))])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)


def main(argv: list[str]) -> int:
    folder, files, size, workers = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    os.makedirs(folder, exist_ok=True)
    block = os.urandom(BLOCK)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda i: write_one(folder, i, size, block), range(files)))
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
