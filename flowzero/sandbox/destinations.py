"""Planet's Destinations API in the sandbox: bucket credentials registered once, referenced by orders.

``POST /destinations/v1`` takes ``{"name", "type": "s3_compatible" | "amazon_s3", "parameters": {...}}``,
checks that it can write and delete ``planetverify.txt`` in the bucket (as Planet does), and answers the
destination with its reference under ``pl:ref`` (``pl:destinations/<name>-<id>``). Secrets are kept in
``destinations.json`` of the data folder (the sandbox plays Planet, which keeps them) but are never echoed in
an answer. Orders name a destination with ``delivery.destination.ref``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any, Callable

from flowzero.sandbox.api import ApiError, bad_request, now_utc, rfc3339

REF_PREFIX = "pl:destinations/"
# type -> (required parameters, optional parameters, secret parameters)
TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]] = {
    "s3_compatible": (("bucket", "endpoint", "region", "access_key_id", "secret_access_key"),
                      ("use_path_style",), frozenset({"access_key_id", "secret_access_key"})),
    "amazon_s3": (("bucket", "aws_region", "aws_access_key_id", "aws_secret_access_key"),
                  ("explicit_sse",), frozenset({"aws_access_key_id", "aws_secret_access_key"})),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,62}$")


def check_parameters(kind: Any, parameters: Any, where: str) -> dict[str, Any]:
    """The parameters of a destination (or an order's delivery block) of ``kind``, or a 400 naming the field."""
    if kind not in TYPES:
        raise bad_request(f"{where}: unsupported destination type {kind!r} (the sandbox knows "
                          f"{', '.join(sorted(TYPES))})", "type")
    if not isinstance(parameters, dict):
        raise bad_request(f"{where}: parameters must be an object", "parameters")
    required, optional, _ = TYPES[kind]
    missing = [name for name in required if not isinstance(parameters.get(name), str) or not parameters[name]]
    if missing:
        raise bad_request(f"{where}: missing or empty {', '.join(missing)}", f"parameters.{missing[0]}")
    known = set(required) | set(optional) | {"path_prefix"}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise bad_request(f"{where}: unknown parameter(s) {', '.join(unknown)}", f"parameters.{unknown[0]}")
    return dict(parameters)


def public_parameters(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as an answer may show them: without the secrets."""
    hidden = TYPES.get(kind, ((), (), frozenset()))[2]
    return {k: v for k, v in parameters.items() if k not in hidden}


class Destinations:
    """The registered destinations of one sandbox (``destinations.json``); thread-safe."""

    def __init__(self, data_dir: Path, url: str, verify: Callable[[str, dict[str, Any]], None]) -> None:
        self.url = url
        self._verify = verify
        self._file = data_dir / "destinations.json"
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self._file.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read {self._file}: {exc}") from None
        for item in data.get("destinations", []):
            self._items[item["id"]] = item

    def _save(self) -> None:
        tmp = self._file.with_name(f"{self._file.name}.tmp-{threading.get_ident()}")
        tmp.write_text(json.dumps({"version": 1, "destinations": list(self._items.values())}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._file)

    def describe(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "_links": {"_self": f"{self.url}/{item['id']}"},
            "archived": None,
            "created": item["created"],
            "default": False,
            "id": item["id"],
            "name": item["name"],
            "ownership": {"is_owner": True, "owner_id": 1},
            "parameters": public_parameters(item["type"], item["parameters"]),
            "permissions": {"can_write": True},
            "pl:ref": item["ref"],
            "type": item["type"],
            "updated": item["updated"],
        }

    def create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the destination request must be a JSON object")
        kind = body.get("type")
        parameters = check_parameters(kind, body.get("parameters"), "destination")
        if "path_prefix" in parameters:
            raise bad_request("destination: path_prefix belongs to an order's delivery, not a destination",
                              "parameters.path_prefix")
        name = body.get("name") or parameters["bucket"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise bad_request("name must be 3 to 63 letters, digits, '.', '_' or '-'", "name")
        with self._lock:
            if any(item["name"] == name for item in self._items.values()):
                raise ApiError(409, f"a destination named {name!r} already exists")
        self._verify(str(kind), parameters)  # Planet writes and deletes planetverify.txt first
        stamp = rfc3339(now_utc())
        ident = secrets.token_hex(8)
        item = {"id": ident, "name": name, "type": kind, "parameters": parameters, "created": stamp,
                "updated": stamp, "ref": f"{REF_PREFIX}{name}-{ident}"}
        with self._lock:
            if any(other["name"] == name for other in self._items.values()):
                raise ApiError(409, f"a destination named {name!r} already exists")
            self._items[ident] = item
            self._save()
        return self.describe(item)

    def list(self) -> dict[str, Any]:
        with self._lock:
            items = sorted(self._items.values(), key=lambda i: i["created"])
            return {"_links": {"_self": self.url}, "destinations": [self.describe(i) for i in items]}

    def get(self, ident: str) -> dict[str, Any]:
        with self._lock:
            item = self._items.get(ident)
            if item is None:
                raise ApiError(404, f"destination {ident} not found")
            return self.describe(item)

    def resolve(self, ref: Any) -> tuple[str, dict[str, Any]]:
        """(type, parameters with secrets) of the destination ``ref`` names, or a 400 like Planet's."""
        with self._lock:
            for item in self._items.values():
                if item["ref"] == ref:
                    return item["type"], dict(item["parameters"])
        raise bad_request(f"delivery.destination.ref: unknown destination reference {ref!r}",
                          "delivery.destination.ref")
