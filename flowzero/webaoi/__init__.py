"""`flowzero generate-aoi`: draw an AOI on a map in the browser and save it as WGS84 GeoJSON.

The page (vendored Leaflet, a small hand-written draw tool) only draws and shows areas; the server in
:mod:`flowzero.webaoi.server` validates names and geometries with :mod:`flowzero.aoi` and writes the files
(:mod:`flowzero.webaoi.folder`).
"""

from __future__ import annotations

from flowzero.webaoi.folder import AoiExistsError, AoiFolder, SavedAoi, validate_name
from flowzero.webaoi.server import DEFAULT_TILES, AoiEditor

__all__ = ["DEFAULT_TILES", "AoiEditor", "AoiExistsError", "AoiFolder", "SavedAoi", "validate_name"]
