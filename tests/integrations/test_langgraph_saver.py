"""KVStoreSaver beyond the official suite: blocking calls, serializers, filters, every thread.

The official conformance suite (``test_langgraph.py``) covers the async contract; these
tests cover what it does not: the blocking methods on a SyncStorage and from another
thread, a custom serializer whose bytes are not UTF-8 (stored base64 on Upstash), filters
on values that are not indexed, ``alist(None)``, and the saver's own arguments.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from kvstore import Storage, SyncStorage
from kvstore.integrations.langgraph import KVStoreSaver
from tests.integrations.conftest import Backend

pytestmark = pytest.mark.anyio


class Scrambled(JsonPlusSerializer):
    """A serializer of its own (as an encrypting one would be): binary, with its own tag."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        kind, data = super().dumps_typed(obj)
        return f"scrambled+{kind}", bytes(b ^ 0xA5 for b in data) + b"\xff\x00"

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind, raw = data
        assert kind.startswith("scrambled+")
        assert raw.endswith(b"\xff\x00")
        return super().loads_typed((kind[10:], bytes(b ^ 0xA5 for b in raw[:-2])))


_SEQ = itertools.count()


def checkpoint(values: dict[str, Any], versions: dict[str, Any]) -> Any:
    return {
        **empty_checkpoint(),
        "id": str(uuid6(clock_seq=next(_SEQ))),
        "channel_values": values,
        "channel_versions": versions,
    }


def config(thread: str, ns: str = "") -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}


async def test_a_custom_serializer_round_trips_on_every_backend(backend: Backend) -> None:
    async with backend.store() as store:
        saver = KVStoreSaver(store, serde=Scrambled())
        values = {"a": {"text": "ünï ✓", "n": [1, 2.5, None]}, "b": b"\x00\x01\xfe"}
        stored = await saver.aput(
            config("t"), checkpoint(values, {"a": 1, "b": 1}), {"source": "x"}, {"a": 1, "b": 1}
        )
        await saver.aput_writes(stored, [("a", {"w": 1}), ("__error__", "boom")], "task")
    async with backend.store() as store:  # a new client, as another process would be
        got = await KVStoreSaver(store, serde=Scrambled()).aget_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["channel_values"] == values
        assert got.metadata["source"] == "x"
        assert sorted(got.pending_writes or []) == [
            ("task", "__error__", "boom"),
            ("task", "a", {"w": 1}),
        ]


async def test_filters_on_values_that_are_not_indexed() -> None:
    saver = KVStoreSaver(Storage())
    for step, extra in enumerate(({"tags": ["a"]}, {"tags": ["b"], "opt": None}, {})):
        await saver.aput(
            config("t"), checkpoint({}, {}), {"source": "loop", "step": step, **extra}, {}
        )

    async def steps(**options: Any) -> list[int]:
        return [t.metadata["step"] async for t in saver.alist(config("t"), **options)]

    assert await steps(filter={"tags": ["b"]}) == [1]
    assert await steps(filter={"tags": ["a"], "source": "loop"}) == [0]
    assert await steps(filter={"opt": None}) == [2, 1, 0]  # a missing key equals None
    assert await steps(filter={"step": True}) == [1]
    assert await steps(filter={"source": "loop"}, limit=2) == [2, 1]
    assert await steps(limit=0) == []


async def test_alist_without_a_config_lists_every_thread() -> None:
    store = Storage(buckets=4)
    saver = KVStoreSaver(store)
    for thread in ("t1", "t2", "t3"):
        for step in range(2):
            await saver.aput(config(thread), checkpoint({}, {}), {"step": step}, {})
    found = [
        (t.config["configurable"]["thread_id"], t.metadata["step"]) async for t in saver.alist(None)
    ]
    assert sorted(found) == [(t, s) for t in ("t1", "t2", "t3") for s in (0, 1)]
    assert len([t async for t in saver.alist(None, limit=4)]) == 4
    assert len([t async for t in saver.alist(None, filter={"step": 1})]) == 3


def test_blocking_methods_on_a_sync_storage() -> None:
    with KVStoreSaver(SyncStorage(), owns_store=True) as saver:
        stored = saver.put(config("t"), checkpoint({"a": 1}, {"a": 1}), {"step": 1}, {"a": 1})
        saver.put_writes(stored, [("a", 2)], "task")
        got = saver.get_tuple(config("t"))
        assert got is not None
        assert (got.checkpoint["channel_values"], got.pending_writes) == (
            {"a": 1},
            [("task", "a", 2)],
        )
        assert [t.metadata["step"] for t in saver.list(config("t"))] == [1]
        saver.copy_thread("t", "u")
        saver.prune(["u"])
        saver.delete_for_runs(["none"])
        saver.delete_thread("t")
        assert saver.get_tuple(config("t")) is None
        assert saver.get_tuple(config("u")) is not None

        async def from_another_loop() -> int:
            return len([t async for t in saver.alist(config("u"))])

        assert asyncio.run(from_another_loop()) == 1


async def test_blocking_methods_on_a_storage_run_on_its_loop_from_other_threads() -> None:
    saver = KVStoreSaver(Storage())
    await saver.aput(config("t"), checkpoint({}, {}), {"step": 7}, {})
    with pytest.raises(asyncio.InvalidStateError, match="event loop thread"):
        saver.get_tuple(config("t"))
    got = await asyncio.to_thread(saver.get_tuple, config("t"))
    assert got is not None
    assert got.metadata["step"] == 7
    listed = await asyncio.to_thread(lambda: list(saver.list(config("t"))))
    assert len(listed) == 1
    assert threading.current_thread() is threading.main_thread()


def test_a_program_without_asyncio_gets_a_loop_of_the_savers_own(tmp_path: Any) -> None:
    from tests.integrations.langgraph_interrupt import build

    url = f"memory://{tmp_path / 'sync.aof'}"
    with KVStoreSaver.from_url(url) as saver:
        graph = build(saver)
        thread = {"configurable": {"thread_id": "order"}}
        asked = graph.invoke({"order": "o-1", "log": []}, thread)
        assert [i.value for i in asked["__interrupt__"]] == [{"question": "Ship o-1?"}]
        done = graph.invoke(Command(resume={"ok": False, "note": "later"}), thread)
        assert done["log"] == ["planned o-1", "reviewed", "cancelled"]

        async def from_another_loop() -> int:  # delegated to the saver's loop
            return len([t async for t in saver.alist(thread)])

        assert asyncio.run(from_another_loop()) == len(list(saver.list(thread)))
    with KVStoreSaver.from_url(url) as saver:  # the file was closed, and reopens
        got = saver.get_tuple({"configurable": {"thread_id": "order"}})
        assert got is not None
        assert got.checkpoint["channel_values"]["approved"] is False


async def test_the_saver_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        KVStoreSaver("redis://localhost")  # type: ignore[arg-type]
    saver = KVStoreSaver(Storage())
    with pytest.raises(ValueError, match="keep_latest"):
        await saver.aprune(["t"], strategy="everything")
    first = saver.get_next_version(None, None)
    second = saver.get_next_version(first, None)
    assert first.split(".")[0] == "1".zfill(32)
    assert int(second.split(".")[0]) == 2
    assert saver.get_next_version(5, None).startswith("6".zfill(32))  # type: ignore[arg-type]


async def test_from_url_owns_its_store(tmp_path: Any) -> None:
    url = f"memory://{tmp_path / 'lg.aof'}"
    async with KVStoreSaver.from_url(url) as saver:
        await saver.aput(config("t"), checkpoint({"a": 1}, {"a": 1}), {}, {"a": 1})
    async with KVStoreSaver.from_url(url) as saver:
        got = await saver.aget_tuple(config("t"))
        assert got is not None
        assert got.checkpoint["channel_values"] == {"a": 1}
        assert "KVStoreSaver(Storage(" in repr(saver)
