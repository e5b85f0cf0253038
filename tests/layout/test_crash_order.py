"""A write across buckets that fails part-way leaves a store every read agrees with.

Each bucket's part of a write is one script, so a bucket holds a record together with its
index entries or neither. A ``PartialDriver`` applies only the first commands of a batch and
then fails the way a crash or a lost connection would; after every such cut, each read
(records by id, listings, counts, export walks) must tell the same story, and the write,
retried, must complete it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kvstore import Message, MessagePatch, Score, Span, Storage, Thread, TraceRetention
from kvstore.drivers import Driver, MemoryDriver
from kvstore.drivers.base import Arg, Command, Reply, Script
from kvstore.errors import ConnectionFailedError, ValidationError
from tests.support.counting import CountingDriver
from tests.support.walks import walk_all

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)
THREADS = [f"t{i}" for i in range(6)]
TRACES = [f"x{i}" for i in range(6)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class PartialDriver(CountingDriver):
    """Records the size of every batch; once armed with ``(batch, cut)``, applies only the
    first ``cut`` commands of the ``batch``-th batch from then on, and fails as a dropped
    connection does."""

    def __init__(self, inner: Driver) -> None:
        super().__init__(inner)
        self.armed: tuple[int, int] | None = None
        self.sizes: list[int] = []

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.sizes.append(len(commands))
        if self.armed is not None:
            batch, cut = self.armed
            if batch == 0:
                self.armed = None
                await self.inner.execute(commands[:cut])
                raise ConnectionFailedError("injected: the connection dropped mid-batch")
            self.armed = (batch - 1, cut)
        return await super().execute(commands, atomic=atomic, idempotent=idempotent)

    async def execute_steps(
        self, steps: Sequence[Sequence[Command]], *, idempotent: bool = False
    ) -> list[list[Reply]]:
        flat = await self.execute([c for step in steps for c in step], idempotent=idempotent)
        out, start = [], 0
        for step in steps:
            out.append(flat[start : start + len(step)])
            start += len(step)
        return out


def message(thread: str, i: int, text: str = "hello") -> Message:
    return Message(
        id=f"{thread}-m{i}",
        thread_id=thread,
        role="user",
        content=text,
        created_at=T0 + timedelta(seconds=i),
    )


async def seed(store: Storage) -> None:
    for i, t in enumerate(THREADS):
        await store.memory.save_thread(Thread(id=t, resource_id=f"r{i % 2}"))
        await store.memory.save_messages([message(t, 0), message(t, 1)])
    for t in TRACES:
        await store.traces.save_spans(
            [Span(trace_id=t, span_id="root", name="op", start_time=T0 + timedelta(minutes=1))]
        )
    for i in range(6):
        await store.evals.save_score(Score(id=f"s{i}", scorer_id="q", score=i, run_id="run"))


async def check_consistent(store: Storage) -> None:
    """Every read tells the same story."""
    mem = store.memory
    walked, totals = await walk_all(mem.export_threads)
    assert totals == {len(walked)}
    threads = {t.id: t for t in walked}
    for t in [*THREADS, "new-thread"]:
        got = await mem.get_thread(t)
        assert (got is not None) == (t in threads)
    listed: dict[str, Thread] = {}
    for resource in ("r0", "r1"):
        page = await mem.list_threads(resource, per_page=100)
        assert page.total == len(page.items)
        listed |= {t.id: t for t in page.items}
        updated = await mem.list_threads(resource, per_page=100, order_by="updated_at")
        assert {t.id for t in updated.items} == {t.id for t in page.items}
    assert listed.keys() == {t for t, v in threads.items() if v.resource_id in ("r0", "r1")}
    for t in threads:
        page = await mem.list_messages(t, per_page=1000)
        assert page.total == len(page.items)
        ids = [m.id for m in page.items]
        assert len(set(ids)) == len(ids)
        found = await mem.get_messages(ids)
        assert [m.id for m in found] == ids
        assert all(m.thread_id == t for m in found)
    summaries = await store.traces.list_traces(per_page=100)
    assert summaries.total == len(summaries.items)
    for summary in summaries.items:
        assert len(await store.traces.get_trace(summary.trace_id)) == summary.span_count
    listed_traces = {s.trace_id for s in summaries.items}
    for t in TRACES:
        assert (len(await store.traces.get_trace(t)) > 0) == (t in listed_traces)
    scores = await store.evals.list_scores(run_id="run", per_page=100)
    assert scores.total == len(scores.items)
    for i in range(6):
        got_score = await store.evals.get_score(f"s{i}")
        assert (got_score is not None) == (f"s{i}" in {s.id for s in scores.items})


Operation = Callable[[Storage], Awaitable[Any]]


async def clone_into_another_bucket(store: Storage) -> None:
    """A clone, or (retried after it was written) the refusal that finds it done."""
    keys = await store.keys()
    assert keys.bucket_of("t0") != keys.bucket_of("new-thread")
    try:
        await store.memory.clone_thread("t0", "new-thread")
    except ValidationError:
        clone = await store.memory.get_thread("new-thread")
        assert clone is not None
        assert clone.metadata["clone"]["source_thread_id"] == "t0"


OPERATIONS: dict[str, Operation] = {
    "save_messages to threads in several buckets": lambda s: s.memory.save_messages(
        [message(t, 5, "later") for t in THREADS]
    ),
    "restore_threads in several buckets": lambda s: s.memory.restore_threads(
        [Thread(id=t, resource_id="r1", title="moved") for t in THREADS]
    ),
    "update_messages in several buckets": lambda s: s.memory.update_messages(
        [MessagePatch(id=f"{t}-m0", content="patched", metadata={"k": 1}) for t in THREADS]
    ),
    "delete_messages in several buckets": lambda s: s.memory.delete_messages(
        [f"{t}-m1" for t in THREADS]
    ),
    "save_spans of traces in several buckets": lambda s: s.traces.save_spans(
        [
            Span(trace_id=t, span_id="child", parent_span_id="root", name="c", start_time=T0)
            for t in TRACES
        ]
    ),
    "delete_traces in several buckets": lambda s: s.traces.delete_traces(TRACES),
    "clone_thread into another bucket (with the copies' homes)": clone_into_another_bucket,
    "retention across buckets": lambda s: Storage(
        s.driver, namespace=s.namespace, trace_retention=TraceRetention(max_age=timedelta(days=1))
    ).traces.apply_retention(),
    "restore_scores in several buckets": lambda s: s.evals.restore_scores(
        [Score(id=f"s{i}", scorer_id="q", score=10 + i, run_id="run") for i in range(6)]
    ),
}


@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_every_cut_of_a_write_across_buckets_leaves_a_consistent_store(name: str) -> None:
    operation = OPERATIONS[name]
    # How many commands the write's batches hold, measured on a store of its own.
    probe = PartialDriver(MemoryDriver())
    store = Storage(probe, namespace="crash", buckets=4)
    await seed(store)
    start = len(probe.sizes)
    await operation(store)
    sizes = probe.sizes[start:]
    assert max(sizes) > 1, "the write must span several buckets for this test to mean anything"
    cuts = [(batch, cut) for batch, size in enumerate(sizes) for cut in range(size)]
    for batch, cut in cuts:
        driver = PartialDriver(MemoryDriver())
        store = Storage(driver, namespace="crash", buckets=4)
        await seed(store)
        driver.armed = (batch, cut)
        with contextlib.suppress(ConnectionFailedError):
            await operation(store)
        await check_consistent(store)
        # The write, retried, completes.
        await operation(store)
        await check_consistent(store)


class CutRuns(CountingDriver):
    """Fails the ``cut``-th script call from now on (0: the next) before it reaches the
    server, as a dropped connection does."""

    cut: int | None = None

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        if self.cut is not None:
            if self.cut == 0:
                self.cut = None
                raise ConnectionFailedError("injected: the connection dropped")
            self.cut -= 1
        return await super().run(script, keys, args, idempotent=idempotent)


async def test_a_move_cut_between_slices_is_finished_by_moving_again() -> None:
    driver = CutRuns(MemoryDriver())
    store = Storage(driver, namespace="crash", buckets=4)
    await store.memory.save_thread(Thread(id="long", resource_id="r0"))
    await store.memory.save_messages([message("long", i) for i in range(600)])
    driver.cut = 1  # the first slice runs; the second never reaches the server
    with pytest.raises(ConnectionFailedError):
        await store.memory.move_thread("long", "r1")
    moved = await store.memory.get_thread("long")
    assert moved is not None
    assert moved.resource_id == "r1"
    assert [t.id for t in (await store.memory.list_threads("r1")).items] == ["long"]
    listed = await store.memory.list_messages("long", per_page=1000)
    assert [m.resource_id for m in listed.items] == ["r1"] * 250 + [None] * 350
    await store.memory.move_thread("long", "r1")
    messages = (await store.memory.list_messages("long", per_page=1000)).items
    assert {m.resource_id for m in messages} == {"r1"}
    assert [m.id for m in messages] == [f"long-m{i}" for i in range(600)]
