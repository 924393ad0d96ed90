"""Batch ordering: every gage of a shapefile, its range split into chunks, one order per chunk with scenes.

A pipeline: searches run concurrently (the Planet client paces them at the Data API's rate), each chunk's
orders are placed as soon as its search is done (paced at the order-create rate), and chunks are reported in
the shapefile's order. A chunk that fails (Planet refuses one order, say) is reported and the batch goes on; a
rejected API key stops it. Which orders already exist is decided by
:func:`flowzero.ordering.submit.submit_orders`, so rerunning a batch orders only what is missing.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Callable, Optional

from flowzero.chunking import split_date_range
from flowzero.errors import AuthError, FlowzeroError, StorageError
from flowzero.ordering.plan import apply_delivery
from flowzero.ordering.submit import (
    ELSEWHERE,
    EXISTS,
    ORDERED,
    RECOVERED,
    WOULD_ORDER,
    Owner,
    SubmitResult,
    reconcile_intents,
    submit_orders,
)

if TYPE_CHECKING:
    from flowzero.aoi import Gage
    from flowzero.ordering.providers import SceneProvider, SceneSearch

SEARCH_THREADS = 8  # searches in flight: the Data API allows ~10/s and answers in about half a second
ORDER_THREADS = 4  # order POSTs in flight: 3/s allowed, ~0.4 s each, so more than one must be open


@dataclass
class Chunk:
    """One gage and one piece of its date range."""

    gage: Gage
    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.gage.gage_id} {self.start.isoformat()}..{self.end.isoformat()}"


@dataclass
class ChunkOutcome:
    """What a chunk gave: its search, the orders placed or found, or the error that stopped it."""

    chunk: Chunk
    search: Optional[SceneSearch] = None
    results: list[SubmitResult] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def no_scenes(self) -> bool:
        return self.error is None and self.search is not None and not self.search.selected


@dataclass
class BatchReport:
    """The whole batch, for the per-order lines and the summary."""

    batch_id: str
    outcomes: list[ChunkOutcome] = field(default_factory=list)

    def _results(self, *outcomes: str) -> list[SubmitResult]:
        return [r for o in self.outcomes for r in o.results if r.outcome in outcomes]

    @property
    def placed(self) -> list[SubmitResult]:
        return self._results(ORDERED)

    @property
    def existing(self) -> list[SubmitResult]:
        return self._results(EXISTS, RECOVERED)

    @property
    def would_order(self) -> list[SubmitResult]:
        return self._results(WOULD_ORDER)

    @property
    def earlier_batches(self) -> dict[str, int]:
        """The batches that hold the orders found already ordered, and how many of them each holds.

        A rerun orders nothing new, so its own batch id holds none of them: these are the ids to check.
        """
        found: dict[str, int] = {}
        for result in self.existing:
            batch = result.order.batch_id if result.order is not None else None
            if batch and batch != self.batch_id:
                found[batch] = found.get(batch, 0) + 1
        return found

    @property
    def elsewhere(self) -> list[SubmitResult]:
        """Orders another live run was placing: nothing was placed for them here."""
        return self._results(ELSEWHERE)

    @property
    def no_scenes(self) -> list[ChunkOutcome]:
        return [o for o in self.outcomes if o.no_scenes]

    @property
    def failed(self) -> list[ChunkOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def found(self) -> int:
        return sum(o.search.found for o in self.outcomes if o.search is not None)

    @property
    def selected(self) -> int:
        return sum(len(o.search.selected) for o in self.outcomes if o.search is not None)

    @property
    def hectares(self) -> float:
        """Quota of the orders placed now (or that a dry run would place)."""
        return sum(r.planned.order.quota_hectares or 0.0 for r in self.placed + self.would_order)


def plan_chunks(gages: list[Gage], max_months: int) -> list[Chunk]:
    """Every gage's range in pieces of at most ``max_months``, gage by gage in file order."""
    return [Chunk(gage, start, end) for gage in gages
            for start, end in split_date_range(gage.start, gage.end, max_months)]


def _settled(future: Future[None]) -> None:
    """Wait for ``future``; only a rejected key is raised here (other errors are the chunk's own)."""
    try:
        future.result()
    except (AuthError, StorageError):
        raise
    except Exception:
        pass


def run_batch(
    chunks: list[Chunk],
    provider: SceneProvider,
    store: Any,
    client: Any,
    *,
    batch_id: str,
    cadence: str = "daily",
    num_bands: str = "four_bands",
    bundle: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    suffix: str | None = None,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
    delivery: Any = None,
    owner: Owner | None = None,
) -> BatchReport:
    """Search, plan and submit every chunk (a pipeline, see the module docstring); ``on_chunk`` hears about
    each one in the shapefile's order, as soon as it and the chunks before it are done.

    ``delivery`` (a :class:`flowzero.delivery.cloud.block.CloudDelivery`) has Planet write into the user's bucket.
    """
    owner = owner or Owner()
    if not dry_run:
        reconcile_intents(store, client, owner)
    report = BatchReport(batch_id, [ChunkOutcome(chunk) for chunk in chunks])

    def search(outcome: ChunkOutcome) -> None:
        aoi = outcome.chunk.gage.as_aoi(outcome.chunk.gage.gage_id)
        outcome.search = provider.search(aoi, outcome.chunk.start, outcome.chunk.end, cadence=cadence,
                                         num_bands=num_bands, bundle=bundle)

    def order(outcome: ChunkOutcome, searched: Future[None]) -> None:
        try:
            searched.result()
            if outcome.search is not None and outcome.search.selected:
                planned = provider.plan(outcome.search, batch_id=batch_id, suffix=suffix)
                apply_delivery(planned, delivery)
                submit_orders(planned, store, client, force=force, dry_run=dry_run, reconcile=False,
                              on_result=outcome.results.append, owner=owner)
        except (AuthError, StorageError):  # a rejected key or a broken order store stops the whole batch
            raise
        except FlowzeroError as exc:
            outcome.error = exc.message

    searches = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="flowzero-search")
    orders = ThreadPoolExecutor(ORDER_THREADS, thread_name_prefix="flowzero-order")
    try:
        done: list[Future[None]] = []
        for index, outcome in enumerate(report.outcomes):
            searched = searches.submit(search, outcome)
            if index == 0:  # the first search alone: a rejected key costs one request, not a burst of them
                _settled(searched)
            done.append(orders.submit(order, outcome, searched))
        for outcome, future in zip(report.outcomes, done):
            future.result()  # a rejected key or a broken order store stops the batch here
            if not dry_run and outcome.search is not None:  # in the shapefile's order, as reported
                store.record_search(outcome.search.record(batch_id))
            if on_chunk is not None:
                on_chunk(outcome)
    except BaseException:
        cancel = getattr(client, "cancel", None)
        if cancel is not None:  # wake requests sleeping in a backoff or a pacer
            cancel()
        searches.shutdown(wait=False, cancel_futures=True)
        orders.shutdown(wait=False, cancel_futures=True)
        raise
    searches.shutdown()
    orders.shutdown()
    return report
