"""One boto3 S3 client per run, with the credentials, region, endpoint and CA bundle of :mod:`flowzero.aws`, and
``s3://`` URLs. Below delivery and the downloaders: both make their S3 clients here."""

from __future__ import annotations

import os
from typing import Any

from flowzero import aws


def make_s3_client(region: str = "", endpoint_url: str = "", max_workers: int = 8,
                   max_attempts: int = 5, profile: str = "") -> Any:
    """A thread-safe S3 client whose connection pool fits ``max_workers`` concurrent transfers.

    Credentials come from botocore's chain (environment, profile, web identity, container, instance role), as
    for every downloader; without any, :func:`flowzero.aws.no_credentials_error` is raised at once.
    """
    from botocore.config import Config as BotoConfig

    access = aws.resolve(region, endpoint_url, profile)
    checksums = {}
    if access.endpoint_url and "AWS_REQUEST_CHECKSUM_CALCULATION" not in os.environ:
        # Over HTTPS botocore streams bodies aws-chunked with a checksum trailer, which many S3-compatible
        # servers (MinIO and Ceph releases, rclone) refuse; flowzero verifies every body's digest itself.
        checksums = {"request_checksum_calculation": "when_required"}
    boto_config = BotoConfig(
        max_pool_connections=max(10, max_workers * 2),
        retries={"max_attempts": max(1, max_attempts), "mode": "standard"},
        s3={"addressing_style": "path"} if access.endpoint_url else None,
        **checksums,
    )
    return access.boto3_session().client("s3", region_name=access.region, endpoint_url=access.endpoint_url or None,
                                         config=boto_config, verify=access.ca_bundle)


def client_from_config(config: Any, max_workers: int | None = None) -> Any:
    """:func:`make_s3_client` from a :class:`flowzero.config.Config`."""
    return make_s3_client(
        region=config.s3.region,
        endpoint_url=config.s3.endpoint_url,
        max_workers=max_workers or config.downloads.max_workers,
        max_attempts=config.planet.max_retries,
        profile=config.s3.profile,
    )


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key
