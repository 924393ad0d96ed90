"""One boto3 S3 client per run, honouring config s3.endpoint_url/region and the usual AWS_* environment."""

from __future__ import annotations

import os
from typing import Any


def make_s3_client(region: str = "", endpoint_url: str = "", max_workers: int = 8,
                   max_attempts: int = 5) -> Any:
    """A thread-safe S3 client whose connection pool fits ``max_workers`` concurrent transfers.

    Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, roles).
    """
    import boto3
    from botocore.config import Config as BotoConfig

    env = os.environ
    endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    boto_config = BotoConfig(
        max_pool_connections=max(10, max_workers * 2),
        retries={"max_attempts": max(1, max_attempts), "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    session = boto3.session.Session()
    return session.client("s3", region_name=region or None, endpoint_url=endpoint, config=boto_config)


def client_from_config(config: Any, max_workers: int | None = None) -> Any:
    """:func:`make_s3_client` from a :class:`flowzero.config.Config`."""
    return make_s3_client(
        region=config.s3.region,
        endpoint_url=config.s3.endpoint_url,
        max_workers=max_workers or config.downloads.max_workers,
        max_attempts=config.planet.max_retries,
    )


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key
