"""Layered configuration: built-in defaults < config.yaml < environment < command-line flags.

The file is the one named by ``--config``, else ``$FLOWZERO_CONFIG``, else ``./config.yaml``, else none.
Secrets (PL_API_KEY, AWS_*) are read only from the environment or ``--api-key``, never from the file, and are
masked whenever the configuration is shown.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowzero.errors import ConfigError

PLANET_BASE = "https://api.planet.com"


@dataclass
class PlanetConfig:
    api_url: str = f"{PLANET_BASE}/data/v1"
    orders_url: str = f"{PLANET_BASE}/compute/ops/orders/v2"
    basemaps_url: str = f"{PLANET_BASE}/basemaps/v1/mosaics"
    timeout: float = 60.0
    max_retries: int = 5


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


@dataclass
class StorageConfig:
    backend: str = "sqlite"
    url: str = ""


@dataclass
class DeliveryConfig:
    mode: str = "download"
    path_prefix: str = "planet-staging/"
    destination_ref: str = ""


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

    @property
    def database_file(self) -> Path:
        return Path(os.path.expanduser(self.database_path))

    def to_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        """The effective settings as a plain dict; secrets are masked unless asked otherwise."""
        data = dataclasses.asdict(self)
        data.pop("source")
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
    from urllib.parse import urlsplit, urlunsplit

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
        if kind is str and not isinstance(value, (str, int, float)):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a {kind.__name__}, got {value!r}") from None


def _apply(config: Config, dotted: str, value: Any, where: str) -> None:
    if dotted in _TOP_LEVEL:
        setattr(config, dotted, _coerce(value, getattr(config, dotted), where))
        return
    section, _, key = dotted.partition(".")
    if section not in _SECTIONS or not key:
        raise ConfigError(f"{where}: unknown key '{dotted}'")
    target = getattr(config, section)
    if key not in {f.name for f in dataclasses.fields(target)}:
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
            for key, inner in value.items():
                _apply(config, f"{top}.{key}", inner, f"config file {path}, key '{top}.{key}'")
        else:
            _apply(config, str(top), value, f"config file {path}, key '{top}'")


def _env_name(dotted: str) -> str:
    return "FLOWZERO_" + dotted.replace(".", "_").upper()


def _load_env(config: Config, env: Mapping[str, str]) -> None:
    keys = list(_TOP_LEVEL) + [
        f"{section}.{f.name}" for section, cls in _SECTIONS.items() for f in dataclasses.fields(cls)
    ]
    for dotted in keys:
        names = (_env_name(dotted), *_ENV_ALIASES.get(dotted, ()))
        for name in names:
            if env.get(name):
                _apply(config, dotted, env[name], f"environment variable {name}")
                break


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
    config.api_key = api_key or env.get("PL_API_KEY", "")
    return config
