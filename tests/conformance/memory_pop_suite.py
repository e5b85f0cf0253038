"""Conformance of ``store.memory.pop_message`` (TEMP for issue 11, re-implemented in v2).

The contract, tested through the public API only so that it holds on any key layout:

* it removes and returns the thread's newest message: the last one ``list_messages``
  returns (greatest ``created_at``; among equal timestamps, the one first saved last);
* it returns None for a thread without messages and for an unknown thread;
* it bumps the thread's ``updated_at``, as ``delete_messages`` does;
* concurrent callers never get the same message;
* it is one round trip.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

from kvstore import Message, Storage, Thread
from tests.support.counting import CountingDriver

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _msg(id_: str, thread_id: str, seconds: float, content: object = None) -> Message:
    return Message(
        id=id_,
        thread_id=thread_id,
        role="user",
        content=content if content is not None else f"text of {id_}",
        created_at=T0 + timedelta(seconds=seconds),
    )


async def _ids(store: Storage, thread_id: str) -> list[str]:
    page = await store.memory.list_messages(thread_id, last=1000)
    return [m.id for m in page.items]


class MemoryPopSuite:
    """Tests of ``store.memory.pop_message``; needs a ``store`` fixture."""

    async def test_pop_message_takes_the_newest_by_time(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t", resource_id="alice", created_at=T0))
        # Saved out of time order: the newest by created_at is popped first anyway.
        await store.memory.save_messages([_msg("late", "t", 30), _msg("early", "t", 10)])
        await store.memory.save_messages([_msg("middle", "t", 20, content={"k": [1, 2]})])
        popped = await store.memory.pop_message("t")
        assert popped == _msg("late", "t", 30)
        assert await _ids(store, "t") == ["early", "middle"]
        second = await store.memory.pop_message("t")
        assert second is not None
        assert second.id == "middle"
        assert second.content == {"k": [1, 2]}
        assert await store.memory.get_messages(["late", "middle"]) == []

    async def test_pop_message_equal_timestamps_pop_in_reverse_save_order(
        self, store: Storage
    ) -> None:
        await store.memory.save_thread(Thread(id="t", resource_id="alice"))
        await store.memory.save_messages([_msg("a", "t", 5), _msg("b", "t", 5)])
        await store.memory.save_messages([_msg("c", "t", 5)])
        popped = [await store.memory.pop_message("t") for _ in range(4)]
        assert [m.id if m else None for m in popped] == ["c", "b", "a", None]
        assert (await store.memory.list_messages("t")).total == 0

    async def test_pop_message_empty_and_unknown_threads(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="empty", resource_id="alice"))
        assert await store.memory.pop_message("empty") is None
        assert await store.memory.pop_message("no-such-thread") is None
        assert await store.memory.get_thread("empty") is not None

    async def test_pop_message_leaves_other_threads_alone(self, store: Storage) -> None:
        for tid in ("t1", "t2"):
            await store.memory.save_thread(Thread(id=tid, resource_id="alice"))
        await store.memory.save_messages([_msg("x1", "t1", 1), _msg("y1", "t2", 2)])
        popped = await store.memory.pop_message("t1")
        assert popped is not None
        assert popped.id == "x1"
        assert await _ids(store, "t2") == ["y1"]

    async def test_pop_message_bumps_the_thread(self, store: Storage) -> None:
        old = T0 - timedelta(days=1)
        await store.memory.save_thread(
            Thread(id="t", resource_id="alice", created_at=old, updated_at=old)
        )
        await store.memory.restore_messages([_msg("m", "t", 1)])  # keeps updated_at
        before = await store.memory.get_thread("t")
        assert before is not None
        assert before.updated_at == old
        await store.memory.pop_message("t")
        after = await store.memory.get_thread("t")
        assert after is not None
        assert after.updated_at is not None
        assert after.updated_at > old
        page = await store.memory.list_threads("alice", order_by="updated_at")
        assert [t.id for t in page.items] == ["t"]

    async def test_pop_message_concurrent_callers_each_get_a_different_message(
        self, store: Storage
    ) -> None:
        await store.memory.save_thread(Thread(id="t", resource_id="alice"))
        await store.memory.save_messages([_msg(f"m{i:02d}", "t", i) for i in range(30)])
        got: list[str | None] = []

        async def pop() -> None:
            message = await store.memory.pop_message("t")
            got.append(message.id if message else None)

        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(pop)
        popped = [i for i in got if i is not None]
        assert sorted(popped) == [f"m{i:02d}" for i in range(30)]
        assert got.count(None) == 10
        assert await _ids(store, "t") == []

    async def test_pop_message_is_one_round_trip(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t", resource_id="alice"))
        await store.memory.save_messages([_msg(f"m{i}", "t", i) for i in range(5)])
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()  # the layout check, once per Storage
        counting.round_trips = 0
        mem = storage.memory
        await mem.pop_message("t")
        await mem.pop_message("unknown")
        assert counting.round_trips == 2
