"""Layered configuration: built-in defaults < config.yaml < environment < command-line flags.

The file is the one named by ``--config``, else ``$FLOWZERO_CONFIG``, else ``./config.yaml``, else none.
Secrets (PL_API_KEY, AWS_*) are read only from the environment or ``--api-key``, never from the file, and are
masked whenever the configuration is shown.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flowzero.errors import ConfigError, SettingError
from flowzero.pacing import RateLimits

PLANET_BASE = "https://api.planet.com"


@dataclass
class PlanetConfig:
    api_url: str = f"{PLANET_BASE}/data/v1"
    orders_url: str = f"{PLANET_BASE}/compute/ops/orders/v2"
    basemaps_url: str = f"{PLANET_BASE}/basemaps/v1/mosaics"
    timeout: float = 60.0
    max_retries: int = 5
    # Requests per second per endpoint class, Planet's documented limits (flowzero paces at 95 % of them).
    rate_limits: RateLimits = field(default_factory=RateLimits)
    throttle_budget: float = 600.0  # seconds one request or file may spend waiting on 429 answers


@dataclass
class S3Config:
    bucket_name: str = ""
    region: str = "us-west-2"
    endpoint_url: str = ""
    profile: str = ""


@dataclass
class DownloadsConfig:
    max_workers: int = 8
    min_coverage_pct: float = 98.0
    cloud_cover_max: float = 0.0
    downloader: str = "threads"
    part_size_mib: int = 16
    max_unknown_size_mib: int = 4096  # a file whose size the manifest does not give is refused beyond this


@dataclass
class StorageConfig:
    backend: str = "sqlite"
    url: str = ""


@dataclass
class DeliveryConfig:
    mode: str = "download"
    path_prefix: str = "planet-staging/"
    destination_ref: str = ""
    assets: str = "image,udm2,metadata"  # what of each PlanetScope item a delivery keeps (--assets)
    catalog: bool = True  # keep a STAC catalog at every destination (flowzero/delivery/stac)


# The numbers a setting may take (inclusive), checked once every layer is applied. NaN and infinity never fit.
RANGES: dict[str, tuple[float, float]] = {
    "planet.timeout": (0.1, 3600.0),  # seconds per HTTP request
    "planet.max_retries": (0, 100),
    "downloads.max_workers": (1, 256),  # concurrent transfers (each holds a connection and a part buffer)
    "downloads.min_coverage_pct": (0.0, 100.0),
    "downloads.cloud_cover_max": (0.0, 1.0),  # Planet's cloud_cover is a fraction
    "downloads.part_size_mib": (5, 5120),  # S3's smallest part (but the last) is 5 MiB, its largest 5 GiB
    "downloads.max_unknown_size_mib": (1, 5 * 1024 * 1024),  # 5 TiB: S3's largest object
    "planet.throttle_budget": (0.0, 7 * 24 * 3600.0),  # seconds one request may wait on 429s
    **{f"planet.rate_limits.{name}": (0.0, 100000.0) for name in RateLimits.__dataclass_fields__},  # 0: unpaced
}
DEFAULT_SOURCE = "default"


@dataclass
class Config:
    planet: PlanetConfig = field(default_factory=PlanetConfig)
    s3: S3Config = field(default_factory=S3Config)
    downloads: DownloadsConfig = field(default_factory=DownloadsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    database_path: str = "~/.flowzero/flowzero.db"
    source: str = "built-in defaults"
    api_key: str = field(default="", repr=False)
    sources: dict[str, str] = field(default_factory=dict, repr=False)  # dotted key -> where its value came from

    @property
    def database_file(self) -> Path:
        return Path(os.path.expanduser(self.database_path))

    def to_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """The effective settings as a plain dict; secrets are masked unless asked otherwise."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data.pop("sources")
        key = data.pop("api_key")
        data["api_key"] = mask(key) if mask_secrets else key
        if mask_secrets and data["storage"]["url"]:
            data["storage"]["url"] = mask_url_password(data["storage"]["url"])
        data["aws_access_key_id"] = mask(os.environ.get("AWS_ACCESS_KEY_ID", ""))
        data["aws_secret_access_key"] = mask(os.environ.get("AWS_SECRET_ACCESS_KEY", ""))
        return data


_SECTIONS = {"planet": PlanetConfig, "s3": S3Config, "downloads": DownloadsConfig,
             "storage": StorageConfig, "delivery": DeliveryConfig}
_TOP_LEVEL = {"database_path"}

# Environment variables a user of the AWS tools already sets, honoured the same way.
_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "s3.endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "s3.region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "storage.url": ("FLOWZERO_DATABASE_URL",),
}


def mask(secret: str) -> str:
    """A secret as it may be shown: set or not, never its value."""
    return "****" if secret else "(not set)"


# libpq also takes ``password=...`` as a key=value pair (``host=h password='s 1' dbname=d``) or in a URL's query.
_PASSWORD_PAIR = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def mask_url_password(url: str) -> str:
    """A database URL or libpq connection string with its password hidden.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:****@host/db``; ``password=secret`` pairs
    (key=value strings, URL queries) -> ``password=****``.
    """
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:****@{host}"))
    return _PASSWORD_PAIR.sub(r"\1****", url)


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """``--config``, else ``$FLOWZERO_CONFIG``, else ``./config.yaml`` if it exists."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise ConfigError(f"config file {path} {what}", hint="check the --config path")
        return path
    if env.get("FLOWZERO_CONFIG"):
        path = Path(env["FLOWZERO_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} (from FLOWZERO_CONFIG) does not exist")
        return path
    local = Path("config.yaml")
    return local if local.is_file() else None


def _coerce(value: Any, like: Any, where: str) -> Any:
    kind = type(like)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
                return value.lower() in {"1", "true", "yes", "on"}
            raise ValueError(value)
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)  # 8.5 workers is a mistake, not 8
        if kind is str and not isinstance(value, (str, int, float)):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise SettingError(f"{where}: expected a {kind.__name__}, got {value!r}") from None


def _apply(config: Config, dotted: str, value: Any, where: str) -> None:
    if dotted in _TOP_LEVEL:
        setattr(config, dotted, _coerce(value, getattr(config, dotted), where))
        return
    section, _, key = dotted.partition(".")
    if section not in _SECTIONS or not key:
        raise ConfigError(f"{where}: unknown key '{dotted}'")
    target: Any = getattr(config, section)
    *path, key = key.split(".")
    for name in path:  # a nested section such as planet.rate_limits
        if not dataclasses.is_dataclass(getattr(target, name, None)):
            raise ConfigError(f"{where}: unknown key '{dotted}'")
        target = getattr(target, name)
    if key not in {f.name for f in dataclasses.fields(target)} or dataclasses.is_dataclass(getattr(target, key)):
        raise ConfigError(f"{where}: unknown key '{dotted}'")
    setattr(target, key, _coerce(value, getattr(target, key), where))


def _load_file(config: Config, path: Path) -> None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})",
                          hint="save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{at}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    for top, value in data.items():
        if top in _SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"config file {path}: '{top}' must be a mapping")
            for dotted, inner in _flatten(top, value):
                if inner is not None:  # an empty value (`key:`) leaves the setting as it was
                    _apply(config, dotted, inner, f"config file {path}, key '{dotted}'")
                    config.sources[dotted] = f"config file {path}"
        elif value is not None:
            _apply(config, str(top), value, f"config file {path}, key '{top}'")
            config.sources[str(top)] = f"config file {path}"


def _flatten(prefix: str, mapping: dict[Any, Any]) -> Iterator[tuple[str, Any]]:
    """``{"rate_limits": {"downloads": 5}}`` under ``planet`` -> ``("planet.rate_limits.downloads", 5)``."""
    for key, value in mapping.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, dict):
            yield from _flatten(dotted, value)
        else:
            yield dotted, value


def _dotted_keys(prefix: str, cls: Any) -> Iterator[str]:
    """Every settable key of a section, nested sections spelled out."""
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _dotted_keys(f"{prefix}.{f.name}", type(default))
        else:
            yield f"{prefix}.{f.name}"


def _env_name(dotted: str) -> str:
    return "FLOWZERO_" + dotted.replace(".", "_").upper()


def _load_env(config: Config, env: Mapping[str, str]) -> None:
    keys = list(_TOP_LEVEL) + [key for section, cls in _SECTIONS.items() for key in _dotted_keys(section, cls)]
    for dotted in keys:
        names = (_env_name(dotted), *_ENV_ALIASES.get(dotted, ()))
        for name in names:
            if env.get(name):
                _apply(config, dotted, env[name], f"environment variable {name}")
                config.sources[dotted] = f"environment variable {name}"
                break


def _setting(config: Config, dotted: str) -> Any:
    value: Any = config
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def check_ranges(config: Config) -> None:
    """Refuse a number outside :data:`RANGES` (or NaN), naming the key, the range and where the value came from."""
    for dotted, (low, high) in RANGES.items():
        value = _setting(config, dotted)
        if isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high:
            continue
        where = config.sources.get(dotted, DEFAULT_SOURCE)
        raise SettingError(f"{where}: {dotted} must be between {low:g} and {high:g}, got {value!r}",
                           hint=f"set {dotted} to a number from {low:g} to {high:g}")


def mosaics_url(url: str) -> str:
    """The Basemaps mosaics endpoint, given it or the API root as Planet's SDK takes it (``.../basemaps/v1``)."""
    url = url.rstrip("/")
    return url if url.endswith("/mosaics") else f"{url}/mosaics"


def load_config(
    path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration; ``overrides`` are dotted keys from command-line flags."""
    env = os.environ if env is None else env
    config = Config()
    found = find_config_file(path, env)
    if found is not None:
        _load_file(config, found)
        config.source = str(found)
    _load_env(config, env)
    overrides = dict(overrides or {})
    api_key = overrides.pop("api_key", None)
    for dotted, value in overrides.items():
        if value is not None:
            _apply(config, dotted, value, f"option for {dotted}")
            config.sources[dotted] = f"option for {dotted}"
    config.api_key = api_key or env.get("PL_API_KEY", "")
    if config.api_key:
        config.sources["api_key"] = "option --api-key" if api_key else "environment variable PL_API_KEY"
    config.planet.basemaps_url = mosaics_url(config.planet.basemaps_url)
    check_ranges(config)
    return config
