"""Where delivered files go: the old tool's folder layout, which users' pipelines read. Pure, no I/O.

PlanetScope: ``planetscope analytic/{num_bands}/{aoi_name}/{YYYY_MM_DD}_{rest}.tiff`` plus ``metadata.json``.
Basemaps: ``basemaps/{aoi_name}/{YYYY_MM}/{quad file}`` plus ``metadata.json``.
The same relative keys are used under a local folder or an S3 bucket/prefix.
"""

from __future__ import annotations

import re

from flowzero.errors import TransferError, UsageError

PSSCOPE_ROOT = "planetscope analytic"
BASEMAP_ROOT = "basemaps"
METADATA_NAME = "metadata.json"
MAX_SEGMENT_BYTES = 255
# What a PlanetScope delivery may keep of each item: the analytic image, its UDM2 mask, Planet's item JSON.
ASSETS = ("image", "udm2", "metadata")
DEFAULT_ASSETS = ASSETS

_ITEM_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})_(.+)$")
_MOSAIC_PERIOD = re.compile(r"(?:^|_)(\d{4})_(\d{2})(?:_|$)")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
# Planet's product suffixes after the item id, e.g. 20240105_181001_00_2262_3B_AnalyticMS_SR_clip.tif
_PRODUCT_SUFFIX = re.compile(r"_(?:1B|3B|BGRN|Analytic|metadata$)")


class UnsafeNameError(TransferError):
    """A result name from the server would escape the destination folder; that file is refused."""


def check_segment(segment: str, what: str = "name") -> str:
    """``segment`` if it is one safe path component, else :class:`UnsafeNameError`."""
    if segment in ("", ".", ".."):
        raise UnsafeNameError(f"unsafe {what} {segment!r}: empty or a relative step")
    if "/" in segment or "\\" in segment:
        raise UnsafeNameError(f"unsafe {what} {segment!r}: contains a path separator")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in segment):
        raise UnsafeNameError(f"unsafe {what} {segment!r}: contains a control character")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise UnsafeNameError(f"unsafe {what} {segment[:40]!r}...: longer than {MAX_SEGMENT_BYTES} bytes")
    return segment


def split_result_name(name: str) -> list[str]:
    """The components of an untrusted result name; refuses absolute paths, ``..``, backslashes and NULs."""
    if not name:
        raise UnsafeNameError("unsafe result name: empty")
    if "\\" in name:
        raise UnsafeNameError(f"unsafe result name {name!r}: contains a backslash")
    if "\x00" in name:
        raise UnsafeNameError(f"unsafe result name {name!r}: contains a NUL byte")
    if name.startswith("/") or _WINDOWS_DRIVE.match(name):
        raise UnsafeNameError(f"unsafe result name {name!r}: absolute path")
    parts = name.split("/")
    for part in parts:
        check_segment(part, "result name component")
    return parts


def item_id_from_filename(file_name: str) -> str | None:
    """``20240105_181001_00_2262_3B_AnalyticMS_SR_clip.tif`` -> ``20240105_181001_00_2262``."""
    stem = file_name.rsplit(".", 1)[0]
    match = _PRODUCT_SUFFIX.search(stem)
    item_id = stem[: match.start()] if match else stem
    return item_id if _ITEM_ID.match(item_id) else None


def is_analytic_image(file_name: str) -> bool:
    """True for the ordered analytic GeoTIFF; False for udm/udm2 masks, XML and JSON sidecars."""
    lower = file_name.lower()
    if not lower.endswith((".tif", ".tiff")):
        return False
    return "udm" not in lower and "analytic" in lower


def asset_kind(file_name: str) -> str | None:
    """Which of :data:`ASSETS` a result file is (None for the rest: udm1, XML, ...)."""
    lower = file_name.lower()
    if is_analytic_image(file_name):
        return "image"
    if lower.endswith((".tif", ".tiff")) and "udm2" in lower:
        return "udm2"
    if lower.endswith("_metadata.json"):
        return "metadata"
    return None


def scene_file_name(item_id: str, asset: str = "image") -> str:
    """``20240105_181001_00_2262`` -> ``2024_01_05_181001_00_2262.tiff`` (the old tool's naming), or
    ``..._udm2.tif`` / ``..._metadata.json`` for the item's mask and metadata."""
    match = _ITEM_ID.match(item_id)
    if not match:
        raise UnsafeNameError(f"cannot name scene {item_id!r}: item id does not start with YYYYMMDD_")
    year, month, day, rest = match.groups()
    suffix = {"image": ".tiff", "udm2": "_udm2.tif", "metadata": "_metadata.json"}[asset]
    return check_segment(f"{year}_{month}_{day}_{rest}{suffix}", "scene file name")


def parse_assets(text: str) -> tuple[str, ...]:
    """``"image,udm2"`` -> ``("image", "udm2")``; the image is always kept; an unknown name is a UsageError."""
    names = [part.strip().lower() for part in (text or "").split(",") if part.strip()]
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise UsageError(f"unknown asset '{unknown[0]}' in '{text}': choose from {', '.join(ASSETS)}",
                         hint="e.g. --assets image or --assets image,udm2")
    if "image" not in names:
        raise UsageError(f"--assets '{text}' leaves out the image", hint="e.g. --assets image,udm2")
    return tuple(a for a in ASSETS if a in names)


def bands_folder(num_bands: str | None, file_name: str = "") -> str:
    """``four_bands`` or ``eight_bands``: from the order record, else from the file name."""
    value = (num_bands or "").strip().lower()
    if value.startswith(("8", "eight")):
        return "eight_bands"
    if value.startswith(("4", "four")):
        return "four_bands"
    if value:
        return check_segment(value, "band folder")
    return "eight_bands" if "_8b" in file_name.lower() else "four_bands"


def psscope_folder(aoi_name: str, num_bands: str | None, file_name: str = "") -> str:
    """``planetscope analytic/{num_bands}/{aoi_name}``."""
    return f"{PSSCOPE_ROOT}/{bands_folder(num_bands, file_name)}/{check_segment(aoi_name, 'AOI name')}"


def mosaic_period(mosaic_name: str) -> str:
    """``global_monthly_2024_01_mosaic`` -> ``2024_01``; ``unknown_date`` when the name carries no month."""
    match = _MOSAIC_PERIOD.search(mosaic_name or "")
    if not match:
        return "unknown_date"
    return f"{match.group(1)}_{match.group(2)}"


def basemap_folder(aoi_name: str, mosaic_name: str) -> str:
    """``basemaps/{aoi_name}/{YYYY_MM}``."""
    return f"{BASEMAP_ROOT}/{check_segment(aoi_name, 'AOI name')}/{mosaic_period(mosaic_name)}"


def psscope_key(aoi_name: str, num_bands: str | None, result_name: str,
                item_id: str | None = None, assets: tuple[str, ...] = ("image",)) -> str | None:
    """The key of an ordered PlanetScope file, or None if it is not copied (not one of ``assets``: XML, udm1...).

    ``item_id`` (from the manifest's annotations) wins over the id parsed from the file name.
    """
    file_name = split_result_name(result_name)[-1]
    kind = asset_kind(file_name)
    if kind is None or kind not in assets:
        return None
    item = item_id or item_id_from_filename(file_name)
    if not item:
        raise UnsafeNameError(f"cannot name {file_name!r}: no Planet item id (YYYYMMDD_...) in it")
    return f"{psscope_folder(aoi_name, num_bands, file_name)}/{scene_file_name(item, kind)}"


def basemap_key(aoi_name: str, mosaic_name: str, result_name: str) -> str | None:
    """The key of a delivered basemap quad (its own file name), or None for non-image files."""
    file_name = split_result_name(result_name)[-1]
    if not file_name.lower().endswith((".tif", ".tiff")):
        return None
    return f"{basemap_folder(aoi_name, mosaic_name)}/{file_name}"


def metadata_key(folder: str) -> str:
    """Where the order's JSON goes: ``{folder}/metadata.json``."""
    return f"{folder}/{METADATA_NAME}"


def join_key(prefix: str, key: str) -> str:
    """``prefix`` + ``key`` with exactly one slash between them (prefix may be empty)."""
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key

