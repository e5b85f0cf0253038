"""No script's work grows with the data stored: large deletes go in slices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from kvstore import Message, Span, Storage, Thread, TraceRetention
from kvstore.domains.traces import RETENTION_SLICE
from kvstore.drivers import MemoryDriver
from kvstore.drivers.base import Arg, Command, Reply, Script
from tests.support.counting import CountingDriver

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Watching(CountingDriver):
    """Counts round trips and, after each, how many members ``watched`` holds."""

    def __init__(self, inner: MemoryDriver) -> None:
        super().__init__(inner)
        self.watched: str | None = None
        self.sizes: list[int] = []

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        replies = await super().execute(commands, atomic=atomic, idempotent=idempotent)
        await self._watch()
        return replies

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        reply = await super().run(script, keys, args, idempotent=idempotent)
        await self._watch()
        return reply

    async def _watch(self) -> None:
        if self.watched is not None:
            (size,) = await self.inner.execute([("ZCARD", self.watched)])
            self.sizes.append(int(size))  # type: ignore[arg-type]


async def test_a_long_thread_is_deleted_in_slices() -> None:
    driver = Watching(MemoryDriver())
    store = Storage(driver, namespace="big")
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    for start in range(0, 2500, 500):
        await store.memory.save_messages(
            [
                Message(id=f"m{i}", thread_id="t", role="user", content="x", created_at=T0)
                for i in range(start, start + 500)
            ]
        )
    driver.watched = (await store.keys()).thread("t").messages
    before = driver.round_trips
    assert await store.memory.delete_thread("t") is True
    assert driver.round_trips - before == 10
    # The thread went with the first call; its messages went 250 at a time.
    assert driver.sizes == list(range(2250, -1, -250))
    assert await store.memory.get_thread("t") is None
    assert await store.memory.get_messages(["m0", "m2499"]) == []


async def test_retention_drops_traces_a_slice_at_a_time() -> None:
    driver = CountingDriver(MemoryDriver())
    store = Storage(driver, namespace="big")
    old = T0 - timedelta(days=30)
    await store.traces.save_spans(
        [
            Span(trace_id=f"x{i}", span_id="s", name="op", start_time=old)
            for i in range(RETENTION_SLICE * 5 // 2)
        ]
    )
    aged = Storage(
        driver, namespace="big", trace_retention=TraceRetention(max_age=timedelta(days=1))
    )
    await aged.keys()
    before = driver.round_trips
    assert await aged.traces.apply_retention() == RETENTION_SLICE * 5 // 2
    # Look and drop a slice, look and drop a slice, look and drop half a slice.
    assert driver.round_trips - before == 6
    assert (await aged.traces.list_traces()).total == 0


async def test_a_long_thread_moves_its_messages_in_slices() -> None:
    driver = CountingDriver(MemoryDriver())
    store = Storage(driver, namespace="big")
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    for start in range(0, 1000, 500):
        await store.memory.save_messages(
            [
                Message(id=f"m{i}", thread_id="t", role="user", content="x", created_at=T0)
                for i in range(start, start + 500)
            ]
        )
    before = driver.round_trips
    moved = await store.memory.move_thread("t", "elsewhere")
    assert moved.resource_id == "elsewhere"
    # The thread moved with the first call; its messages 250 at a time.
    assert driver.round_trips - before == 4
    messages = (await store.memory.list_messages("t", per_page=1000)).items
    assert len(messages) == 1000
    assert {m.resource_id for m in messages} == {"elsewhere"}
