"""The output folder of `generate-aoi`: list the AOIs in it and save a drawn one as WGS84 GeoJSON.

The browser only draws; names, geometries and areas are decided here, with the same validators `submit` uses,
so a file saved from the page is one that `submit` accepts. Saving never overwrites unless asked, and never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowzero.aoi import (
    aoi_name_from_path,
    geodesic_area_sqkm,
    read_geojson,
    sanitize_name,
    to_geojson_dict,
    validate_polygonal,
)
from flowzero.errors import AOIError, FlowzeroError

SUFFIX = ".geojson"
COORDINATE_DECIMALS = 7  # about 1 cm: more digits than any drawing has


class AoiExistsError(FlowzeroError):
    """An AOI file of that name is already in the folder and overwriting was not asked for."""

    exit_code = 2


@dataclass
class SavedAoi:
    """One AOI file of the folder as the page lists it (``error`` set when the file is not a usable AOI)."""

    name: str
    file: str
    aoi_name: str | None = None
    area_sqkm: float | None = None
    geometry: dict[str, Any] | None = None
    modified: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "aoi_name": self.aoi_name, "area_sqkm": self.area_sqkm,
                "geometry": self.geometry, "modified": self.modified, "error": self.error}


def validate_name(raw: Any) -> str:
    """The file name stem for ``raw``; anything `sanitize_name` would change is refused, not silently fixed."""
    if not isinstance(raw, str):
        raise AOIError("the AOI name must be text")
    name = sanitize_name(raw)
    if name != raw.strip():
        raise AOIError(f"invalid AOI name '{raw.strip()[:40]}': use only letters, digits, '_', '-' and '.'",
                       hint=f"for example '{name}'")
    return name


def _rounded(geometry: Any) -> Any:
    import numpy as np
    import shapely

    return shapely.transform(geometry, lambda xy: np.round(xy, COORDINATE_DECIMALS))


def _oriented(geometry: Any) -> Any:
    """Outer rings counter-clockwise, holes clockwise, as RFC 7946 asks (the page keeps the clicking order)."""
    from shapely.geometry import MultiPolygon
    from shapely.geometry.polygon import orient

    if geometry.geom_type == "Polygon":
        return orient(geometry, sign=1.0)
    return MultiPolygon([orient(part, sign=1.0) for part in geometry.geoms])


def validate_geometry(raw: Any, name: str) -> Any:
    """The drawn geometry as a valid WGS84 (Multi)Polygon, rounded and oriented; AOIError otherwise."""
    if not isinstance(raw, dict) or "type" not in raw:
        raise AOIError(f"AOI '{name}': the geometry must be a GeoJSON Polygon", hint="draw the area again")
    where = f"AOI '{name}'"
    geometry = validate_polygonal(raw, where)
    return _oriented(validate_polygonal(_rounded(geometry), where))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def feature_collection(name: str, geometry: Any, area_sqkm: float) -> dict[str, Any]:
    """The document written for one AOI: a FeatureCollection of one Feature (what convert-shp writes too)."""
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": {"name": name, "area_sqkm": round(area_sqkm, 6), "created_at": _now(),
                       "created_by": "flowzero generate-aoi"},
        "geometry": to_geojson_dict(geometry),
    }]}


class AoiFolder:
    """The folder AOIs are saved into (created on the first save)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def file_for(self, name: str) -> Path:
        return self.path / f"{name}{SUFFIX}"

    def list(self) -> list[SavedAoi]:
        """Every ``.geojson`` file of the folder, sorted by name; unreadable ones carry their error."""
        if not self.path.is_dir():
            return []
        found: list[SavedAoi] = []
        for file in sorted(self.path.iterdir(), key=lambda p: p.name.lower()):
            if file.suffix.lower() != SUFFIX or not file.is_file() or file.name.startswith("."):
                continue
            item = SavedAoi(name=file.stem, file=str(file))
            try:
                item.modified = dt.datetime.fromtimestamp(file.stat().st_mtime, dt.timezone.utc).isoformat()
                aoi = read_geojson(file)
                item.aoi_name = aoi_name_from_path(file)
                item.area_sqkm = round(aoi.area_sqkm, 6)
                item.geometry = aoi.geojson()
            except (AOIError, OSError) as exc:
                item.error = exc.message if isinstance(exc, AOIError) else str(exc)
            found.append(item)
        return found

    def save(self, raw_name: Any, raw_geometry: Any, overwrite: bool = False) -> SavedAoi:
        """Validate and write one AOI; AoiExistsError if the file exists and ``overwrite`` is false."""
        name = validate_name(raw_name)
        geometry = validate_geometry(raw_geometry, name)
        area = geodesic_area_sqkm(geometry)
        target = self.file_for(name)
        if not overwrite and target.exists():
            raise AoiExistsError(f"an AOI named '{name}' already exists ({target})",
                                 hint="choose another name or confirm overwriting it")
        body = json.dumps(feature_collection(name, geometry, area), indent=2) + "\n"
        self._write(target, body.encode("utf-8"), overwrite)
        return SavedAoi(name=name, file=str(target), aoi_name=aoi_name_from_path(target),
                        area_sqkm=round(area, 6), geometry=to_geojson_dict(geometry), modified=_now())

    def _write(self, target: Path, data: bytes, overwrite: bool) -> None:
        """Temp file, fsync, then rename (overwrite) or hard-link (no overwrite: fails if the name appeared)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.path)
        except OSError as exc:
            raise FlowzeroError(f"cannot write into {self.path}: {exc.strerror or exc}",
                                hint="choose a writable --output folder") from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                self._link_new(tmp, target)
        except OSError as exc:
            raise FlowzeroError(f"cannot write {target}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @staticmethod
    def _link_new(tmp: Path, target: Path) -> None:
        try:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise
            except OSError:  # no hard links on this file system: exclusive create instead
                with open(target, "xb") as handle:
                    handle.write(tmp.read_bytes())
        except FileExistsError:
            raise AoiExistsError(f"an AOI named '{target.stem}' already exists ({target})",
                                 hint="choose another name or confirm overwriting it") from None
