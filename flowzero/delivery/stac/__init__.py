"""The STAC catalog kept beside every delivery, so xarray, QGIS and notebooks read flowzero's output directly.

The delivery calls :func:`record_delivery` once an order's files are verified at a destination (a folder or an
S3 prefix, whether downloaded or written there by Planet); ``flowzero stac DEST`` calls :func:`rebuild_catalog`.
Objects are pystac's; the layout and the concurrency rules are in :mod:`flowzero.delivery.stac.catalog`.
"""

from flowzero.delivery.stac.catalog import CATALOG_KEY, STAC_ROOT
from flowzero.delivery.stac.record import CatalogUpdate, rebuild_catalog, record_delivery

__all__ = ["CATALOG_KEY", "STAC_ROOT", "CatalogUpdate", "rebuild_catalog", "record_delivery"]
