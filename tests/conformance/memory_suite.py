"""The memory domain's conformance suite: threads, messages and resources on every backend.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
backend runs it.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from kvstore import (
    CorruptRecordError,
    DateRange,
    Include,
    Message,
    MessagePatch,
    NotFoundError,
    Resource,
    Storage,
    Thread,
    ValidationError,
)
from tests.support.counting import CountingDriver
from tests.support.walks import assert_bucket_order, walk_all

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def msg(id_: str, thread_id: str, seconds: float = 0, **kw: Any) -> Message:
    return Message(
        id=id_,
        thread_id=thread_id,
        role=kw.pop("role", "user"),
        content=kw.pop("content", f"text of {id_}"),
        resource_id=kw.pop("resource_id", "alice"),
        created_at=at(seconds),
        **kw,
    )


MASTRA_V2 = {
    "format": 2,
    "parts": [
        {"type": "text", "text": "Let me check the weather."},
        {
            "type": "tool-invocation",
            "toolInvocation": {
                "state": "result",
                "toolCallId": "call_1",
                "toolName": "weather",
                "args": {"city": "Zürich", "units": "metric"},
                "result": {"temperature": 3.5, "conditions": ["snow", "wind"], "ok": True},
            },
        },
        {"type": "reasoning", "reasoning": "", "details": [{"type": "text", "text": "cold"}]},
    ],
    "toolInvocations": [],
    "content": "Let me check the weather.",
    "experimental_attachments": None,
}

OPENAI_TOOL_CALLS = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_abc123",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Paris, FR"}'},
        }
    ],
    "refusal": None,
}


class MemorySuite:
    """Tests of ``store.memory``; needs a ``store`` fixture (a :class:`Storage`)."""

    # -- threads ----------------------------------------------------------------------------

    async def test_thread_round_trip_and_upsert(self, store: Storage) -> None:
        thread = Thread(
            id="t1", resource_id="alice", title="Hello", metadata={"a": 1}, created_at=T0
        )
        saved = await store.memory.save_thread(thread)
        assert saved.updated_at is not None
        assert await store.memory.get_thread("t1") == saved
        again = await store.memory.save_thread(
            Thread(id="t1", resource_id="alice", title="Renamed", created_at=T0, updated_at=at(5))
        )
        got = await store.memory.get_thread("t1")
        assert got == again
        assert got is not None
        assert got.title == "Renamed"
        assert got.metadata == {}  # a save replaces the whole record
        assert await store.memory.get_thread("nope") is None

    async def test_list_threads_honours_order_by_and_direction(self, store: Storage) -> None:
        for i, updated in enumerate([30, 10, 20]):
            await store.memory.save_thread(
                Thread(id=f"t{i}", resource_id="alice", created_at=at(i), updated_at=at(updated))
            )
        await store.memory.save_thread(Thread(id="other", resource_id="bob", created_at=at(9)))

        async def ids(**kw: Any) -> list[str]:
            page = await store.memory.list_threads("alice", **kw)
            return [t.id for t in page.items]

        assert await ids() == ["t2", "t1", "t0"]
        assert await ids(direction="asc") == ["t0", "t1", "t2"]
        assert await ids(order_by="updated_at") == ["t0", "t2", "t1"]
        assert await ids(order_by="updated_at", direction="asc") == ["t1", "t2", "t0"]

    async def test_list_threads_pages_have_total_and_has_more(self, store: Storage) -> None:
        for i in range(5):
            await store.memory.save_thread(
                Thread(id=f"t{i}", resource_id="alice", created_at=at(i))
            )
        pages = [await store.memory.list_threads("alice", page=p, per_page=2) for p in range(4)]
        assert [[t.id for t in p.items] for p in pages] == [["t4", "t3"], ["t2", "t1"], ["t0"], []]
        assert [p.total for p in pages] == [5, 5, 5, 5]
        assert [p.has_more for p in pages] == [True, True, False, False]
        assert [(p.page, p.per_page) for p in pages] == [(0, 2), (1, 2), (2, 2), (3, 2)]
        empty = await store.memory.list_threads("nobody")
        assert (empty.items, empty.total, empty.has_more) == ([], 0, False)

    async def test_moving_a_thread_to_another_resource_updates_both_indexes(
        self, store: Storage
    ) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_thread(Thread(id="t1", resource_id="bob"))
        assert (await store.memory.list_threads("alice")).total == 0
        assert [t.id for t in (await store.memory.list_threads("bob")).items] == ["t1"]
        by_updated = await store.memory.list_threads("alice", order_by="updated_at")
        assert by_updated.total == 0

    async def test_update_thread_merges_metadata(self, store: Storage) -> None:
        await store.memory.save_thread(
            Thread(id="t1", resource_id="alice", title="old", metadata={"keep": 1, "change": 1})
        )
        updated = await store.memory.update_thread(
            "t1", title="new", metadata={"change": 2, "add": {"nested": [1, 2]}}
        )
        assert updated.title == "new"
        assert updated.metadata == {"keep": 1, "change": 2, "add": {"nested": [1, 2]}}
        assert await store.memory.get_thread("t1") == updated
        with pytest.raises(NotFoundError):
            await store.memory.update_thread("missing", title="x")

    async def test_update_thread_moves_it_up_the_updated_index(self, store: Storage) -> None:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        for i in range(3):
            await store.memory.save_thread(
                Thread(id=f"t{i}", resource_id="alice", created_at=old, updated_at=old)
            )
        await store.memory.update_thread("t0", title="touched")
        page = await store.memory.list_threads("alice", order_by="updated_at")
        assert page.items[0].id == "t0"

    async def test_concurrent_metadata_merges_lose_no_key(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(lambda i=i: store.memory.update_thread("t1", metadata={f"k{i}": i}))
        thread = await store.memory.get_thread("t1")
        assert thread is not None
        assert thread.metadata == {f"k{i}": i for i in range(20)}

    async def test_delete_thread_deletes_its_messages(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_thread(Thread(id="t2", resource_id="alice"))
        await store.memory.save_messages([msg("m1", "t1"), msg("m2", "t1", 1), msg("keep", "t2")])
        assert await store.memory.delete_thread("t1") is True
        assert await store.memory.delete_thread("t1") is False
        assert await store.memory.get_thread("t1") is None
        assert await store.memory.get_messages(["m1", "m2", "keep"]) == [msg("keep", "t2")]
        assert (await store.memory.list_messages("t1")).total == 0
        assert [t.id for t in (await store.memory.list_threads("alice")).items] == ["t2"]

    # -- messages ---------------------------------------------------------------------------

    async def test_equal_timestamps_keep_insertion_order_across_calls(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        # Ids sort against insertion order, so a tie broken by id would show.
        await store.memory.save_messages([msg("z", "t1"), msg("y", "t1")])
        await store.memory.save_messages([msg("b", "t1")])
        await store.memory.save_messages([msg("a", "t1"), msg("early", "t1", -1)])
        page = await store.memory.list_messages("t1")
        assert [m.id for m in page.items] == ["early", "z", "y", "b", "a"]

    async def test_content_shapes_round_trip_exactly(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        shapes: list[Any] = [
            copy.deepcopy(MASTRA_V2),
            copy.deepcopy(OPENAI_TOOL_CALLS),
            "plain text ✓",
            ["a", 1, 2.5, None, True, {"deep": {"er": [[]]}}],
            {"big": 2**63 - 1, "neg": -(2**62), "float": 0.1, "empty": {}, "list": []},
        ]
        saved = [
            msg(f"m{i}", "t1", i, content=c, role="assistant", metadata={"i": i})
            for i, c in enumerate(shapes)
        ]
        await store.memory.save_messages(saved)
        page = await store.memory.list_messages("t1")
        assert [m.content for m in page.items] == shapes
        assert page.items == saved
        assert await store.memory.get_messages([m.id for m in saved]) == saved

    async def test_last_n_gives_the_newest_oldest_first(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_messages([msg(f"m{i}", "t1", i) for i in range(10)])
        page = await store.memory.list_messages("t1", last=3)
        assert [m.id for m in page.items] == ["m7", "m8", "m9"]
        assert (page.total, page.has_more, page.per_page) == (10, True, 3)
        everything = await store.memory.list_messages("t1", last=50)
        assert len(everything.items) == 10
        assert everything.has_more is False

    async def test_message_pages_have_total_and_has_more(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_messages([msg(f"m{i}", "t1", i) for i in range(5)])
        pages = [await store.memory.list_messages("t1", page=p, per_page=2) for p in range(4)]
        assert [[m.id for m in p.items] for p in pages] == [
            ["m0", "m1"],
            ["m2", "m3"],
            ["m4"],
            [],
        ]
        assert [(p.total, p.has_more) for p in pages] == [
            (5, True),
            (5, True),
            (5, False),
            (5, False),
        ]
        empty = await store.memory.list_messages("no-such-thread")
        assert (empty.items, empty.total, empty.has_more) == ([], 0, False)

    async def test_date_range_bounds_inclusive_and_exclusive(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_messages([msg(f"m{i}", "t1", i) for i in range(6)])

        async def ids(window: DateRange, **kw: Any) -> tuple[list[str], int]:
            page = await store.memory.list_messages("t1", date_range=window, **kw)
            return [m.id for m in page.items], page.total

        assert await ids(DateRange(start=at(1), end=at(3))) == (["m1", "m2", "m3"], 3)
        assert await ids(DateRange(start=at(1), end=at(3), start_exclusive=True)) == (
            ["m2", "m3"],
            2,
        )
        assert await ids(DateRange(start=at(1), end=at(3), end_exclusive=True)) == (
            ["m1", "m2"],
            2,
        )
        assert await ids(DateRange(start=at(4))) == (["m4", "m5"], 2)
        assert await ids(DateRange(end=at(0))) == (["m0"], 1)
        assert await ids(DateRange(start=at(1), end=at(4)), last=2) == (["m3", "m4"], 4)
        assert await ids(DateRange(start=at(1), end=at(4)), page=1, per_page=3) == (["m4"], 4)
        assert await ids(DateRange(start=at(9))) == ([], 0)

    async def test_include_adds_context_from_other_threads_without_duplicates(
        self, store: Storage
    ) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_thread(Thread(id="t2", resource_id="alice"))
        await store.memory.save_messages([msg(f"a{i}", "t1", 10 + i) for i in range(10)])
        await store.memory.save_messages([msg(f"b{i}", "t2", i * 2 + 0.5) for i in range(10)])
        page = await store.memory.list_messages(
            "t1",
            last=3,
            include=[
                Include(message_id="a8", before=2, after=5),  # overlaps the last 3
                Include(message_id="b3", before=1, after=1),  # another thread
                Include(message_id="missing", before=1),
            ],
        )
        assert [m.id for m in page.items] == ["b2", "b3", "b4", "a6", "a7", "a8", "a9"]
        assert page.total == 10

    async def test_moving_a_message_between_threads(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_thread(Thread(id="t2", resource_id="alice"))
        await store.memory.save_messages([msg("m1", "t1"), msg("m2", "t1", 1)])
        await store.memory.save_messages([msg("m1", "t2", content="moved")])
        assert [m.id for m in (await store.memory.list_messages("t1")).items] == ["m2"]
        moved = (await store.memory.list_messages("t2")).items
        assert [(m.id, m.thread_id, m.content) for m in moved] == [("m1", "t2", "moved")]
        assert (await store.memory.list_messages("t1")).total == 1

    async def test_saving_messages_bumps_the_thread(self, store: Storage) -> None:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        for tid in ("t1", "t2"):
            await store.memory.save_thread(
                Thread(id=tid, resource_id="alice", created_at=old, updated_at=old)
            )
        await store.memory.save_messages([msg("m1", "t1")])
        by_updated = await store.memory.list_threads("alice", order_by="updated_at")
        assert [t.id for t in by_updated.items] == ["t1", "t2"]
        assert by_updated.items[0].updated_at is not None
        assert by_updated.items[0].updated_at > old

    async def test_saving_into_a_missing_thread_writes_nothing(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        with pytest.raises(NotFoundError, match="ghost"):
            await store.memory.save_messages([msg("m1", "t1"), msg("m2", "ghost")])
        assert await store.memory.get_messages(["m1", "m2"]) == []

    async def test_deleted_messages_leave_every_index(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_messages([msg(f"m{i}", "t1", i) for i in range(4)])
        assert await store.memory.delete_messages(["m1", "m3", "never-existed"]) == 2
        page = await store.memory.list_messages("t1")
        assert ([m.id for m in page.items], page.total) == (["m0", "m2"], 2)
        last = await store.memory.list_messages("t1", last=2, include=[Include(message_id="m1")])
        assert [m.id for m in last.items] == ["m0", "m2"]
        assert await store.memory.get_messages(["m1", "m0"]) == [msg("m0", "t1", 0)]

    async def test_update_messages_is_partial_and_merges_metadata(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        original = msg("m1", "t1", content="draft", metadata={"a": 1, "b": 1})
        await store.memory.save_messages([original, msg("m2", "t1", 1)])
        (updated,) = await store.memory.update_messages(
            [MessagePatch(id="m1", content={"format": 2, "parts": []}, metadata={"b": 2})]
        )
        assert updated.content == {"format": 2, "parts": []}
        assert updated.role == "user"
        assert updated.metadata == {"a": 1, "b": 2}
        assert updated.created_at == original.created_at
        (role_only,) = await store.memory.update_messages([{"id": "m2", "role": "assistant"}])
        assert (role_only.role, role_only.content) == ("assistant", "text of m2")
        with pytest.raises(NotFoundError, match="ghost"):
            await store.memory.update_messages(
                [MessagePatch(id="m1", content="lost"), MessagePatch(id="ghost", content="x")]
            )
        assert (await store.memory.get_messages(["m1"]))[0].content == {"format": 2, "parts": []}

    async def test_concurrent_appends_lose_nothing_and_keep_order(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))

        async def writer(w: int) -> None:
            for n in range(5):
                await store.memory.save_messages([msg(f"w{w}-{n}", "t1", content=n)])

        async with anyio.create_task_group() as tg:
            for w in range(20):
                tg.start_soon(writer, w)
        page = await store.memory.list_messages("t1", per_page=1000)
        assert page.total == 100
        ids = [m.id for m in page.items]
        assert sorted(ids) == sorted(f"w{w}-{n}" for w in range(20) for n in range(5))
        for w in range(20):
            own = [i for i in ids if i.startswith(f"w{w}-")]
            assert own == [f"w{w}-{n}" for n in range(5)]

    # -- resources --------------------------------------------------------------------------

    async def test_resources_save_get_and_update(self, store: Storage) -> None:
        assert await store.memory.get_resource("alice") is None
        created = await store.memory.update_resource(
            "alice", working_memory="# Alice\n- likes tea", metadata={"tz": "CET"}
        )
        assert created.working_memory == "# Alice\n- likes tea"
        assert created.metadata == {"tz": "CET"}
        again = await store.memory.update_resource("alice", metadata={"lang": "de"})
        assert again.working_memory == "# Alice\n- likes tea"
        assert again.metadata == {"tz": "CET", "lang": "de"}
        assert again.created_at == created.created_at
        assert await store.memory.get_resource("alice") == again
        replaced = await store.memory.save_resource(Resource(id="alice", working_memory="new"))
        assert await store.memory.get_resource("alice") == replaced

    # -- round trips ------------------------------------------------------------------------

    async def test_memory_each_call_is_one_round_trip(self, store: Storage) -> None:
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()  # the layout check, once per Storage
        mem = storage.memory
        # Calls that start from message ids alone first read where the messages live.
        calls: list[tuple[Any, int]] = [
            (lambda: mem.save_thread(Thread(id="t", resource_id="alice")), 1),
            (lambda: mem.get_thread("t"), 1),
            (lambda: mem.list_threads("alice", order_by="updated_at"), 1),
            (lambda: mem.update_thread("t", title="x", metadata={"k": 1}), 1),
            (
                lambda: mem.save_messages(
                    [msg("m1", "t", 1), msg("m2", "t", 2), msg("m3", "t", 3)]
                ),
                1,
            ),
            (lambda: mem.list_messages("t", last=2), 1),
            (
                lambda: mem.list_messages(
                    "t", page=1, per_page=1, date_range=DateRange(start=at(0))
                ),
                1,
            ),
            (
                lambda: mem.list_messages(
                    "t", last=2, include=[Include(message_id="m1", before=1, after=1)]
                ),
                2,
            ),
            (lambda: mem.get_messages(["m1", "m2", "missing"]), 2),
            (
                lambda: mem.update_messages(
                    [MessagePatch(id="m1", content="y", metadata={"k": 2})]
                ),
                2,
            ),
            (lambda: mem.delete_messages(["m2"]), 2),
            (lambda: mem.save_resource(Resource(id="alice", working_memory="notes")), 1),
            (lambda: mem.get_resource("alice"), 1),
            (lambda: mem.update_resource("alice", working_memory="more", metadata={"k": 3}), 1),
            (mem.list_resources, 1),
            # With several buckets, one more drops the message ids' homes.
            (lambda: mem.delete_thread("t"), 1 + ((await storage.keys()).buckets > 1)),
        ]
        for number, (call, round_trips) in enumerate(calls):
            before = counting.round_trips
            await call()
            assert (number, counting.round_trips - before) == (number, round_trips), (
                number,
                counting.round_trips - before,
            )
        assert await store.memory.get_thread("t") is None

    # -- bad input --------------------------------------------------------------------------

    async def test_bad_input_names_the_field_and_writes_nothing(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        bad: list[Any] = [
            msg("ok", "t1"),
            Message(id="m2", thread_id="t1", role="robot", content="x"),  # type: ignore[arg-type]
        ]
        with pytest.raises(ValidationError) as caught:
            await store.memory.save_messages(bad)
        assert caught.value.field == "messages[1].role"
        with pytest.raises(ValidationError) as caught:
            await store.memory.save_messages([{"id": "m3", "thread_id": "t1", "content": "x"}])
        assert caught.value.field == "messages[0].role"
        with pytest.raises(ValidationError) as caught:
            await store.memory.save_thread(Thread(id=7, resource_id="alice"))  # type: ignore[arg-type]
        assert caught.value.field == "thread.id"
        with pytest.raises(ValidationError) as caught:
            await store.memory.save_thread(
                Thread(id="t9", resource_id="a", created_at=datetime(2024, 1, 1))
            )
        assert caught.value.field == "thread.created_at"
        with pytest.raises(ValidationError):
            await store.memory.list_threads("alice", per_page=0)
        with pytest.raises(ValidationError):
            await store.memory.list_messages("t1", last=2, page=1)
        assert await store.memory.get_messages(["ok", "m2", "m3"]) == []
        assert await store.memory.get_thread("t9") is None

    @pytest.mark.parametrize(
        "weird",
        ["a:b", "thread:x", "{tag}", "}{", "*", "with space", "line\nbreak", "ünï©ødé ✓", "a%3Ab"],
    )
    async def test_ids_with_special_characters_are_stored_safely(
        self, store: Storage, weird: str
    ) -> None:
        await store.memory.save_thread(Thread(id=weird, resource_id=weird, title="weird"))
        await store.memory.save_thread(Thread(id="plain", resource_id="plain", title="plain"))
        await store.memory.save_messages([msg(weird, weird), msg("x", "plain")])
        got = await store.memory.get_thread(weird)
        assert got is not None
        assert got.title == "weird"
        assert [m.id for m in (await store.memory.list_messages(weird)).items] == [weird]
        assert [t.id for t in (await store.memory.list_threads(weird)).items] == [weird]
        assert [m.id for m in (await store.memory.list_messages("plain")).items] == ["x"]

    async def test_empty_ids_are_refused(self, store: Storage) -> None:
        with pytest.raises(ValidationError):
            await store.memory.save_thread(Thread(id="", resource_id="alice"))
        with pytest.raises(ValidationError):
            await store.memory.get_thread("")

    async def test_corrupt_record_names_its_key(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        await store.memory.save_messages([msg("m1", "t1"), msg("m2", "t1", 1)])
        keys = await store.keys()
        key = keys.thread("t1").messages
        # Break m2's stored record, keeping its place in the thread.
        (members,) = await store.driver.execute([("ZRANGE", key, 0, -1, "WITHSCORES")])
        member, score = members[2], members[3]
        broken = member[: member.index(b"\x00", 12) + 2] + b"{not json"
        await store.driver.execute([("ZREM", key, member), ("ZADD", key, score, broken)])
        with pytest.raises(CorruptRecordError) as caught:
            await store.memory.list_messages("t1")
        assert caught.value.key == key
        with pytest.raises(CorruptRecordError):
            await store.memory.get_messages(["m2"])
        assert await store.memory.get_messages(["m1"]) == [msg("m1", "t1")]
        threads = keys.bucket_of("t1").threads
        await store.driver.execute([("HSET", threads, "t1", b"\x00[oops")])
        with pytest.raises(CorruptRecordError) as caught:
            await store.memory.get_thread("t1")
        assert caught.value.key == threads

    # -- export and restore -----------------------------------------------------------------

    async def test_export_threads_walks_every_thread_oldest_first(self, store: Storage) -> None:
        ids = ["t:3", "t{2}", "t\n1", "tü0", "t*4"]
        for i, id_ in enumerate(ids):
            await store.memory.save_thread(
                Thread(id=id_, resource_id=f"r{i % 2}", created_at=at(10 - i))
            )
        walked, totals = await walk_all(store.memory.export_threads, count=2)
        assert sorted(t.id for t in walked) == sorted(ids)
        assert totals == {5}
        await assert_bucket_order(store, walked, lambda t: t.id, lambda t: t.created_at)
        whole, _ = await walk_all(store.memory.export_threads)
        assert whole == walked
        empty = await Storage(store.driver, namespace="empty").memory.export_threads()
        assert (empty.items, empty.cursor, empty.total) == ([], None, 0)

    async def test_export_messages_keeps_the_thread_order_across_chunks(
        self, store: Storage
    ) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        # Equal timestamps, saved in two calls: the order is the order of saving.
        await store.memory.save_messages([msg(f"m{i}", "t1", 5) for i in (7, 2, 9)])
        await store.memory.save_messages([msg("m0", "t1", 5), msg("early", "t1", 1)])
        order = [m.id for m in (await store.memory.list_messages("t1")).items]
        assert order == ["early", "m7", "m2", "m9", "m0"]
        walked: list[Message] = []
        cursor = None
        while True:
            chunk = await store.memory.export_messages("t1", cursor=cursor, count=2)
            assert chunk.total == 5
            walked += chunk.items
            cursor = chunk.cursor
            if cursor is None:
                break
        assert [m.id for m in walked] == order
        assert walked == (await store.memory.list_messages("t1")).items
        assert (await store.memory.export_messages("nope")).items == []
        assert await store.memory.count_messages(["t1", "nope"]) == [5, 0]
        assert await store.memory.count_messages([]) == []

    async def test_export_resources_walks_every_resource(self, store: Storage) -> None:
        saved = [
            await store.memory.save_resource(
                Resource(id=f"r:{i}", working_memory=f"wm {i}", created_at=at(i))
            )
            for i in range(3)
        ]
        await store.memory.update_resource("late", working_memory="made by an update")
        walked, totals = await walk_all(store.memory.export_resources, count=3)
        assert totals == {4}
        assert sorted(r.id for r in walked) == sorted([*(r.id for r in saved), "late"])
        assert [r for r in walked if r.id != "late"] == [r for r in walked if r in saved]
        assert all(r in walked for r in saved)
        await assert_bucket_order(store, walked, lambda r: r.id, lambda r: r.created_at)

    async def test_export_rejects_bad_cursors_and_counts(self, store: Storage) -> None:
        for call in (
            lambda: store.memory.export_threads(cursor="x"),
            lambda: store.memory.export_threads(cursor="-1"),
            lambda: store.memory.export_messages("t1", cursor="1.5"),
        ):
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == "cursor"
        for count in (0, 1001, True):
            with pytest.raises(ValidationError) as caught:
                await store.memory.export_resources(count=count)
            assert caught.value.field == "count"

    async def test_restore_threads_writes_them_exactly(self, store: Storage) -> None:
        await store.memory.save_thread(Thread(id="t1", resource_id="alice", created_at=at(0)))
        threads = [
            Thread(
                id="t1",
                resource_id="bob",  # moved: alice's indexes must forget it
                title="Moved",
                metadata={"k": [1, 2]},
                created_at=at(1),
                updated_at=at(50),
            ),
            Thread(id="t{2}", resource_id="bob", created_at=at(2), updated_at=at(40)),
        ]
        assert await store.memory.restore_threads(threads) == threads
        assert [await store.memory.get_thread(t.id) for t in threads] == threads
        assert (await store.memory.list_threads("alice")).total == 0
        by_update = await store.memory.list_threads("bob", order_by="updated_at")
        assert [t.id for t in by_update.items] == ["t1", "t{2}"]
        walked, _ = await walk_all(store.memory.export_threads)
        assert sorted(t.id for t in walked) == ["t1", "t{2}"]
        assert await store.memory.restore_threads([]) == []
        with pytest.raises(ValidationError) as caught:
            await store.memory.restore_threads([threads[0], {"id": "t3"}])
        assert caught.value.field == "threads[1].resource_id"

    async def test_restore_messages_leaves_the_threads_alone(self, store: Storage) -> None:
        thread = await store.memory.save_thread(
            Thread(id="t1", resource_id="alice", created_at=at(0), updated_at=at(1))
        )
        messages = [msg(f"m{i}", "t1", 3) for i in (3, 1, 2)]
        assert await store.memory.restore_messages(messages) == messages
        assert await store.memory.get_thread("t1") == thread
        listed = await store.memory.list_threads("alice", order_by="updated_at")
        assert listed.items == [thread]
        assert (await store.memory.list_messages("t1")).items == messages
        # Restoring again is an upsert: nothing moves, nothing doubles.
        changed = msg("m1", "t1", 3, content="edited")
        await store.memory.restore_messages([*messages[:1], changed])
        assert [m.content for m in (await store.memory.list_messages("t1")).items] == [
            "text of m3",
            "edited",
            "text of m2",
        ]
        with pytest.raises(NotFoundError):
            await store.memory.restore_messages([msg("m9", "missing")])
        assert await store.memory.get_messages(["m9"]) == []

    async def test_restore_resources_writes_them_exactly(self, store: Storage) -> None:
        resources = [
            Resource(
                id="r\n1",
                working_memory="wm",
                metadata={"a": 1},
                created_at=at(1),
                updated_at=at(9),
            ),
            Resource(id="r2", created_at=at(2), updated_at=at(3)),
        ]
        assert await store.memory.restore_resources(resources) == resources
        assert [await store.memory.get_resource(r.id) for r in resources] == resources
        walked, _ = await walk_all(store.memory.export_resources)
        assert sorted(walked, key=lambda r: r.created_at) == resources
        with pytest.raises(ValidationError) as caught:
            await store.memory.restore_resources([{"id": ""}])
        assert caught.value.field == "resources[0].id"

    # -- issue 12: Mastra 1.x listings, moves and clones -------------------------------------

    async def test_list_threads_without_a_resource_lists_the_namespace(
        self, store: Storage
    ) -> None:
        for i, (owner, updated) in enumerate([("alice", 30), ("bob", 10), ("carol", 20)]):
            await store.memory.save_thread(
                Thread(id=f"t{i}", resource_id=owner, created_at=at(i), updated_at=at(updated))
            )

        async def ids(**kw: Any) -> list[str]:
            return [t.id for t in (await store.memory.list_threads(**kw)).items]

        assert await ids() == ["t2", "t1", "t0"]
        assert await ids(direction="asc") == ["t0", "t1", "t2"]
        assert await ids(order_by="updated_at") == ["t0", "t2", "t1"]
        pages = [await store.memory.list_threads(page=p, per_page=2) for p in range(2)]
        assert [[t.id for t in p.items] for p in pages] == [["t2", "t1"], ["t0"]]
        assert [(p.total, p.has_more) for p in pages] == [(3, True), (3, False)]
        await store.memory.delete_thread("t1")
        assert await ids() == ["t2", "t0"]

    async def test_mastra_4333_list_threads_filtered_by_metadata(self, store: Storage) -> None:
        # Mastra #4333 ("we use metadata on threads to categorize types of threads"), as
        # Mastra 1.x's listThreads answers it: filter.metadata {category: "support"}, with or
        # without a resource, keys ANDed, with the listing's ordering and paging.
        mem = store.memory
        rows = [
            ("t0", "alice", {"category": "support", "projectId": "p1", "n": 1}),
            ("t1", "alice", {"category": "support", "projectId": "p2"}),
            ("t2", "alice", {"category": "sales", "projectId": "p1"}),
            ("t3", "bob", {"category": "support", "projectId": "p1", "n": 1.0}),
            ("t4", "bob", {"category": ["support"], "projectId": "p1"}),  # a list: not indexed
        ]
        for i, (thread_id, owner, metadata) in enumerate(rows):
            await mem.save_thread(
                Thread(id=thread_id, resource_id=owner, metadata=metadata, created_at=at(i))
            )

        async def ids(resource_id: str | None = None, **kw: Any) -> list[str]:
            return [t.id for t in (await mem.list_threads(resource_id, **kw)).items]

        support = {"category": "support"}
        assert await ids("alice", metadata=support) == ["t1", "t0"]
        assert await ids(metadata=support) == ["t3", "t1", "t0"]
        assert await ids(metadata=support, direction="asc") == ["t0", "t1", "t3"]
        both = {"category": "support", "projectId": "p1"}
        assert await ids(metadata=both) == ["t3", "t0"]
        assert await ids("alice", metadata=both) == ["t0"]
        assert await ids(metadata={**both, "n": 1}) == ["t3", "t0"]  # 1 == 1.0, as in JSON
        assert await ids(metadata={"projectId": "p3"}) == []
        assert await ids(metadata={}) == await ids()
        paged = [await mem.list_threads(metadata=both, page=p, per_page=1) for p in range(3)]
        assert [[t.id for t in p.items] for p in paged] == [["t3"], ["t0"], []]
        assert [(p.total, p.has_more) for p in paged] == [(2, True), (2, False), (2, False)]
        # Updates, saves, moves and deletes keep the index true.
        await mem.update_thread("t2", metadata={"category": "support"})
        assert await ids(metadata=both, order_by="updated_at") == ["t2", "t3", "t0"]
        await mem.update_thread("t0", metadata={"category": None})
        assert await ids(metadata=both) == ["t3", "t2"]
        assert await ids(metadata={"category": None}) == ["t0"]
        await mem.save_thread(Thread(id="t3", resource_id="bob", created_at=at(3)))
        assert await ids(metadata=both) == ["t2"]
        await mem.save_messages([msg("m1", "t1", 1)])
        assert await ids(metadata=support, order_by="updated_at") == ["t1", "t2"]
        await mem.move_thread("t1", "bob")
        assert await ids("bob", metadata=support) == ["t1"]
        assert await ids("alice", metadata=support) == ["t2"]
        await mem.delete_thread("t2")
        assert await ids(metadata=support) == ["t1"]
        # A value the index does not hold takes the key out of it.
        await mem.update_thread("t1", metadata={"category": ["support"]})
        assert await ids(metadata=support) == []
        assert (await mem.get_thread("t1")).metadata["category"] == ["support"]  # type: ignore[union-attr]
        with pytest.raises(ValidationError) as caught:
            await mem.list_threads(metadata={"category": ["support"]})
        assert caught.value.field == "metadata.category"
        with pytest.raises(ValidationError):
            await mem.list_threads(metadata="category=support")  # type: ignore[arg-type]

    async def test_a_metadata_filter_on_several_keys_too_broad_to_scan_is_refused(
        self, store: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from kvstore.domains import memory

        monkeypatch.setattr(memory, "MAX_FILTER_SCAN", 1)  # threads scanned per bucket
        # One thread more than buckets: some bucket holds two, which both keys match.
        many = (await store.keys()).buckets + 1
        for i in range(many):
            await store.memory.save_thread(
                Thread(id=f"t{i}", resource_id="r", metadata={"a": 1, "b": 1})
            )
        # One key reads its own index, however many threads match it.
        assert (await store.memory.list_threads(metadata={"a": 1})).total == many
        with pytest.raises(ValidationError) as caught:
            await store.memory.list_threads(metadata={"a": 1, "b": 1})
        assert caught.value.field == "metadata"
        await store.memory.save_thread(Thread(id="x", resource_id="r", metadata={"c": 1, "a": 1}))
        # The most selective key decides: "c" matches one thread in its bucket.
        found = await store.memory.list_threads(metadata={"a": 1, "c": 1})
        assert [t.id for t in found.items] == ["x"]

    async def test_move_thread_moves_its_messages_resource_too(self, store: Storage) -> None:
        mem = store.memory
        await mem.save_thread(Thread(id="t", resource_id="alice", updated_at=at(0)))
        await mem.save_thread(Thread(id="keep", resource_id="alice"))
        # More than one slice of messages (250 per round trip).
        await mem.save_messages([msg(f"m{i:03}", "t", i) for i in range(260)])
        before = await mem.get_thread("t")
        assert before is not None
        moved = await mem.move_thread("t", "bob")
        assert (moved.id, moved.resource_id) == ("t", "bob")
        assert moved.updated_at is not None
        assert before.updated_at is not None
        assert moved.updated_at >= before.updated_at
        assert await mem.get_thread("t") == moved
        assert [t.id for t in (await mem.list_threads("alice")).items] == ["keep"]
        assert [t.id for t in (await mem.list_threads("bob")).items] == ["t"]
        listed = await mem.list_messages("t", per_page=1000)
        assert [m.id for m in listed.items] == [f"m{i:03}" for i in range(260)]
        assert {m.resource_id for m in listed.items} == {"bob"}
        assert [m.content for m in listed.items] == [f"text of m{i:03}" for i in range(260)]
        assert (await mem.get_messages(["m259"]))[0].resource_id == "bob"
        # Moving again (to finish a move cut short) changes nothing more.
        assert (await mem.move_thread("t", "bob")).resource_id == "bob"
        assert (await mem.list_messages("t", per_page=1000)).items == listed.items
        with pytest.raises(NotFoundError):
            await mem.move_thread("missing", "bob")
        assert await mem.get_thread("missing") is None

    async def test_clone_thread_copies_messages_under_new_ids(self, store: Storage) -> None:
        mem = store.memory
        await mem.save_thread(
            Thread(id="src", resource_id="alice", title="Trip", metadata={"k": "v"})
        )
        await mem.save_messages([msg(f"m{i}", "src", i) for i in range(5)])
        clone, copies = await mem.clone_thread("src", "copy")
        assert (clone.id, clone.resource_id, clone.title) == ("copy", "alice", "Trip")
        assert clone.metadata["k"] == "v"
        assert clone.metadata["clone"]["source_thread_id"] == "src"
        assert clone.metadata["clone"]["last_message_id"] == "m4"
        assert datetime.fromisoformat(clone.metadata["clone"]["cloned_at"]).tzinfo is not None
        assert await mem.get_thread("copy") == clone
        listed = (await mem.list_messages("copy")).items
        assert listed == copies
        assert [m.content for m in listed] == [f"text of m{i}" for i in range(5)]
        assert [m.created_at for m in listed] == [at(i) for i in range(5)]
        assert {m.thread_id for m in listed} == {"copy"}
        assert not {m.id for m in listed} & {f"m{i}" for i in range(5)}
        assert await mem.get_messages([listed[0].id]) == [listed[0]]
        # The source is untouched.
        assert [m.id for m in (await mem.list_messages("src")).items] == [f"m{i}" for i in range(5)]
        # Selections: the newest n, a window, chosen ids; another resource and title.
        _, last2 = await mem.clone_thread("src", "c2", message_limit=2)
        assert [m.content for m in last2] == ["text of m3", "text of m4"]
        window = DateRange(start=at(1), end=at(3), end_exclusive=True)
        _, ranged = await mem.clone_thread("src", "c3", date_range=window)
        assert [m.content for m in ranged] == ["text of m1", "text of m2"]
        picked, chosen = await mem.clone_thread(
            "src",
            "c4",
            resource_id="bob",
            title="Mine",
            message_ids=["m0", "m3", "other"],
            message_limit=1,
        )
        assert [m.content for m in chosen] == ["text of m3"]
        assert (picked.resource_id, picked.title) == ("bob", "Mine")
        assert {m.resource_id for m in chosen} == {"bob"}
        assert [t.id for t in (await mem.list_threads("bob")).items] == ["c4"]
        assert (await mem.list_threads(metadata={"k": "v"})).total == 5
        _, windowed = await mem.clone_thread(
            "src", "c7", message_ids=["m4", "m0", "m2"], date_range=DateRange(end=at(2))
        )
        assert [m.content for m in windowed] == ["text of m0", "text of m2"]
        empty, none = await mem.clone_thread("src", "c5", message_ids=[])
        assert none == []
        assert empty.metadata["clone"]["last_message_id"] is None
        # A taken id or a missing source writes nothing.
        count = await mem.count_messages(["copy"])
        with pytest.raises(ValidationError) as caught:
            await mem.clone_thread("src", "copy", message_limit=1)
        assert caught.value.field == "new_thread_id"
        assert await mem.count_messages(["copy"]) == count
        assert await mem.get_thread("copy") == clone
        with pytest.raises(NotFoundError):
            await mem.clone_thread("missing", "c6")
        assert await mem.get_thread("c6") is None

    async def test_clone_thread_refuses_more_than_it_copies_at_once(
        self, store: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from kvstore.domains import memory

        monkeypatch.setattr(memory, "MAX_CLONE", 2)
        await store.memory.save_thread(Thread(id="src", resource_id="alice"))
        await store.memory.save_messages([msg(f"m{i}", "src", i) for i in range(3)])
        with pytest.raises(ValidationError) as caught:
            await store.memory.clone_thread("src", "copy")
        assert caught.value.field == "message_limit"
        assert await store.memory.get_thread("copy") is None
        _, copies = await store.memory.clone_thread(
            "src", "copy", date_range=DateRange(start=at(1))
        )
        assert [m.content for m in copies] == ["text of m1", "text of m2"]

    async def test_list_messages_merged_over_threads_and_a_resource(self, store: Storage) -> None:
        mem = store.memory
        for thread_id, owner in [("x", "alice"), ("y", "alice"), ("z", "bob")]:
            await mem.save_thread(Thread(id=thread_id, resource_id=owner, created_at=at(0)))
        # x at 0, 2, 4, 6; y at 0, 3, 6, 9; z at 1.
        await mem.save_messages(
            [msg(f"x{i}", "x", 2 * i) for i in range(4)]
            + [msg(f"y{i}", "y", 3 * i) for i in range(4)]
            + [msg("z0", "z", 1)]
        )

        async def ids(**kw: Any) -> list[str]:
            return [m.id for m in (await mem.list_messages_merged(**kw)).items]

        everything = ["x0", "y0", "x1", "y1", "x2", "x3", "y2", "y3"]
        assert await ids(thread_ids=["x", "y"]) == everything
        # Equal times keep the order the threads were given in.
        assert (await ids(thread_ids=["y", "x"]))[:2] == ["y0", "x0"]
        assert await ids(thread_ids=["x", "y"], direction="desc") == everything[::-1]
        assert await ids(resource_id="alice") == everything
        assert await ids(thread_ids=["x", "z", "missing"]) == ["x0", "z0", "x1", "x2", "x3"]
        pages = [
            await mem.list_messages_merged(resource_id="alice", page=p, per_page=3)
            for p in range(3)
        ]
        assert [m.id for p in pages for m in p.items] == everything
        assert [(p.total, p.has_more) for p in pages] == [(8, True), (8, True), (8, False)]
        window = DateRange(start=at(2), end=at(6), end_exclusive=True)
        ranged = await mem.list_messages_merged(
            thread_ids=["x", "y"], date_range=window, direction="desc"
        )
        assert ([m.id for m in ranged.items], ranged.total) == (["x2", "y1", "x1"], 3)
        assert (await mem.list_messages_merged(resource_id="nobody")).total == 0
        with pytest.raises(ValidationError):
            await mem.list_messages_merged()
        with pytest.raises(ValidationError):
            await mem.list_messages_merged(thread_ids="x")
        with pytest.raises(ValidationError):
            await mem.list_messages_merged(thread_ids=["x"], resource_id="alice")
        with pytest.raises(ValidationError) as caught:  # each thread would be read 2,000 deep
            await mem.list_messages_merged(thread_ids=["x"], page=1, per_page=1000)
        assert caught.value.field == "page"

    async def test_issue_12_calls_round_trips(self, store: Storage) -> None:
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()
        mem = storage.memory
        await mem.save_thread(Thread(id="t", resource_id="alice", metadata={"k": 1}))
        await mem.save_messages([msg("m1", "t", 1), msg("m2", "t", 2)])
        calls: list[tuple[Any, int]] = [
            (mem.list_threads, 1),
            (lambda: mem.list_threads(metadata={"k": 1}), 1),
            (lambda: mem.list_threads("alice", metadata={"k": 1, "j": 2}), 1),
            (lambda: mem.move_thread("t", "bob"), 1),
            (lambda: mem.clone_thread("t", "t2"), 2),
            (lambda: mem.list_messages_merged(thread_ids=["t", "t2"]), 1),
            (lambda: mem.list_messages_merged(resource_id="bob", direction="desc"), 2),
        ]
        for number, (call, round_trips) in enumerate(calls):
            before = counting.round_trips
            await call()
            assert (number, counting.round_trips - before) == (number, round_trips)
