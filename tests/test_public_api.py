"""The public plugin API (flowzero.api): the in-repo plugins import nothing else of flowzero, every name it lists
exists, and importing it stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILES = sorted((ROOT / "plugins").glob("*/*/*.py"))


def _flowzero_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of flowzero or a flowzero module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "flowzero" or node.module.startswith("flowzero."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name == "flowzero" or a.name.startswith("flowzero.")]
    return found


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_in_repo_plugins_import_only_the_public_api(path: Path) -> None:
    reaching = [f"line {line}: {module}" for line, module in _flowzero_imports(path) if module != "flowzero.api"]
    assert reaching == [], f"{path.relative_to(ROOT)} reaches past flowzero.api: {reaching}"


def test_every_public_name_resolves() -> None:
    import flowzero.api as api

    missing = [name for name in api.__all__ if getattr(api, name, None) is None]
    assert missing == []
    assert {"Downloader", "DownloadOptions", "TransferResult", "FailureReason", "SceneProvider", "OrderStore",
            "SqlOrderStore", "hookimpl"} <= set(api.__all__)


def test_importing_the_api_keeps_heavy_libraries_out() -> None:
    code = ("import sys, flowzero.api; heavy = ['httpx', 'boto3', 'botocore', 'apsw', 'shapely', 'pyproj'];"
            "print(','.join(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
