"""The checkpoint domain's cost through LangGraph's saver, on a real server.

Every KVStoreSaver call is one round trip, and the commands it runs (scripts' inner calls
and the ``EVALSHA`` itself, warm) are the same whether the thread holds 30 checkpoints or
1,000: reads find the newest checkpoint, a checkpoint by id and a page by lex ranges, and
writes touch only the checkpoint's own entries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langgraph.checkpoint.base import Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from kvstore import Storage
from kvstore.integrations.langgraph import KVStoreSaver
from tests.cost.conftest import CountCommands
from tests.support.counting import CountingDriver

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

SIZES = (30, 1_000)
CHANNELS = ("messages", "plan", "notes", "count", "flags")


class Thread:
    """A thread written as a graph writes it: each step changes one of five channels."""

    def __init__(self, saver: KVStoreSaver, thread_id: str) -> None:
        self.saver = saver
        self.config: dict[str, Any] = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": ""}
        }
        self.versions: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.steps = 0
        self.configs: list[dict[str, Any]] = []

    async def step(self) -> dict[str, Any]:
        channel = CHANNELS[self.steps % len(CHANNELS)]
        self.versions[channel] = self.saver.get_next_version(self.versions.get(channel), None)
        self.values[channel] = {"step": self.steps, "text": "x" * 300}
        checkpoint: Checkpoint = {
            **empty_checkpoint(),
            "id": str(uuid6(clock_seq=self.steps)),
            "channel_values": dict(self.values),
            "channel_versions": dict(self.versions),
        }
        metadata = {
            "source": "loop" if self.steps % 2 else "input",
            "step": self.steps,
            "parents": {},
        }
        self.config = await self.saver.aput(
            self.config,
            checkpoint,
            metadata,
            {channel: self.versions[channel]},  # type: ignore[arg-type]
        )
        self.steps += 1
        self.configs.append(self.config)
        return self.config


async def _listed(saver: KVStoreSaver, config: Any, **options: Any) -> int:
    return len([t async for t in saver.alist(config, **options)])


async def test_every_saver_call_is_one_round_trip_and_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    counting = CountingDriver(redis_store.driver)
    store = Storage(counting, namespace=redis_store.namespace)
    await store.keys()
    saver = KVStoreSaver(store)
    thread = Thread(saver, "t")
    thread_config = {"configurable": {"thread_id": "t"}}
    costs: list[tuple[int, ...]] = []
    for size in SIZES:
        while thread.steps < size:
            await thread.step()
        old = thread.configs[5]
        calls: list[Callable[[], Awaitable[Any]]] = [
            thread.step,
            lambda: saver.aput_writes(thread.config, [("a", 1), ("__interrupt__", 2)], "task"),
            lambda: saver.aget_tuple(thread_config),
            lambda old=old: saver.aget_tuple(old),
            lambda: _listed(saver, thread_config, limit=10),
            lambda: _listed(saver, thread_config, filter={"source": "loop"}, limit=10),
            lambda: _listed(saver, thread_config, before=thread.config, limit=10),
        ]
        counts = []
        for call in calls:
            before = counting.round_trips
            counts.append(await count_commands(call()))
            assert counting.round_trips - before == 1
        costs.append(tuple(counts))
    assert costs[0] == costs[1], costs
    assert costs[0] == (
        # EVALSHA, HMGET and HSET of the refs, HGET (a record of that id to replace?),
        # HSET record, ZADD index (with the metadata filters' entries), HSET blobs, ZADD
        # the thread in its bucket.
        8,
        3,  # EVALSHA, ZRANGEBYLEX (the task's stored writes), ZADD
        5,  # EVALSHA, ZREVRANGEBYLEX (the newest), HGET, HMGET blobs, ZRANGEBYLEX writes
        4,  # the same by id: no ZREVRANGEBYLEX
        14,  # EVALSHA, ZREVRANGEBYLEX (the page), HMGET records, HMGET blobs, 10 x writes
        15,  # and a ZLEXCOUNT to pick the filter's range
        14,
    ), costs


async def test_deleting_and_pruning_cost_what_they_delete(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    saver = KVStoreSaver(redis_store)
    costs = []
    for size in (20, 200):
        thread = Thread(saver, f"big-{size}")
        for _ in range(size):
            await thread.step()
        await saver.aput_writes(thread.config, [("a", 1)], "task")
        copied = await count_commands(saver.acopy_thread(f"big-{size}", f"copy-{size}"))
        pruned = await count_commands(saver.aprune([f"copy-{size}"]))
        deleted = await count_commands(saver.adelete_thread(f"big-{size}"))
        costs.append((copied, pruned, deleted))
        assert await _listed(saver, {"configurable": {"thread_id": f"copy-{size}"}}) == 1
    # Deleting a thread is a handful of commands however long it is; copying and pruning
    # grow with the checkpoints they copy or delete.
    assert costs[0][2] == costs[1][2]
    assert costs[1][0] > costs[0][0]
    assert costs[1][1] > costs[0][1]
