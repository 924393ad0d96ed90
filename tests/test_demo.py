"""`flowzero demo`, a newcomer's first command, run as a user runs it: a subprocess, twice.

The first run orders and delivers; the checks read what it left behind (files, the order database, the
sandbox's own order log), not what it printed. The second run must order nothing and fetch nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from flowzero.demo import AOI_NAME, DEMO_AOI, FILE_SIZE


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PL_", "FLOWZERO_"))}
    return subprocess.run([sys.executable, "-m", "flowzero", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def _sandbox_images(sandbox: Path) -> dict[str, str]:
    """The analytic images the sandbox generated, by item id -> sha256."""
    found = {}
    for path in (sandbox / "payloads").glob(f"*_ortho_analytic_4b_sr_{FILE_SIZE}.tif"):
        item = path.name.split("_ortho_")[0]
        found[item] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _sandbox_order_count(sandbox: Path) -> int:
    return len(list((sandbox / "orders").glob("*.json")))  # the sandbox keeps one file per order


def test_demo_orders_delivers_records_and_a_rerun_orders_nothing(tmp_path: Path) -> None:
    from flowzero.storage.sqlite import SqliteOrderStore

    first = _demo(tmp_path, "demo", "--dir", "first-run")
    assert first.returncode == 0, first.stderr
    root = tmp_path / "first-run"
    assert (root / DEMO_AOI.name).read_bytes() == DEMO_AOI.read_bytes()

    # Files: one verified image per selected scene, in the delivery layout, byte-identical to the sandbox's.
    folder = root / "imagery" / "planetscope analytic" / "four_bands" / AOI_NAME
    images = sorted(folder.glob("*.tiff"))
    generated = _sandbox_images(root / "sandbox")
    assert len(images) >= 3 and len(images) == len(generated)
    for image in images:
        item = image.stem[:4] + image.stem[5:7] + image.stem[8:10] + image.stem[10:]  # 2024_03_01_x -> 20240301_x
        assert hashlib.sha256(image.read_bytes()).hexdigest() == generated[item], image.name
    assert json.loads((folder / "metadata.json").read_text())["state"] == "success"
    assert not [p for p in root.rglob("*") if ".flowzero-tmp" in p.name or p.name.endswith(".part")]

    # The order database: one order, delivered there, with the scene count the files show.
    with SqliteOrderStore(root / "flowzero.db") as store:
        [order] = store.list_orders()
        assert (order.aoi_name, order.status, order.scenes_selected) == (AOI_NAME, "success", len(images))
        assert order.metadata["destination"] == str(root / "imagery")
        assert len(order.metadata["files"]) == len(images)
    assert _sandbox_order_count(root / "sandbox") == 1

    # What it says: what it did and where things are, with the table and the tree.
    out = first.stdout
    assert f"ordered: {order.order_id}" in out and "1 order(s) placed" in out
    assert f"{len(images)} file(s) downloaded, 0 already present" in out
    assert "first-run/flowzero.db" in out and "first-run/imagery/planetscope analytic/four_bands" in out
    assert "Orders (1)" in out and images[0].name in out
    assert "Step 1/3" in first.stderr and "Traceback" not in first.stderr

    # A rerun: nothing ordered (Planet's sandbox got no second order), nothing downloaded again.
    before = {p: p.stat().st_mtime_ns for p in images}
    second = _demo(tmp_path, "demo", "--dir", "first-run")
    assert second.returncode == 0, second.stderr
    assert f"already ordered: {order.order_id} (success)" in second.stdout
    assert f"0 file(s) downloaded, {len(images)} already present" in second.stdout
    assert "nothing new ordered" in second.stdout
    assert _sandbox_order_count(root / "sandbox") == 1
    assert {p: p.stat().st_mtime_ns for p in images} == before
    with SqliteOrderStore(root / "flowzero.db") as store:
        assert [o.order_id for o in store.list_orders()] == [order.order_id]


def test_quiet_demo_prints_only_the_result_and_a_bad_dir_is_one_line(tmp_path: Path) -> None:
    quiet = _demo(tmp_path, "--quiet", "demo", "--dir", "d")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "Demo finished" in quiet.stdout and "Orders (" not in quiet.stdout and "selected scenes" not in quiet.stdout
    (tmp_path / "a-file").write_text("x")
    bad = _demo(tmp_path, "demo", "--dir", "a-file")
    assert bad.returncode == 2 and "is a file" in bad.stderr and "Traceback" not in bad.stderr


def test_the_readme_loads_the_demos_catalog_in_three_lines(tmp_path: Path) -> None:
    """The README's Python block, as written, against what `flowzero demo` leaves in ./flowzero-demo."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    code = "\n".join(line.strip() for line in block.splitlines())
    assert len(code.splitlines()) == 3
    demo = _demo(tmp_path, "--quiet", "demo")
    assert demo.returncode == 0, demo.stderr
    check = code + "\nprint(len(items), dict(data.sizes)['time'], sorted(data.data_vars))"
    loaded = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    count, times, variables = loaded.stdout.split(" ", 2)
    assert int(count) >= 3 and int(times) >= 1 and "image" in variables
