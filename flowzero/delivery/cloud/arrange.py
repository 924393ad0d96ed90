"""Cloud-delivered orders: Planet wrote the files into the user's bucket; arrange them there, or fetch them.

An order placed with ``--delivery cloud`` is staged by Planet under ``<path_prefix><order id>/`` with its
``manifest.json``. When ``check-order-status`` / ``batch-check-status`` find it finished, every analytic image is
placed at the same layout key the download path uses (:mod:`flowzero.delivery.layout`), inside the bucket, by a
verified server-side copy (:mod:`flowzero.delivery.cloud.copy`), and its staged copy is deleted so it is not stored
twice; ``metadata.json`` is written as for downloads, with the delivery block's credentials masked. Without
``--output`` the layout goes to the top of the staging bucket; ``--output s3://bucket/prefix`` puts it there
instead; ``--output DIR`` fetches the staged files to a folder through the configured downloader (presigned
URLs), leaving the bucket as it is. Reruns skip what is already arranged and verified.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from flowzero.delivery.cloud.block import redact_block
from flowzero.delivery.cloud.copy import S3Arranger, describe_error, head
from flowzero.delivery.destination import Destination, parse_output
from flowzero.delivery.jobs import DeliveryPlan, plan_delivery
from flowzero.delivery.manifest import Manifest, parse_manifest
from flowzero.delivery.outcomes import DeliverySettings, OrderOutcome, catalog_delivery, conclude_delivery
from flowzero.delivery.progress import TransferProgress
from flowzero.delivery.s3requests import BotoRequests
from flowzero.errors import FlowzeroError, TransferError
from flowzero.models import Order, TransferResult
from flowzero.planet.destinations import DestinationsClient
from flowzero.redact import redact
from flowzero.s3 import make_s3_client, split_s3_url

CLOUD_KINDS = ("s3_compatible", "amazon_s3", "destination")
FINISHED = ("success", "partial")
PRESIGN_SECONDS = 12 * 3600

Say = Callable[[str], None]
RunDownloader = Callable[[list[Any], Any, Any, Any], list[TransferResult]]  # (jobs, config, settings, progress)


@dataclass(frozen=True)
class Staging:
    """Where Planet put an order: ``s3://bucket/<prefix><order id>/...``."""

    bucket: str
    prefix: str = ""
    endpoint: str = ""
    region: str = ""

    def key(self, order_id: str, path: str) -> str:
        path = path.lstrip("/")
        if path.startswith(f"{order_id}/"):
            path = path[len(order_id) + 1:]
        return f"{self.prefix}{order_id}/{path}"

    def describe(self, order_id: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{order_id}/"


def cloud_record(record: Order | None, order_json: dict[str, Any] | None) -> dict[str, Any] | None:
    """The order's cloud delivery as recorded at submit, else as Planet describes it; never with its keys."""
    meta = (record.metadata or {}).get("delivery") if record is not None else None
    if isinstance(meta, dict) and meta.get("mode") == "cloud":
        return meta
    block = (order_json or {}).get("delivery")
    if not isinstance(block, dict):
        return None
    for kind in CLOUD_KINDS:
        inner = block.get(kind)
        if isinstance(inner, dict):
            return {"mode": "cloud", "type": kind, "bucket": str(inner.get("bucket") or ""),
                    "path_prefix": str(inner.get("path_prefix") or ""),
                    "region": str(inner.get("region") or inner.get("aws_region") or ""),
                    "endpoint": str(inner.get("endpoint") or ""), "ref": str(inner.get("ref") or ""),
                    "request": redact_block(block)}
    return None


def is_cloud_order(record: Order | None, order_json: dict[str, Any] | None) -> bool:
    """Did Planet deliver (or will it deliver) this order into a bucket rather than as download links?"""
    return cloud_record(record, order_json) is not None


def public_order(order_json: dict[str, Any]) -> dict[str, Any]:
    """The order's JSON as it may be written or shown: the delivery block's credentials masked."""
    clean = copy.deepcopy(order_json)
    if "delivery" in clean:
        clean["delivery"] = redact_block(clean["delivery"])
    return clean


def staging_of(info: dict[str, Any], planet: Any, config: Any) -> Staging:
    """The staging location of a cloud order; a destination's bucket is asked of Planet when not recorded."""
    bucket, endpoint = str(info.get("bucket") or ""), str(info.get("endpoint") or "")
    region = str(info.get("region") or "")
    if not bucket and info.get("ref") and planet is not None:
        found = DestinationsClient(planet).find(str(info["ref"])) or {}
        parameters = found.get("parameters") or {}
        bucket = str(parameters.get("bucket") or "")
        endpoint = endpoint or str(parameters.get("endpoint") or "")
        region = region or str(parameters.get("region") or parameters.get("aws_region") or "")
    bucket = bucket or config.s3.bucket_name
    if not bucket:
        raise TransferError(f"cannot tell which bucket Planet delivered to (destination {info.get('ref')})",
                            hint="set s3.bucket_name to the destination's bucket")
    return Staging(bucket, str(info.get("path_prefix") or ""), endpoint, region)


def _client(config: Any, staging: Staging, cache: dict[tuple[str, str], Any]) -> Any:
    endpoint = config.s3.endpoint_url or staging.endpoint
    region = staging.region or config.s3.region
    if (endpoint, region) not in cache:
        cache[(endpoint, region)] = make_s3_client(region=region, endpoint_url=endpoint,
                                                   max_workers=config.downloads.max_workers,
                                                   max_attempts=config.planet.max_retries)
    return cache[(endpoint, region)]


def read_manifest(client: Any, staging: Staging, order_id: str) -> Manifest:
    """The order's manifest.json as Planet wrote it into the bucket."""
    key = staging.key(order_id, "manifest.json")
    try:
        body = client.get_object(Bucket=staging.bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise TransferError(f"cannot read s3://{staging.bucket}/{key}: {describe_error(exc)}",
                            hint="Planet writes it last; check again later, or check the bucket's permissions"
                            ) from None
    try:
        return parse_manifest(json.loads(body))
    except ValueError:
        raise TransferError(f"s3://{staging.bucket}/{key} is not JSON") from None


def staged_order(order_json: dict[str, Any], manifest: Manifest, staging: Staging, order_id: str
                 ) -> dict[str, Any]:
    """The order with its results pointing at the staged objects (``s3://bucket/key`` URLs)."""
    results = [{"name": f"{order_id}/{entry.path.lstrip('/')}",
                "location": f"s3://{staging.bucket}/{staging.key(order_id, entry.path)}", "delivery": "success"}
               for entry in manifest.entries]
    staged = {k: v for k, v in order_json.items() if k != "_links"}
    staged["_links"] = {"results": results}
    return staged


def arrange_in_bucket(plan: DeliveryPlan, client: Any, config: Any, overwrite: bool) -> list[TransferResult]:
    """Every job of ``plan`` placed by verified server-side copy, concurrently; one result per job."""
    if not plan.jobs:
        return []
    arranger = S3Arranger(client, overwrite=overwrite)
    with ThreadPoolExecutor(max(1, min(config.downloads.max_workers, len(plan.jobs)))) as pool:
        return list(pool.map(arranger.place, plan.jobs))


def _arranged_at(record: Order | None, staging: Staging) -> Destination:
    """Where an earlier run arranged this order inside S3 (the top of the staging bucket by default)."""
    where = str(((record.metadata or {}) if record else {}).get("destination") or "")
    if where.startswith("s3://"):
        return parse_output(where, None)
    return Destination("s3", staging.bucket, "")


def presign_sources(plan: DeliveryPlan, client: Any, arranged: Destination) -> None:
    """Point each job at a presigned URL of its staged object or, once that was arranged and deleted, of the
    arranged copy, so any downloader can fetch it over HTTP with its usual verification."""
    for job, key in zip(plan.jobs, plan.keys):
        bucket, object_key = split_s3_url(job.url)
        if head(client, bucket, object_key) is None:
            bucket, object_key = split_s3_url(arranged.target(key))
        job.url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": object_key},
                                                ExpiresIn=PRESIGN_SECONDS)


def _fetch(plan: DeliveryPlan, config: Any, settings: DeliverySettings, run_downloader: RunDownloader
           ) -> list[TransferResult]:
    if not plan.jobs:
        return []
    with TransferProgress(settings.show_progress) as progress:
        progress.add(sum(job.size or 0 for job in plan.jobs), len(plan.jobs))
        return run_downloader(plan.jobs, config, settings, progress)


def _deliver_one(outcome: OrderOutcome, record: Order | None, order_json: dict[str, Any], info: dict[str, Any],
                 planet: Any, config: Any, settings: DeliverySettings, say: Say,
                 clients: dict[tuple[str, str], Any], run_downloader: RunDownloader) -> OrderOutcome:
    order_id = outcome.order_id
    staging = staging_of(info, planet, config)
    client = _client(config, staging, clients)
    manifest = read_manifest(client, staging, order_id)
    destination = settings.destination or Destination("s3", staging.bucket, "")
    local = not destination.is_s3
    plan = plan_delivery(staged_order(order_json, manifest, staging, order_id), record, manifest, destination,
                         settings.assets)
    if local:
        say(f"order {order_id}: fetching {len(plan.jobs)} file(s) from {staging.describe(order_id)}")
        presign_sources(plan, client, _arranged_at(record, staging))
        results = _fetch(plan, config, settings, run_downloader)
    else:
        say(f"order {order_id}: arranging {len(plan.jobs)} file(s) from {staging.describe(order_id)} in "
            f"{destination.describe()} by server-side copy")
        results = arrange_in_bucket(plan, client, config, settings.overwrite)
    requests = lambda: BotoRequests(client)  # noqa: E731
    outcome = conclude_delivery(outcome, plan, results, public_order(order_json), destination, requests,
                                 settings.allow_unverified)
    outcome = catalog_delivery(outcome, plan, public_order(order_json), record, destination, requests, settings)
    how = "fetched from" if local else "arranged by server-side copy from"
    outcome.message = f"{how} {staging.describe(order_id)}" + ("" if local else
                                                             " (staged copies of arranged images deleted)")
    return outcome


def deliver_cloud_orders(checked: Sequence[Any], outcomes: list[OrderOutcome], planet: Any, config: Any,
                         settings: DeliverySettings, say: Say, run_downloader: RunDownloader) -> list[OrderOutcome]:
    """The outcomes with every finished cloud order arranged (or fetched); other orders are left as they are.

    ``checked`` are :func:`flowzero.delivery.deliver.check_orders`' per-order states (``record``,
    ``order_json``, ``error``), in the same order as ``outcomes``; ``run_downloader`` moves the files of an
    order fetched to a folder (the orchestration's, so both go through the same downloader set-up).
    """
    result = list(outcomes)
    clients: dict[tuple[str, str], Any] = {}
    for index, item in enumerate(checked):
        outcome = result[index]
        if item.error is not None or item.order_json is None or outcome.state not in FINISHED:
            continue
        info = cloud_record(item.record, item.order_json)
        if info is None:
            continue
        try:
            result[index] = _deliver_one(outcome, item.record, item.order_json, info, planet, config, settings,
                                         say, clients, run_downloader)
        except Exception as exc:  # one order's surprise must not sink the batch
            text = exc.message if isinstance(exc, FlowzeroError) else f"{type(exc).__name__}: {exc}"
            outcome.category = "incomplete"
            outcome.failed_files = [{"file": "(cloud delivery)", "error": redact(text)}]
    return result
