"""The memory domain's cost on a real server: commands per call do not grow with the data.

Each call must run at most ``page size + 5`` commands, counting those inside scripts, and
the same number whether 10 or a few thousand records are stored; ``include`` adds what its
neighbours cost, also independent of the size of the threads.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kvstore import DateRange, Include, Message, Storage, Thread
from tests.cost.conftest import CountCommands

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def _fill_threads(store: Storage, resource_id: str, upto: int) -> None:
    have = (await store.memory.list_threads(resource_id, per_page=1)).total
    for i in range(have, upto):
        await store.memory.save_thread(Thread(id=f"{resource_id}-{i}", resource_id=resource_id))


async def _fill_messages(store: Storage, thread_id: str, upto: int) -> None:
    have = (await store.memory.list_messages(thread_id, per_page=1)).total
    batch = [
        Message(id=f"{thread_id}-m{i}", thread_id=thread_id, role="user", content=f"hello {i}")
        for i in range(have, upto)
    ]
    for start in range(0, len(batch), 500):
        await store.memory.save_messages(batch[start : start + 500])


async def test_list_threads_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    costs = []
    for stored in (25, 2_000):
        await _fill_threads(redis_store, "alice", stored)
        costs.append(await count_commands(redis_store.memory.list_threads("alice", per_page=20)))
    assert costs[0] == costs[1] <= 20 + 5


async def test_last_messages_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    await redis_store.memory.save_thread(Thread(id="t1", resource_id="alice"))
    costs = []
    for stored in (25, 3_000):
        await _fill_messages(redis_store, "t1", stored)
        costs.append(await count_commands(redis_store.memory.list_messages("t1", last=20)))
        costs.append(
            await count_commands(redis_store.memory.list_messages("t1", page=3, per_page=5))
        )
    assert costs[0] == costs[2] <= 20 + 5
    assert costs[1] == costs[3] <= 5 + 5


async def test_single_record_calls_cost_a_constant(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    await redis_store.memory.save_thread(Thread(id="t1", resource_id="alice"))
    await _fill_messages(redis_store, "t1", 1_000)
    assert await count_commands(redis_store.memory.get_thread("t1")) == 1
    await redis_store.memory.update_thread("t1", title="loads the script")
    assert await count_commands(redis_store.memory.update_thread("t1", title="x")) <= 5
    two = [Message(id=f"new{i}", thread_id="t1", role="user", content="hi") for i in range(2)]
    assert await count_commands(redis_store.memory.save_messages(two)) <= 2 * 5 + 5
    assert await count_commands(redis_store.memory.get_messages(["new0", "new1"])) == 2


async def test_include_and_date_range_cost_what_they_return(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    """``per_page + 3`` (one more with a date range), plus ``4 + before + after`` at most
    per include, whatever the size of the threads."""
    memory = redis_store.memory
    for tid in ("t1", "t2"):
        await memory.save_thread(Thread(id=tid, resource_id="alice"))
    costs = []
    for stored in (25, 2_000):
        await _fill_messages(redis_store, "t1", stored)
        await _fill_messages(redis_store, "t2", stored)
        # Neighbours in another thread: none of them is on the page already.
        include = [Include(message_id="t2-m10", before=2, after=3)]
        costs.append(await count_commands(memory.list_messages("t1", last=20, include=include)))
        window = DateRange(start=datetime(2000, 1, 1, tzinfo=UTC))
        costs.append(await count_commands(memory.list_messages("t1", last=20, date_range=window)))
    assert costs[0] == costs[2] == 20 + 3 + (4 + 2 + 3)
    assert costs[1] == costs[3] == 20 + 3 + 1


async def test_list_resources_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    await redis_store.memory.list_resources()  # loads the script
    costs = []
    have = 0
    for stored in (25, 2_000):
        for i in range(have, stored):
            await redis_store.memory.update_resource(f"user-{i}", working_memory="notes")
        have = stored
        costs.append(await count_commands(redis_store.memory.list_resources(per_page=20)))
    assert costs[0] == costs[1] <= 20 + 5
