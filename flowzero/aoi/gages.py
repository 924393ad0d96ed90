"""Batch mode input: one gage per shapefile record, each with its own polygon and date range."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from flowzero.aoi.geometry import geodesic_area_sqkm, validate_polygonal
from flowzero.aoi.model import Gage
from flowzero.aoi.naming import sanitize_name
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
    """A DBF date field (pyshp gives ``date``) or 'YYYY-MM-DD' text as a date, within the dates flowzero takes."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UsageError(f"gage {gage_id}: column '{column}' is empty", hint="fill in a date as YYYY-MM-DD")
    try:
        return parse_date(value if isinstance(value, date) else str(value), f"date in column '{column}'")
    except UsageError as exc:
        raise UsageError(f"gage {gage_id}: {exc.message}", hint=exc.hint) from None


def _refuse_duplicates(gages: list[Gage], path: Path, id_col: str) -> None:
    """Each gage is ordered under its AOI name (the sanitised id): two records with the same one would be one
    order, the second polygon silently never ordered; so they are refused, naming the records."""
    records: dict[str, list[tuple[int, str]]] = {}
    for number, gage in enumerate(gages, start=1):  # one gage per record, in file order
        records.setdefault(sanitize_name(gage.gage_id), []).append((number, gage.gage_id))
    clashes = {name: found for name, found in records.items() if len(found) > 1}
    if not clashes:
        return
    described = "; ".join(
        f"'{name}' in records {', '.join(str(n) for n, _ in found)}"
        + ("" if all(raw == name for _, raw in found) else f" (as {', '.join(repr(raw) for _, raw in found)})")
        for name, found in list(clashes.items())[:5])
    more = f" (+{len(clashes) - 5} more)" if len(clashes) > 5 else ""
    raise UsageError(f"{path.name}: gage ids must be unique, but {described}{more}",
                     hint=f"give each polygon its own id in column '{id_col}', or merge the polygons")


def read_gages(shp_path: str | Path, gage_id_col: str, start_date_col: str, end_date_col: str) -> list[Gage]:
    """One :class:`Gage` per record, in file order; a missing column, bad/reversed date or a gage id used by two
    records: UsageError."""
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
    _refuse_duplicates(gages, path, id_col)
    return gages
