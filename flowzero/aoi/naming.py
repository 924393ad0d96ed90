"""AOI names: derived from file names the way the old tool did, and safe as a folder or S3 key segment."""

from __future__ import annotations

import re
from pathlib import Path

from flowzero.errors import AOIError

_PREFIX = re.compile(r"^(?:DrySpy_)?(?:AOI_)?", re.IGNORECASE)
_SUFFIX = re.compile(r"_(?:central|north|south|east|west)$", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 120


def normalize_name(stem: str) -> str:
    """``DrySpy_AOI_SantaClaraRiver_central`` -> ``SantaClaraRiver``: drop DrySpy_/AOI_ and a direction.

    If nothing would be left, the stem is kept as it is.
    """
    name = _SUFFIX.sub("", _PREFIX.sub("", stem))
    return name or stem


def _shown(raw: str) -> str:
    """A refused name as a message shows it: at most 40 characters."""
    return raw if len(raw) <= 40 else raw[:40] + "..."


def sanitize_name(name: str) -> str:
    """A name usable as one folder / S3 key segment: path tricks refused, other odd characters -> ``_``."""
    raw = (name or "").strip()
    if not raw:
        raise AOIError("an AOI name cannot be empty")
    if "/" in raw or "\\" in raw or ".." in raw:
        raise AOIError(f"invalid AOI name '{_shown(raw)}': it must not contain '/', '\\' or '..'",
                       hint="use letters, digits, '_', '-' and '.'")
    if any(ord(ch) < 32 for ch in raw):
        raise AOIError("invalid AOI name: it contains control characters")
    safe = _UNSAFE.sub("_", raw).strip("_.")
    if not safe:
        raise AOIError(f"invalid AOI name '{_shown(raw)}': nothing usable is left after removing special "
                       "characters")
    if len(safe) > MAX_NAME_LENGTH:
        raise AOIError(f"invalid AOI name '{safe[:20]}...': longer than {MAX_NAME_LENGTH} characters")
    return safe


def aoi_name_from_path(path: str | Path, explicit: str | None = None) -> str:
    """The AOI name for a file: ``explicit`` if given, else the normalised file stem; sanitised either way."""
    if explicit is not None and explicit.strip():
        return sanitize_name(explicit)
    return sanitize_name(normalize_name(Path(path).stem))
