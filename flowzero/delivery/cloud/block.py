"""``--delivery download|cloud``: the Orders v2 ``delivery`` block that has Planet write into the user's bucket.

- ``delivery.destination_ref`` set: ``{"destination": {"ref", "path_prefix"}}``; no secret travels (recommended).
- ``s3.endpoint_url`` set: ``{"s3_compatible": {endpoint, bucket, region, access_key_id, secret_access_key,
  use_path_style, path_prefix}}``.
- otherwise: ``{"amazon_s3": {bucket, aws_region, aws_access_key_id, aws_secret_access_key, path_prefix}}``.

Planet then writes ``<path_prefix><order id>/...``. The keys come from the usual AWS chain and are secrets: they
go only into the request sent to Planet. What is recorded with the order (and shown, and put in ``--json``) is
:meth:`CloudDelivery.record`, where they are ``****``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from flowzero.errors import ConfigError, UsageError
from flowzero.redact import add_secret, redact

if TYPE_CHECKING:
    from flowzero.config import Config

MODES = ("download", "cloud")
KINDS = ("s3_compatible", "amazon_s3", "destination")
SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "aws_access_key_id", "aws_secret_access_key"})
MASK = "****"

# Looks a destination up by its ``pl:ref`` (see flowzero.planet.destinations); None if it is not registered.
DestinationLookup = Callable[[str], Optional[dict]]


@dataclass(frozen=True)
class CloudDelivery:
    """Where Planet is asked to write an order (``kind`` is the delivery block's key) and the block itself."""

    kind: str
    bucket: str
    path_prefix: str
    region: str = ""
    endpoint: str = ""
    ref: str = ""
    block: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # carries the secrets

    @property
    def staging(self) -> str:
        """``s3://bucket/prefix`` under which Planet writes ``<order id>/...``."""
        return f"s3://{self.bucket}/{self.path_prefix}"

    def record(self) -> dict[str, Any]:
        """What the order store keeps: enough to find the staged files again, the block with ``****`` keys."""
        data: dict[str, Any] = {"mode": "cloud", "type": self.kind, "bucket": self.bucket,
                                "path_prefix": self.path_prefix, "request": redact_block(self.block)}
        for key in ("region", "endpoint", "ref"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data

    def describe(self) -> str:
        via = f" (destination {self.ref})" if self.ref else ""
        return f"Planet writes into {self.staging}<order id>/{via}"


def redact_block(block: Any) -> Any:
    """A delivery block (or any JSON) with every credential field replaced by ``****``."""
    if isinstance(block, dict):
        return {k: (MASK if k in SECRET_FIELDS and v else redact_block(v)) for k, v in block.items()}
    if isinstance(block, list):
        return [redact_block(v) for v in block]
    return copy.deepcopy(block)


def resolve_mode(option: str | None, config: Config) -> str:
    """``--delivery`` if given, else ``delivery.mode``; a bad config value is one line naming the key."""
    mode = (option or config.delivery.mode or "download").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"delivery.mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def normalize_prefix(prefix: str) -> str:
    """``planet-staging`` -> ``planet-staging/``: the prefix is a folder of the bucket (empty: the top)."""
    value = (prefix or "").strip().lstrip("/")
    if "\\" in value or ".." in value.split("/") or any(ord(c) < 32 for c in value):
        raise ConfigError(f"delivery.path_prefix {prefix!r} is not a safe key prefix",
                          hint="use something like planet-staging/")
    return value if not value or value.endswith("/") else value + "/"


def _prefixed(prefix: str) -> dict[str, str]:
    return {"path_prefix": prefix} if prefix else {}


def aws_keys() -> tuple[str, str]:
    """The long-lived key pair from the AWS chain; both are remembered as secrets for redaction."""
    import boto3

    try:
        found = boto3.session.Session().get_credentials()
    except Exception as exc:  # a broken profile or credential process
        raise ConfigError(f"cannot read AWS credentials: {redact(str(exc))}") from None
    if found is None:
        raise ConfigError("--delivery cloud needs AWS credentials to hand to Planet, and none were found",
                          hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or register a destination "
                               "once (`flowzero destinations register`) and set delivery.destination_ref")
    frozen = found.get_frozen_credentials()
    add_secret(frozen.access_key)
    add_secret(frozen.secret_key)
    if frozen.token:
        raise ConfigError("--delivery cloud cannot hand temporary AWS credentials (with a session token) to "
                          "Planet: they expire before Planet delivers",
                          hint="register a destination once and set delivery.destination_ref")
    return frozen.access_key, frozen.secret_key


def cloud_delivery(config: Config, lookup: DestinationLookup | None = None) -> CloudDelivery:
    """The delivery block for ``config`` (see the module docstring), checked before anything is ordered."""
    prefix = normalize_prefix(config.delivery.path_prefix)
    ref = config.delivery.destination_ref.strip()
    if ref:
        return _destination(ref, prefix, config, lookup)
    bucket = config.s3.bucket_name.strip()
    if not bucket:
        raise ConfigError("--delivery cloud needs the bucket Planet should write to, but s3.bucket_name is not set",
                          hint="set s3.bucket_name (or FLOWZERO_S3_BUCKET_NAME), or delivery.destination_ref")
    access_key, secret_key = aws_keys()
    region = config.s3.region
    endpoint = config.s3.endpoint_url.strip()
    if endpoint:
        block = {"endpoint": endpoint, "bucket": bucket, "region": region, "access_key_id": access_key,
                 "secret_access_key": secret_key, "use_path_style": True, **_prefixed(prefix)}
        return CloudDelivery("s3_compatible", bucket, prefix, region, endpoint, block={"s3_compatible": block})
    block = {"bucket": bucket, "aws_region": region, "aws_access_key_id": access_key,
             "aws_secret_access_key": secret_key, **_prefixed(prefix)}
    return CloudDelivery("amazon_s3", bucket, prefix, region, block={"amazon_s3": block})


def _destination(ref: str, prefix: str, config: Config, lookup: DestinationLookup | None) -> CloudDelivery:
    if not ref.startswith("pl:destinations/"):
        raise ConfigError(f"delivery.destination_ref {ref!r} is not a destination reference",
                          hint="references look like pl:destinations/<name>-<id>; see `flowzero destinations list`")
    found = lookup(ref) if lookup is not None else None
    if lookup is not None and found is None:
        raise ConfigError(f"delivery.destination_ref {ref} is not registered with Planet",
                          hint="see `flowzero destinations list`, or register one with `flowzero destinations "
                               "register`")
    parameters = (found or {}).get("parameters") or {}
    bucket = str(parameters.get("bucket") or config.s3.bucket_name or "")
    if not bucket:
        raise ConfigError(f"cannot tell which bucket destination {ref} writes to", hint="set s3.bucket_name")
    region = str(parameters.get("region") or parameters.get("aws_region") or config.s3.region)
    endpoint = str(parameters.get("endpoint") or "")
    block = {"destination": {"ref": ref, **_prefixed(prefix)}}
    return CloudDelivery("destination", bucket, prefix, region, endpoint, ref, block)


def resolve_delivery(option: str | None, config: Config,
                     lookup: DestinationLookup | None = None) -> CloudDelivery | None:
    """None for downloads; the checked :class:`CloudDelivery` for ``cloud``."""
    if option is not None and option not in MODES:
        raise UsageError(f"--delivery must be one of {', '.join(MODES)}")
    if resolve_mode(option, config) == "download":
        return None
    return cloud_delivery(config, lookup)
