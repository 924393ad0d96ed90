"""The first run: the whole flow on a bundled AOI, against the Planet sandbox started in this process.

No API key and no network: the sandbox (:class:`flowzero.sandbox.Sandbox`) listens on 127.0.0.1 and keeps its
orders and files in the demo folder, next to the demo's own order database and the delivered imagery. The steps
run the same code as the commands they stand for (`submit`, then `check-order-status --wait --output`), so a
rerun shows what a rerun of those commands does: nothing is ordered twice, verified files are not fetched again.
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from flowzero.config import Config
from flowzero.delivery.deliver import DeliverySettings, check_orders
from flowzero.delivery.destination import parse_output
from flowzero.errors import UsageError
from flowzero.sandbox import Sandbox
from flowzero.storage.opening import open_store

if TYPE_CHECKING:
    from flowzero.delivery.outcomes import OrderOutcome
    from flowzero.models import Order
    from flowzero.planet.client import PlanetClient
    from flowzero.storage import OrderStore

DEMO_AOI = Path(__file__).parent / "data" / "SantaClaraRiver.geojson"
AOI_NAME = "SantaClaraRiver"
START_DATE, END_DATE, CADENCE = "2024-03-01", "2024-03-31", "weekly"
FILE_SIZE = 128 * 1024  # bytes of each sandbox image: small enough for a first run to be quick
API_KEY = "flowzero-demo"  # the sandbox accepts any key but "invalid-key"
DEMO_ASSETS = ("image",)  # the images alone keep the first run's folder small; deliveries also keep UDM2 by default

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoPaths:
    """Everything the demo writes lives under ``root``."""

    root: Path

    @property
    def aoi(self) -> Path:
        return self.root / DEMO_AOI.name

    @property
    def database(self) -> Path:
        return self.root / "flowzero.db"

    @property
    def sandbox(self) -> Path:
        return self.root / "sandbox"

    @property
    def imagery(self) -> Path:
        return self.root / "imagery"


@dataclass
class DemoRun:
    """What one demo run did, for the summary."""

    paths: DemoPaths
    new_orders: list[str] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    outcomes: list[OrderOutcome] = field(default_factory=list)
    files: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def catalog(self) -> str | None:
        """The STAC catalog the delivery keeps beside the imagery."""
        return next((o.catalog for o in self.outcomes if o.catalog), None)

    @property
    def failed(self) -> bool:
        return any(o.failing for o in self.outcomes) or not self.outcomes


def prepare(root: Path | str) -> DemoPaths:
    """The demo folder, created, with a copy of the bundled AOI (a copy you edited is kept)."""
    paths = DemoPaths(Path(root).expanduser().resolve())
    if paths.root.exists() and not paths.root.is_dir():
        raise UsageError(f"--dir {paths.root} is a file, not a folder", hint="choose another --dir")
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        if not paths.aoi.is_file():
            shutil.copyfile(DEMO_AOI, paths.aoi)
    except OSError as exc:
        raise UsageError(f"cannot write the demo folder {paths.root}: {exc.strerror or exc}",
                         hint="choose a writable --dir") from None
    return paths


def demo_config(paths: DemoPaths, sandbox: Sandbox) -> Config:
    """Built-in defaults pointed at the sandbox and the demo's database; the user's config is not read."""
    config = Config()
    config.planet.api_url = sandbox.api_url
    config.planet.orders_url = sandbox.orders_url
    config.planet.basemaps_url = sandbox.basemaps_url
    config.planet.max_retries = 2
    config.database_path = str(paths.database)
    config.api_key = API_KEY
    config.source = f"flowzero demo: built-in defaults, the Planet sandbox at {sandbox.url}"
    return config


def delivered_files(root: Path) -> list[tuple[str, int]]:
    """Every file under ``root`` as (relative path with '/', size), sorted; temp files included if any."""
    if not root.is_dir():
        return []
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file())


@dataclass
class _Services:
    """What the ordering workflow needs (flowzero.ordering.workflow.Services): the demo's config, store, client."""

    config: Config
    _planet: PlanetClient
    _store: OrderStore | None = None

    def store(self) -> OrderStore:
        if self._store is None:
            self._store = open_store(self.config)
        return self._store

    def planet(self) -> PlanetClient:
        return self._planet


def run_demo(paths: DemoPaths, *, quiet: bool, submit: Callable[..., None], show_progress: bool = False,
             say: Say) -> DemoRun:
    """Sandbox up, search and order (``submit`` shows it as the command does), wait and deliver
    (check-order-status), sandbox down."""
    from flowzero.planet.client import PlanetClient

    started = time.monotonic()
    run = DemoRun(paths)
    with Sandbox(paths.sandbox, file_size=FILE_SIZE, polls_per_state=1) as sandbox:
        config = demo_config(paths, sandbox)
        # Poll the sandbox quickly: its orders take a few GETs, not minutes as at Planet.
        planet = PlanetClient.from_config(config, poll_interval=0.2, poll_max=1.0)
        services = _Services(config, planet)
        store = None
        try:
            store = services.store()
            before = {o.order_id for o in store.list_orders()}
            say(f"Step 1/3  search and order, as `flowzero submit --geojson {shown_path(paths.aoi)} "
                f"--start-date {START_DATE} --end-date {END_DATE} --cadence {CADENCE}`")
            submit(services, quiet, aoi_path=str(paths.aoi), aoi_name=None, start_date=START_DATE,
                   end_date=END_DATE, cadence=CADENCE, num_bands="four_bands", bundle=None, dry_run=False, force=False,
                   as_json=False, delivery=None)
            live = [o for o in store.list_orders(aoi_name=AOI_NAME) if o.status not in ("failed", "cancelled")]
            run.new_orders = [o.order_id for o in live if o.order_id not in before]
            say(f"Step 2/3  wait and deliver, as `flowzero check-order-status ORDER_ID --wait "
                f"--output {shown_path(paths.imagery)} --assets image`")
            settings = DeliverySettings(destination=parse_output(str(paths.imagery), config), downloader="threads",
                                        wait=True, wait_timeout=120, show_progress=show_progress,
                                        assets=DEMO_ASSETS)
            run.outcomes = check_orders([(o.order_id, o) for o in live], planet, store, config, settings, say)
            run.orders = store.list_orders()
        finally:
            planet.close()
            if store is not None:
                store.close()
    run.files = delivered_files(paths.imagery)
    run.seconds = time.monotonic() - started
    return run


def shown_path(path: Path) -> str:
    """``path`` as typed in a shell: relative to the working directory when it is below it."""
    try:
        return shlex.quote(str(path.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(path))
