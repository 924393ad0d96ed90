"""An order's manifest.json: the expected size and digests of every delivered file, keyed by result name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MANIFEST_NAME = "manifest.json"


@dataclass
class ManifestEntry:
    """What Planet says one delivered file is: how big, which digests, which item and asset."""

    path: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    media_type: str = ""
    annotations: dict[str, Any] = field(default_factory=dict)

    @property
    def item_id(self) -> str | None:
        value = self.annotations.get("planet/item_id")
        return str(value) if value else None


@dataclass
class Manifest:
    """A manifest's entries, found by full name, by name without the order-id folder, or by file name."""

    entries: list[ManifestEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_path = {e.path.strip("/"): e for e in self.entries}
        by_base: dict[str, list[ManifestEntry]] = {}
        for entry in self.entries:
            by_base.setdefault(entry.path.rsplit("/", 1)[-1], []).append(entry)
        self._by_base = {name: found[0] for name, found in by_base.items() if len(found) == 1}

    def lookup(self, result_name: str) -> ManifestEntry | None:
        """The entry for a result name such as ``<order id>/PSScene/<file>``, or None if it is not listed."""
        name = result_name.strip("/")
        if name in self._by_path:
            return self._by_path[name]
        _, _, without_order = name.partition("/")
        if without_order in self._by_path:
            return self._by_path[without_order]
        return self._by_base.get(name.rsplit("/", 1)[-1])


def parse_manifest(data: Any) -> Manifest:
    """A :class:`Manifest` from manifest.json's parsed JSON; malformed entries are ignored, not fatal."""
    files = data.get("files", []) if isinstance(data, dict) else []
    entries = []
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            continue
        raw_digests, raw_annotations = item.get("digests"), item.get("annotations")
        digests: dict[str, Any] = raw_digests if isinstance(raw_digests, dict) else {}
        annotations: dict[str, Any] = raw_annotations if isinstance(raw_annotations, dict) else {}
        size = item.get("size")
        entries.append(ManifestEntry(
            path=item["path"],
            size=int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) else None,
            md5=_hex(digests.get("md5")),
            sha256=_hex(digests.get("sha256")),
            media_type=str(item.get("media_type") or ""),
            annotations=annotations,
        ))
    return Manifest(entries)


def _hex(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    value = value.strip().lower()
    return value if all(c in "0123456789abcdef" for c in value) else None


def manifest_link(order: dict[str, Any]) -> dict[str, Any] | None:
    """The ``_links.results[]`` entry of the order's manifest.json, if Planet delivered one."""
    for result in order_results(order):
        if str(result.get("name", "")).rsplit("/", 1)[-1] == MANIFEST_NAME:
            return result
    return None


def order_results(order: dict[str, Any]) -> list[dict[str, Any]]:
    """``_links.results`` of an order, tolerating a missing or null list."""
    links = order.get("_links") or {}
    results = links.get("results") if isinstance(links, dict) else None
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
