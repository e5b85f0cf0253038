"""The memory domain's cost on a real server: commands per call do not grow with the data.

Counts include the commands scripts run and the ``EVALSHA`` itself, on warm calls (see
``conftest``). Every call is measured with a few and with a few thousand records stored,
and must cost the same; the expected figures are layout 2's (one bucket, as on a single
server): a listing is one script that reads its page with one ``ZRANGE`` and the records
with one ``HMGET`` per hash they live in, so it costs the same whatever the page size too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kvstore import DateRange, Include, Message, Resource, Storage, Thread
from tests.cost.conftest import CountCommands

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

SIZES = (25, 2_000)

#: EVALSHA, ZLEXCOUNT (the total), ZLEXCOUNT (the rank the prefix starts at), ZRANGE (the
#: page), HMGET (the page's records), HMGET (the threads' activity).
LISTING = 6


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
    memory = redis_store.memory
    costs = []
    for stored in SIZES:
        await _fill_threads(redis_store, "alice", stored)
        costs.append(
            (
                await count_commands(memory.list_threads("alice", per_page=20)),
                await count_commands(memory.list_threads("alice", page=3, per_page=5)),
                await count_commands(memory.list_threads("alice", order_by="updated_at")),
                await count_commands(memory.export_threads(count=50)),
            )
        )
    assert costs[0] == costs[1]
    # An export chunk adds one ZLEXCOUNT per bucket for the walk's total.
    assert costs[0] == (LISTING, LISTING, LISTING, LISTING + 1)


async def test_last_messages_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    memory = redis_store.memory
    await memory.save_thread(Thread(id="t1", resource_id="alice"))
    window = DateRange(start=datetime(2000, 1, 1, tzinfo=UTC))
    costs = []
    for stored in SIZES:
        await _fill_messages(redis_store, "t1", stored)
        costs.append(
            (
                await count_commands(memory.list_messages("t1", last=20)),
                await count_commands(memory.list_messages("t1", page=3, per_page=5)),
                await count_commands(memory.list_messages("t1", last=20, date_range=window)),
                await count_commands(memory.export_messages("t1", count=100)),
            )
        )
    assert costs[0] == costs[1]
    # No script: ZCARD (or ZCOUNT in a window) and one ZRANGE of the records themselves.
    assert costs[0] == (2, 2, 2, 2)


async def test_single_record_calls_cost_a_constant(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    memory = redis_store.memory
    await memory.save_thread(Thread(id="t1", resource_id="alice"))
    costs = []
    for n, stored in enumerate(SIZES):
        await _fill_messages(redis_store, "t1", stored)
        two = [Message(id=f"new{n}-{i}", thread_id="t1", role="user", content="hi") for i in (0, 1)]
        ids = [m.id for m in two]
        thread = Thread(id=f"moved{n}", resource_id="carol")
        costs.append(
            {
                "get_thread": await count_commands(memory.get_thread("t1")),
                "update_thread": await count_commands(memory.update_thread("t1", title=f"{n}")),
                "save_messages": await count_commands(memory.save_messages(two)),
                "save_messages again": await count_commands(memory.save_messages(two)),
                "get_messages": await count_commands(memory.get_messages(ids)),
                "update_messages": await count_commands(
                    memory.update_messages([{"id": ids[0], "content": "edited"}])
                ),
                "delete_messages": await count_commands(memory.delete_messages(ids)),
                "save_thread": await count_commands(memory.save_thread(thread)),
                "save_thread again": await count_commands(memory.save_thread(thread)),
                "delete_thread": await count_commands(memory.delete_thread(thread.id)),
                "save_resource": await count_commands(
                    memory.save_resource(Resource(id=f"r{n}", working_memory="w"))
                ),
                "update_resource": await count_commands(
                    memory.update_resource(f"r{n}", working_memory="z")
                ),
                "get_resource": await count_commands(memory.get_resource(f"r{n}")),
            }
        )
    assert costs[0] == costs[1]
    assert costs[0] == {
        "get_thread": 2,  # HGET of the record and of the activity
        "update_thread": 7,
        "save_messages": 8,
        "save_messages again": 12,  # each message's old member is found and replaced
        "get_messages": 3,  # HMGET of the pointers, then one ZRANGE per message
        "update_messages": 9,
        "delete_messages": 14,
        "save_thread": 5,
        "save_thread again": 6,
        "delete_thread": 7,
        "save_resource": 4,
        "update_resource": 5,
        "get_resource": 1,
    }


async def test_include_and_date_range_cost_what_they_return(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    """An include adds one HMGET of the pointers to the page's batch, then one script that
    reads the neighbours, whatever the size of the threads and of ``before``/``after``."""
    memory = redis_store.memory
    for tid in ("t1", "t2"):
        await memory.save_thread(Thread(id=tid, resource_id="alice"))
    costs = []
    for stored in SIZES:
        await _fill_messages(redis_store, "t1", stored)
        await _fill_messages(redis_store, "t2", stored)
        # Neighbours in another thread: none of them is on the page already.
        small = [Include(message_id="t2-m10", before=2, after=3)]
        large = [Include(message_id="t2-m10", before=9, after=12)]
        costs.append(
            (
                await count_commands(memory.list_messages("t1", last=20, include=small)),
                await count_commands(memory.list_messages("t1", last=20, include=large)),
            )
        )
    assert costs[0] == costs[1]
    # ZCARD, ZRANGE, HMGET (the pointer); then EVALSHA, ZRANGE BYSCORE (the message by its
    # score), ZRANK, ZRANGE (its neighbours): scripts.NEIGHBOURS.
    assert costs[0] == (7, 7)


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


# -- issue 12: namespace and metadata listings, moves, clones, merged message listings ------


async def test_namespace_and_metadata_listings_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    memory = redis_store.memory
    costs = []
    have = 0
    for stored in SIZES:
        for i in range(have, stored):
            metadata = {"project": "p1", "agent": f"a{i % 3}", "shard": i % 100}
            await memory.save_thread(Thread(id=f"m-{i}", resource_id="bob", metadata=metadata))
        have = stored
        costs.append(
            (
                await count_commands(memory.list_threads(per_page=20)),
                await count_commands(memory.list_threads(page=3, per_page=5)),
                await count_commands(memory.list_threads(metadata={"project": "p1"})),
                await count_commands(
                    memory.list_threads("bob", metadata={"agent": "a1"}, order_by="updated_at")
                ),
                await count_commands(
                    memory.list_threads(metadata={"shard": 7, "agent": "a1", "project": "p1"})
                ),
            )
        )
    assert costs[0] == costs[1]
    # A filter on one key is a listing of its own prefix. One on several keys: EVALSHA, a
    # ZLEXCOUNT per key, ZLEXCOUNT (where the smallest starts), ZRANGE (its members, at most
    # MAX_FILTER_SCAN), HMGET (their activities), HMGET of the page's records and activities.
    assert costs[0] == (LISTING, LISTING, LISTING, LISTING, 1 + 3 + 1 + 1 + 1 + 2)


async def test_move_thread_costs_a_constant_per_slice(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    memory = redis_store.memory
    costs = []
    for n, stored in enumerate(SIZES):
        # Data elsewhere in the store does not change what moving a thread costs.
        await _fill_threads(redis_store, "elsewhere", stored)
        await memory.save_thread(Thread(id=f"mv{n}", resource_id="alice"))
        await _fill_messages(redis_store, f"mv{n}", 10)
        await memory.save_thread(Thread(id=f"big{n}", resource_id="alice"))
        await _fill_messages(redis_store, f"big{n}", 260)
        costs.append(
            (
                await count_commands(memory.move_thread(f"mv{n}", "bob")),
                await count_commands(memory.move_thread(f"big{n}", "bob")),
            )
        )
    assert costs[0] == costs[1]
    # First slice: EVALSHA, HGET (activity), HGET (record), ZREM and ZADD (index entries),
    # ZREM and ZADD (the update key moves), HSET, HSET, ZRANGE (the slice), ZREM and ZADD
    # (its messages, all at once), ZCARD. A later slice: EVALSHA, HGET, HGET, ZRANGE, ZREM,
    # ZADD, ZCARD. 260 messages take two slices of 250.
    first, later = 13, 7
    assert costs[0] == (first, first + later)


async def test_clone_and_merged_listings_cost_a_constant(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    memory = redis_store.memory
    await memory.save_thread(Thread(id="c-src", resource_id="carol"))
    await memory.save_thread(Thread(id="c-other", resource_id="carol"))
    costs = []
    for n, stored in enumerate(SIZES):
        await _fill_messages(redis_store, "c-src", stored)
        await _fill_messages(redis_store, "c-other", stored)
        costs.append(
            (
                await count_commands(
                    memory.clone_thread("c-src", f"c-new{n}", resource_id="x", message_limit=20)
                ),
                await count_commands(
                    memory.list_messages_merged(thread_ids=["c-src", "c-other"], per_page=20)
                ),
                await count_commands(
                    memory.list_messages_merged(
                        resource_id="carol", page=2, per_page=10, direction="desc"
                    )
                ),
            )
        )
    assert costs[0] == costs[1]
    # Clone: HGET, HGET, ZRANGE (the source); EVALSHA, HEXISTS, EXISTS, HSET (record), HSET
    # (activity), ZADD (index entries), ZADD (messages), HSET (pointers).
    # Merged: ZCOUNT and ZRANGE per thread; a resource adds one ZRANGE BYLEX per bucket of
    # its thread index.
    assert costs[0] == (3 + 8, 2 * 2, 1 + 2 * 2)
