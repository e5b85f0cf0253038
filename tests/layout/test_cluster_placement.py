"""On a Redis Cluster, one namespace spreads over every node, each owner's keys share a slot,
and operations across slots work (one batch per node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis

from kvstore import Message, NotFoundError, Span, Storage, Thread
from kvstore.keys import SLOTS, key_slot
from tests.conformance import drivers
from tests.support.counting import CountingDriver

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.cluster]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(cluster_nodes: list[tuple[str, int]]) -> AsyncIterator[Storage]:
    async with drivers.cluster_driver(cluster_nodes) as driver:
        yield Storage(driver, namespace="spread")


def _node_of_slot(nodes: list[tuple[str, int]]) -> dict[int, int]:
    """Slot -> index of the node that serves it."""
    owner: dict[int, int] = {}
    for host, port in nodes:
        client = redis.Redis(host=host, port=port)
        try:
            node_id = client.execute_command("CLUSTER", "MYID").decode()
            for start, end, *rest in client.execute_command("CLUSTER", "SLOTS"):
                primary_id = rest[0][2].decode() if len(rest[0]) > 2 else None
                if primary_id == node_id:
                    for slot in range(start, end + 1):
                        owner[slot] = nodes.index((host, port))
        finally:
            client.close()
    return owner


async def _fill(store: Storage) -> None:
    for t in range(48):
        await store.memory.save_thread(Thread(id=f"thread-{t}", resource_id=f"user-{t % 6}"))
        await store.memory.save_messages(
            [
                Message(id=f"m-{t}-{i}", thread_id=f"thread-{t}", role="user", content="hi")
                for i in range(3)
            ]
        )
        await store.workflows.persist_snapshot("wf", f"run-{t}", {"step": t}, status="running")
        await store.traces.save_spans(
            [Span(trace_id=f"trace-{t}", span_id="root", name="op", start_time=T0)]
        )


async def test_the_default_on_a_cluster_is_sixty_four_buckets_spread_evenly(
    store: Storage, cluster_nodes: list[tuple[str, int]]
) -> None:
    keys = await store.keys()
    assert keys.buckets == 64
    owner = _node_of_slot(cluster_nodes)
    per_node = [0] * len(cluster_nodes)
    for bucket in keys.all_buckets:
        per_node[owner[key_slot(bucket.threads.encode())]] += 1
    # 64 buckets over 3 equal slot ranges: 21 or 22 each, never left to chance.
    assert sorted(per_node) == [21, 21, 22]


async def test_one_namespace_spreads_over_every_node(
    store: Storage, cluster_nodes: list[tuple[str, int]]
) -> None:
    await _fill(store)
    sizes = []
    for host, port in cluster_nodes:
        client = redis.Redis(host=host, port=port)
        try:
            sizes.append(client.dbsize())
        finally:
            client.close()
    total = sum(sizes)
    assert all(size > total * 0.2 for size in sizes), sizes


async def test_threads_runs_and_traces_land_on_different_nodes(
    store: Storage, cluster_nodes: list[tuple[str, int]]
) -> None:
    await _fill(store)
    keys = await store.keys()
    owner = _node_of_slot(cluster_nodes)

    def node(key: str) -> int:
        return owner[key_slot(key.encode())]

    assert len({node(keys.thread(f"thread-{t}").messages) for t in range(48)}) == 3
    assert len({node(keys.bucket_of(f"run-{t}").runs) for t in range(48)}) == 3
    assert len({node(keys.bucket_of(f"trace-{t}").traces) for t in range(48)}) == 3
    # An owner's keys share one slot: a call on it is one script on one node.
    for t in range(48):
        thread = keys.thread(f"thread-{t}")
        slots = {
            key_slot(k.encode())
            for k in (
                thread.messages,
                thread.bucket.threads,
                thread.bucket.thread_activity,
                thread.bucket.thread_index,
                thread.bucket.pointers,
            )
        }
        assert len(slots) == 1
        assert 0 <= slots.pop() < SLOTS


async def test_operations_across_slots_work_and_cost_one_batch_per_node(
    store: Storage,
) -> None:
    await _fill(store)
    counting = CountingDriver(store.driver)
    spread = Storage(counting, namespace="spread")
    await spread.keys()
    before = counting.round_trips
    page = await spread.memory.list_threads("user-0", per_page=100)
    assert counting.round_trips == before + 1
    assert sorted(t.id for t in page.items) == sorted(f"thread-{t}" for t in range(0, 48, 6))
    assert page.total == 8
    runs = await spread.workflows.list_runs("wf", status="running", per_page=10, page=2)
    assert (runs.total, len(runs.items)) == (48, 10)
    assert [r.run_id for r in runs.items] == [
        r.run_id for r in (await spread.workflows.list_runs("wf", per_page=48)).items[20:30]
    ]
    found = await spread.memory.get_messages([f"m-{t}-1" for t in range(0, 48, 5)])
    assert [m.id for m in found] == [f"m-{t}-1" for t in range(0, 48, 5)]
    assert await spread.traces.delete_traces([f"trace-{t}" for t in range(10)]) == 10
    assert (await spread.traces.list_traces(per_page=100)).total == 38


async def test_a_save_across_slots_with_a_missing_thread_writes_nothing(store: Storage) -> None:
    keys = await store.keys()
    threads = [f"x{i}" for i in range(8)]
    assert len({keys.bucket_of(t).number for t in threads}) > 1
    for t in threads[:-1]:
        await store.memory.save_thread(Thread(id=t, resource_id="r"))
    batch = [Message(id=f"n-{t}", thread_id=t, role="user", content="c") for t in threads]
    with pytest.raises(NotFoundError, match="x7"):
        await store.memory.save_messages(batch)
    assert await store.memory.count_messages(threads) == [0] * 8
    assert await store.memory.get_messages([m.id for m in batch]) == []


async def test_a_message_moved_to_a_thread_in_another_bucket_leaves_the_old_one(
    store: Storage,
) -> None:
    keys = await store.keys()
    a = "move-a"
    b = next(
        f"move-{i}" for i in range(100) if keys.bucket_of(f"move-{i}") is not keys.bucket_of(a)
    )
    for t in (a, b):
        await store.memory.save_thread(Thread(id=t, resource_id="r"))
    await store.memory.save_messages([Message(id="m", thread_id=a, role="user", content="1")])
    await store.memory.save_messages([Message(id="m", thread_id=b, role="user", content="2")])
    assert (await store.memory.list_messages(a)).total == 0
    assert [m.content for m in (await store.memory.list_messages(b)).items] == ["2"]
    assert [m.thread_id for m in await store.memory.get_messages(["m"])] == [b]
