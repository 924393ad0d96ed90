"""A small GeoTIFF writer for the sandbox: tiled, deflate-compressed, georeferenced, with numpy and zlib alone.

The sandbox delivers real images so that a STAC catalog of them loads in xarray (rasterio, odc-stac), yet a base
install has no GDAL. So this writes the few TIFF 6.0 and GeoTIFF 1.1 tags a reader needs: one image, pixel
interleaved, 128-pixel tiles, deflate with horizontal differencing, a north-up transform (ModelPixelScale +
ModelTiepoint) and an EPSG code in the GeoKey directory, and GDAL's nodata tag.

The encoded image sits at the END of the file, after ``padding`` bytes that the caller supplies: the sandbox pads
every image to its configured file size with pseudo-random bytes (what the downloader benchmarks move and
verify), and TIFF readers only follow offsets, so they never see the padding.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

TILE = 128
_LONG_LIMIT = 2**32  # classic TIFF offsets are 32-bit
_SHORT, _LONG, _DOUBLE, _ASCII = 3, 4, 12, 2
_FORMATS = {_SHORT: "H", _LONG: "I", _DOUBLE: "d"}


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: ``width`` x ``height`` pixels of ``resolution`` CRS units from corner (x0, y0)."""

    epsg: int
    x0: float  # west edge
    y0: float  # north edge
    resolution: float
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.height * self.resolution, self.x0 + self.width * self.resolution, self.y0)

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of every pixel centre, each shaped (height, width)."""
        xs = self.x0 + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.y0 - (np.arange(self.height) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)


def geotiff(bands: np.ndarray, grid: Grid, size: int = 0, nodata: int | None = 0) -> tuple[bytes, int, bytes]:
    """(head, padding, tail) of a GeoTIFF of ``bands`` (count, height, width; uint8 or uint16): ``head``, then
    ``padding`` bytes of anything, then ``tail`` is a file of ``size`` bytes (or just the image if bigger)."""
    if bands.ndim != 3 or bands.shape[1:] != (grid.height, grid.width):
        raise ValueError(f"bands of shape {bands.shape} do not fit a {grid.width}x{grid.height} grid")
    if bands.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"only uint8 and uint16 images, not {bands.dtype}")
    count = bands.shape[0]
    pixels = np.ascontiguousarray(np.moveaxis(bands, 0, -1).astype(bands.dtype.newbyteorder("<")))
    tiles = _tiles(pixels)
    data = b"".join(tiles) + b"\0" * (sum(map(len, tiles)) % 2)
    at = [sum(map(len, tiles[:i])) for i in range(len(tiles))]
    ifd_length = len(_ifd(_tags(grid, count, bands.dtype.itemsize * 8, at, [len(t) for t in tiles], nodata), 0))
    padding = max(0, size - 8 - len(data) - ifd_length)
    start = 8 + padding  # where the tail begins in the file
    if start + len(data) + ifd_length >= _LONG_LIMIT:
        raise ValueError("the sandbox writes classic TIFF: at most 4 GiB")
    tags = _tags(grid, count, bands.dtype.itemsize * 8, [start + a for a in at], [len(t) for t in tiles], nodata)
    ifd_at = start + len(data)
    return b"II*\0" + struct.pack("<I", ifd_at), padding, data + _ifd(tags, ifd_at)


def _tags(grid: Grid, count: int, bits: int, offsets: list[int], lengths: list[int],
          nodata: int | None) -> list[tuple[int, int, list | bytes]]:
    """The IFD's tags, in ascending order as TIFF requires."""
    tags: list[tuple[int, int, list | bytes]] = [
        (256, _LONG, [grid.width]), (257, _LONG, [grid.height]), (258, _SHORT, [bits] * count),
        (259, _SHORT, [8]), (262, _SHORT, [1]), (277, _SHORT, [count]), (284, _SHORT, [1]),
        (317, _SHORT, [2]), (322, _SHORT, [TILE]), (323, _SHORT, [TILE]),
        (324, _LONG, offsets), (325, _LONG, lengths),
    ]
    if count > 1:
        tags.append((338, _SHORT, [0] * (count - 1)))  # the other bands are "extra samples" of no special kind
    tags += [(339, _SHORT, [1] * count),
             (33550, _DOUBLE, [grid.resolution, grid.resolution, 0.0]),
             (33922, _DOUBLE, [0.0, 0.0, 0.0, grid.x0, grid.y0, 0.0]),
             (34735, _SHORT, _geokeys(grid.epsg))]
    if nodata is not None:
        tags.append((42113, _ASCII, f"{nodata}\0".encode()))
    return tags


def _tiles(pixels: np.ndarray) -> list[bytes]:
    """Each 128x128 tile, row by row, padded with zeros at the edges, differenced along rows, deflated."""
    height, width, count = pixels.shape
    across, down = -(-width // TILE), -(-height // TILE)
    padded = np.zeros((down * TILE, across * TILE, count), dtype=pixels.dtype)
    padded[:height, :width] = pixels
    out = []
    for row in range(down):
        for col in range(across):
            tile = padded[row * TILE:(row + 1) * TILE, col * TILE:(col + 1) * TILE]
            differenced = tile.copy()
            differenced[:, 1:] = tile[:, 1:] - tile[:, :-1]  # unsigned: wraps around as the predictor expects
            out.append(zlib.compress(differenced.tobytes(), 6))
    return out


def _geokeys(epsg: int) -> list[int]:
    """GeoKey directory: model type, raster type PixelIsArea, and the EPSG code (geographic or projected)."""
    geographic = epsg == 4326
    keys = [(1024, 0, 1, 2 if geographic else 1), (1025, 0, 1, 1), (2048 if geographic else 3072, 0, 1, epsg)]
    return [1, 1, 0, len(keys), *(value for key in keys for value in key)]


def _ifd(tags: list[tuple[int, int, list | bytes]], at: int) -> bytes:
    """One IFD at file offset ``at``: entries, next-IFD 0, then the values too long to sit in an entry."""
    entries = bytearray(struct.pack("<H", len(tags)))
    extra = bytearray()
    extra_at = at + 2 + 12 * len(tags) + 4
    for tag, kind, values in tags:
        data = bytes(values) if isinstance(values, bytes) else struct.pack(f"<{len(values)}{_FORMATS[kind]}",
                                                                             *values)
        count = len(values)
        if len(data) <= 4:
            field = data.ljust(4, b"\0")
        else:
            field = struct.pack("<I", extra_at + len(extra))
            extra += data
            if len(extra) % 2:
                extra += b"\0"
        entries += struct.pack("<HHI", tag, kind, count) + field
    return bytes(entries + struct.pack("<I", 0) + extra)
