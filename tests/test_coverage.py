"""`flowzero coverage`: the calendar's states from orders and recorded searches, its JSON, and its HTML page
rendered in headless chromium (every cell there, each coloured as its legend entry says)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowzero.cli import cli
from flowzero.coverage import STATES, build_calendar
from flowzero.models import Order, SearchRecord
from tests.fixtures.browser import Browser, chromium


def _orders() -> list[Order]:
    delivered = Order("o-1", "GageA", status="success", start_date="2024-03-01", end_date="2024-03-31",
                      metadata={"item_ids": ["20240305_180000_00_2262"], "delivered_at": "2024-04-01T00:00:00Z",
                                "scenes": {"20240305_180000_00_2262": {"coverage_pct": 99.4}}})
    pending = Order("o-2", "GageA", status="running", start_date="2024-03-01", end_date="2024-03-31",
                    metadata={"item_ids": ["20240312_180000_00_2262"]})
    failed = Order("o-3", "GageB", status="failed", start_date="2024-03-01", end_date="2024-03-31",
                   metadata={"item_ids": ["20240305_170000_00_2262"]})
    return [delivered, pending, failed]


def _searches() -> list[SearchRecord]:
    days = {"2024-03-05": {"found": 2, "eligible": 1, "best_coverage_pct": 99.4},
            "2024-03-06": {"found": 1, "eligible": 1, "best_coverage_pct": 98.5},
            "2024-03-12": {"found": 1, "eligible": 1, "best_coverage_pct": 100.0},
            "2024-03-19": {"found": 2, "eligible": 0, "best_coverage_pct": 71.5}}
    return [SearchRecord("GageA", "2024-03-03", "2024-03-23", "weekly", 5, 2, 2, min_coverage_pct=98.0, days=days)]


def test_each_cell_says_delivered_ordered_failed_no_scenes_or_never_asked() -> None:
    calendar = build_calendar(_orders(), _searches(), cadence="weekly", start=date(2024, 3, 3),
                              end=date(2024, 3, 30))
    assert calendar.periods == ["2024-03-03", "2024-03-10", "2024-03-17", "2024-03-24"]
    states = {g: [c.state for c in row] for g, row in calendar.cells.items()}
    assert states == {"GageA": ["delivered", "ordered", "no-scenes", "not-searched"],
                      "GageB": ["failed", "not-searched", "not-searched", "not-searched"]}
    first, _, empty, _ = calendar.cells["GageA"]
    assert first.coverage_pct == 99.4 and "o-1" in first.detail
    assert "best covered 71.5%" in empty.detail and "98%" in empty.detail
    daily = build_calendar(_orders(), _searches(), cadence="daily", start=date(2024, 3, 12),
                           end=date(2024, 3, 12))
    assert [c.state for c in daily.cells["GageA"]] == ["ordered"]
    monthly = build_calendar(_orders(), [], cadence="monthly")
    assert [c.state for c in monthly.cells["GageA"]] == ["delivered"]  # delivered wins over ordered


def test_a_day_with_good_scenes_but_none_ordered_is_not_selected() -> None:
    calendar = build_calendar(_orders(), _searches(), cadence="daily", start=date(2024, 3, 4), end=date(2024, 3, 6))
    no_scene, delivered, skipped = calendar.cells["GageA"]
    assert (no_scene.state, delivered.state, skipped.state) == ("no-scenes", "delivered", "not-selected")
    assert no_scene.detail == "Planet had no scene" and skipped.coverage_pct == 98.5


def _store_with_history(db: Path, url: str | None = None) -> None:
    from flowzero.config import Config, StorageConfig
    from flowzero.storage.opening import open_store

    config = Config(database_path=str(db))
    if url:
        config.storage = StorageConfig(backend="postgres", url=url)
    store = open_store(config)
    try:
        for order in _orders():
            store.save_order(order)
        for search in _searches():
            store.record_search(search)
    finally:
        store.close()


def test_the_calendar_reads_a_postgresql_store_too(postgres_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _store_with_history(tmp_path / "unused.db", postgres_url)
    monkeypatch.setenv("FLOWZERO_STORAGE_BACKEND", "postgres")
    monkeypatch.setenv("FLOWZERO_DATABASE_URL", postgres_url)
    result = CliRunner().invoke(cli, ["coverage", "--cadence", "weekly", "--start-date", "2024-03-03",
                                      "--end-date", "2024-03-30", "--json"])
    assert result.exit_code == 0, result.output
    rows = {g["gage"]: [c["state"] for c in g["cells"]] for g in json.loads(result.stdout)["gages"]}
    assert rows["GageA"] == ["delivered", "ordered", "no-scenes", "not-searched"]


def test_cli_json_and_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "flowzero.db"
    _store_with_history(db)
    runner = CliRunner()
    result = runner.invoke(cli, ["--database-path", str(db), "coverage", "--cadence", "weekly", "--start-date",
                                 "2024-03-03", "--end-date", "2024-03-30", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["states"] == list(STATES) and data["counts"]["delivered"] == 1
    assert [g["gage"] for g in data["gages"]] == ["GageA", "GageB"]
    table = runner.invoke(cli, ["--database-path", str(db), "coverage", "--aoi", "GageA"])
    assert table.exit_code == 0 and "GageA" in table.stdout and "never searched" in table.stdout
    for args, words in ((["--aoi", "Nope"], "nothing recorded for AOI 'Nope'"),
                        (["--start-date", "2024-13-01"], "invalid --start-date"),
                        (["--batch-id", "b-0"], "no orders or searches recorded for batch")):
        bad = runner.invoke(cli, ["--database-path", str(db), "coverage", *args])
        assert bad.exit_code == 2 and words in bad.output and "Traceback" not in bad.output, bad.output


def test_png_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    db = tmp_path / "flowzero.db"
    _store_with_history(db)
    png = tmp_path / "calendar.png"
    result = CliRunner().invoke(cli, ["--database-path", str(db), "coverage", "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs Debian's 'chromium')")
def test_html_page_renders_every_cell_with_its_legend_colour(tmp_path: Path) -> None:
    import base64
    import os

    db = tmp_path / "flowzero.db"
    _store_with_history(db)
    page = tmp_path / "calendar.html"
    result = CliRunner().invoke(cli, ["--database-path", str(db), "coverage", "--cadence", "weekly",
                                      "--start-date", "2024-03-03", "--end-date", "2024-03-30", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "http" not in page.read_text().replace("https://", "").split("<body>")[0]  # nothing fetched
    browser = Browser(str(chromium()), tmp_path / "profile", 900, 360)
    try:
        browser.send("Page.enable")
        browser.send("Page.navigate", url=page.as_uri())
        browser.wait_for("document.readyState === 'complete' && !!document.getElementById('legend')")
        cells = browser.evaluate("Array.from(document.querySelectorAll('td.cell')).map(c => "
                                 "[c.dataset.gage, c.dataset.period, c.dataset.state,"
                                 " getComputedStyle(c).backgroundColor, c.getBoundingClientRect().width > 0])")
        legend = dict(browser.evaluate("Array.from(document.querySelectorAll('.swatch')).map(s => "
                                       "[s.dataset.state, getComputedStyle(s).backgroundColor])"))
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.close()
    assert list(legend) == list(STATES)
    assert len(cells) == 2 * 4 and {(g, p) for g, p, *_ in cells} == {
        (g, p) for g in ("GageA", "GageB") for p in ("2024-03-03", "2024-03-10", "2024-03-17", "2024-03-24")}
    for _, _, state, colour, visible in cells:
        assert visible and colour == legend[state]
    assert len(set(legend.values())) == len(STATES)
    if os.environ.get("FLOWZERO_SCREENSHOT_DIR"):
        Path(os.environ["FLOWZERO_SCREENSHOT_DIR"], "coverage.png").write_bytes(base64.b64decode(shot))


def test_batch_submit_records_every_search_so_empty_chunks_are_no_scenes(tmp_path: Path) -> None:
    from flowzero.aoi import read_gages
    from flowzero.ordering.batch import plan_chunks, run_batch
    from flowzero.storage.sqlite import SqliteOrderStore
    from tests.test_ordering_batch import FakeScenes, write_gage_shapefile
    from tests.test_ordering_submit import FakePlanet

    shp = write_gage_shapefile(tmp_path / "shp", [("G-1", "2024-03-01", "2024-03-31", "salinas"),
                                                  ("G-2", "2024-03-01", "2024-03-31", "scott")])
    chunks = plan_chunks(read_gages(shp, "gage_id", "start_date", "end_date"), 6)
    with SqliteOrderStore(tmp_path / "orders.db") as store:
        run_batch(chunks, FakeScenes(empty={"G-2"}), store, FakePlanet(), batch_id="b-1", cadence="weekly")
        assert [(s.aoi_name, s.batch_id, s.cadence) for s in store.list_searches()] == [
            ("G-1", "b-1", "weekly"), ("G-2", "b-1", "weekly")]
        run_batch(chunks, FakeScenes(), store, None, batch_id="b-2", cadence="weekly", dry_run=True)
        assert len(store.list_searches()) == 2  # a dry run records nothing
        calendar = build_calendar(store.get_batch_orders("b-1"), store.list_searches(batch_id="b-1"))
    assert calendar.cadence == "weekly"
    assert [c.state for c in calendar.cells["G-2"]] == ["no-scenes"] * len(calendar.periods)
    assert calendar.cells["G-1"][0].state == "ordered"
