"""Cloud delivery, in one place: the delivery block an order carries to Planet (:mod:`.block`), the arrangement of
what Planet wrote into the bucket (:mod:`.arrange`), and the verified server-side copy of each object (:mod:`.copy`).
"""

from __future__ import annotations

from flowzero.delivery.cloud.arrange import cloud_record, deliver_cloud_orders, is_cloud_order

__all__ = ["cloud_record", "deliver_cloud_orders", "is_cloud_order"]
