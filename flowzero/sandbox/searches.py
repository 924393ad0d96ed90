"""Data API quick searches and their result pages (``_links._next`` until it is absent)."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from flowzero.sandbox.api import ApiError, bad_request
from flowzero.sandbox.catalog import FIRST_DAY, ITEM_TYPE, Catalog
from flowzero.sandbox.filters import acquired_window, compile_filter, search_area

SORTS = ("published desc", "published asc", "acquired desc", "acquired asc")


class Searches:
    """Runs searches against the catalog and keeps the last ``keep`` result lists for paging."""

    def __init__(self, catalog: Catalog, api_url: str, keep: int = 64) -> None:
        self.catalog = catalog
        self.api_url = api_url
        self._results: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def quick_search(self, body: Any, size: int, sort: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the search request must be a JSON object")
        item_types = body.get("item_types")
        if not (isinstance(item_types, list) and item_types and all(isinstance(t, str) for t in item_types)):
            raise bad_request("item_types must be a non-empty list of item type names", "item_types")
        if "filter" not in body:
            raise bad_request("filter is required (use an empty AndFilter to match everything)", "filter")
        sort = sort or "published desc"
        if sort not in SORTS:
            raise bad_request(f"_sort must be one of {', '.join(SORTS)}", "_sort")
        predicate = compile_filter(body["filter"])
        features: list[dict[str, Any]] = []
        if ITEM_TYPE in item_types:
            aoi = search_area(body)
            start, end = acquired_window(body, datetime.combine(FIRST_DAY, datetime.min.time(), timezone.utc))
            features = [f for f in self.catalog.features(aoi, start, end) if predicate(f)]
        field, direction = sort.split()
        features.sort(key=lambda f: (f["properties"][field], f["id"]), reverse=direction == "desc")
        self.catalog.remember(features)
        search_id = uuid.uuid4().hex
        with self._lock:
            self._results[search_id] = features
            while len(self._results) > self._keep:
                self._results.popitem(last=False)
        return self._page(search_id, features, 0, size)

    def page(self, search_id: str, token: str | None, size: int) -> dict[str, Any]:
        with self._lock:
            features = self._results.get(search_id)
        if features is None:
            raise ApiError(404, f"search {search_id} not found or expired")
        try:
            offset = int(token or "0")
        except ValueError:
            raise bad_request(f"invalid _page token {token!r}", "_page") from None
        if offset < 0 or offset > len(features):
            raise bad_request(f"invalid _page token {token!r}", "_page")
        return self._page(search_id, features, offset, size)

    def _page(self, search_id: str, features: list[dict[str, Any]], offset: int, size: int) -> dict[str, Any]:
        base = f"{self.api_url}/searches/{search_id}/results"
        links = {
            "_first": f"{base}?_page=0&_page_size={size}",
            "_self": f"{base}?_page={offset}&_page_size={size}",
        }
        if offset + size < len(features):
            links["_next"] = f"{base}?_page={offset + size}&_page_size={size}"
        return {"_links": links, "features": features[offset:offset + size], "type": "FeatureCollection"}
