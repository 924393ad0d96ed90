"""Batch mode input: one gage per shapefile record, each with its own polygon and date range."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from flowzero.aoi.geometry import geodesic_area_sqkm, validate_polygonal
from flowzero.aoi.model import Gage
from flowzero.aoi.readers import read_shapefile_contents
from flowzero.chunking import parse_date
from flowzero.errors import UsageError


def _column(fields: list[str], wanted: str, path: Path) -> str:
    """The shapefile's column called ``wanted`` (exact, else the one case-insensitive match)."""
    if wanted in fields:
        return wanted
    matches = [f for f in fields if f.lower() == wanted.lower()]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(f"{path.name}: no column '{wanted}' (columns: {', '.join(fields) or 'none'})",
                     hint="pick the column names with the --*-col options")


def _gage_id(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def _date(value: Any, gage_id: str, column: str) -> date:
    """A DBF date field (pyshp gives ``date``) or 'YYYY-MM-DD' text as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UsageError(f"gage {gage_id}: column '{column}' is empty", hint="fill in a date as YYYY-MM-DD")
    try:
        return parse_date(str(value), f"date in column '{column}'")
    except UsageError as exc:
        raise UsageError(f"gage {gage_id}: {exc.message}", hint=exc.hint) from None


def read_gages(shp_path: str | Path, gage_id_col: str, start_date_col: str, end_date_col: str) -> list[Gage]:
    """One :class:`Gage` per record, in file order; a missing column or bad/reversed date: UsageError."""
    path = Path(shp_path)
    contents = read_shapefile_contents(path)
    id_col = _column(contents.fields, gage_id_col, path)
    start_col = _column(contents.fields, start_date_col, path)
    end_col = _column(contents.fields, end_date_col, path)
    gages = []
    for number, (geometry, attrs) in enumerate(contents.records, start=1):
        gage_id = _gage_id(attrs.get(id_col))
        if not gage_id:
            raise UsageError(f"{path.name}: record {number} has no value in column '{id_col}'")
        start = _date(attrs.get(start_col), gage_id, start_col)
        end = _date(attrs.get(end_col), gage_id, end_col)
        if end < start:
            raise UsageError(f"gage {gage_id}: '{end_col}' {end.isoformat()} is before "
                             f"'{start_col}' {start.isoformat()}", hint="swap the dates in the shapefile")
        geom = validate_polygonal(geometry, f"{path} (gage {gage_id})")
        gages.append(Gage(gage_id=gage_id, geometry=geom, area_sqkm=geodesic_area_sqkm(geom), start=start,
                          end=end, attributes=attrs, source=path))
    return gages
