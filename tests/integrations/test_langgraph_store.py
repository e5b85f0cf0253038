"""KVStoreStore on every backend: the behaviours of LangGraph's own store tests, ported.

Where LangGraph's ``InMemoryStore`` defines the answer (namespace listings, batch
semantics, validation), the same calls go to both stores and the answers are compared.
Time is LangGraph's business only through TTLs; those tests move kvstore's clock (the
domain's ``utc_now``) instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

pytest.importorskip("langgraph.store.base")

from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from kvstore import Storage, SyncStorage, ValidationError
from kvstore.domains import langgraph_items
from kvstore.integrations.langgraph import KVStoreStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """kvstore's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(langgraph_items, "utc_now", clock)
    return clock


@pytest.fixture
async def kv(store: Storage) -> AsyncIterator[KVStoreStore]:
    return KVStoreStore(store)


NAMESPACES = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("b", "a", "f"),
    ("users", "123"),
    ("users", "456", "settings"),
    ("admin", "users", "789"),
]


async def _fill(*stores: Any) -> None:
    for s in stores:
        for i, namespace in enumerate(NAMESPACES):
            await s.aput(namespace, f"id_{i}", {"i": i})


# -- get, put, delete ---------------------------------------------------------------------------


async def test_put_get_overwrite_delete(kv: KVStoreStore, clock: Clock) -> None:
    await kv.aput(("docs", "u1"), "k", {"text": "hello", "n": 1})
    item = await kv.aget(("docs", "u1"), "k")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (
        ("docs", "u1"),
        "k",
        {"text": "hello", "n": 1},
    )
    assert item.created_at == item.updated_at == T0
    clock.advance(seconds=5)
    await kv.aput(("docs", "u1"), "k", {"text": "bye"})
    again = await kv.aget(("docs", "u1"), "k")
    assert again is not None
    assert again.value == {"text": "bye"}
    # An overwrite keeps the creation time (as LangGraph's Postgres store does).
    assert again.created_at == T0
    assert again.updated_at == T0 + timedelta(seconds=5)
    assert await kv.aget(("docs", "u1"), "other") is None
    assert await kv.aget(("docs",), "k") is None
    await kv.adelete(("docs", "u1"), "k")
    assert await kv.aget(("docs", "u1"), "k") is None
    assert await kv.alist_namespaces() == []


async def test_a_batch_reads_before_its_puts_and_keeps_the_last_put(kv: KVStoreStore) -> None:
    ref = InMemoryStore()
    ns = ("test", "batch")
    for s in (kv, ref):
        await s.aput(ns, "old", {"v": 0})
    ops = [
        PutOp(ns, "k", {"v": 1}),
        GetOp(ns, "k"),
        GetOp(ns, "old"),
        PutOp(ns, "k", {"v": 2}),
        SearchOp(ns, limit=10),
        PutOp(ns, "old", None),
        ListNamespacesOp(),
    ]
    got = await kv.abatch(ops)
    want = await ref.abatch(ops)
    assert got[0] is None
    assert got[3] is None
    assert got[5] is None
    assert got[1] is None
    assert want[1] is None
    assert got[2] is not None
    assert got[2].value == {"v": 0}
    assert [i.key for i in got[4]] == [i.key for i in want[4]] == ["old"]
    assert got[6] == want[6] == [ns]
    item = await kv.aget(ns, "k")
    assert item is not None
    assert item.value == {"v": 2}
    assert await kv.aget(ns, "old") is None


async def test_sync_methods_run_on_the_stores_loop_from_a_thread(kv: KVStoreStore) -> None:
    await kv.aput(("s",), "k", {"v": 1})
    item = await anyio.to_thread.run_sync(kv.get, ("s",), "k")
    assert item is not None
    assert item.value == {"v": 1}
    await anyio.to_thread.run_sync(lambda: kv.put(("s",), "k2", {"v": 2}))
    assert [i.key for i in await kv.asearch(("s",))] == ["k2", "k"]
    with pytest.raises(asyncio.InvalidStateError, match="async methods"):
        kv.get(("s",), "k")


def test_sync_methods_without_an_event_loop_get_one_of_their_own() -> None:
    kv = KVStoreStore(Storage())
    kv.put(("s",), "k", {"v": 1})
    item = kv.get(("s",), "k")
    assert item is not None
    assert item.value == {"v": 1}
    assert kv.list_namespaces() == [("s",)]
    kv.delete(("s",), "k")
    assert kv.search(()) == []


def test_sync_methods_on_a_sync_storage() -> None:
    with SyncStorage() as store:
        kv = KVStoreStore(store)
        kv.put(("s",), "k", {"v": 1})
        item = kv.get(("s",), "k")
        assert item is not None
        assert item.value == {"v": 1}

        async def from_another_loop() -> list[str]:
            return [i.key for i in await kv.asearch(("s",))]

        assert asyncio.run(from_another_loop()) == ["k"]
        assert kv.storage is store.storage


# -- namespaces ---------------------------------------------------------------------------------


async def test_namespace_validation_matches_langgraph(kv: KVStoreStore) -> None:
    ref = InMemoryStore()
    for bad in [(), ("a", ""), ("a.b",), ("a", "b\x00"), ("langgraph", "x")]:
        for s in (kv, ref):
            with pytest.raises(InvalidNamespaceError):
                await s.aput(bad, "k", {"v": 1})
    # Through batch, the root label "langgraph" is accepted, as in LangGraph's stores; a
    # label with a period is not.
    await kv.abatch([PutOp(("langgraph", "x"), "k", {"v": 1})])
    assert await kv.aget(("langgraph", "x"), "k") is not None
    with pytest.raises(InvalidNamespaceError):
        await kv.abatch([PutOp(("a.b",), "k", {"v": 1})])
    with pytest.raises(InvalidNamespaceError):
        await kv.abatch([SearchOp(("a", ""))])
    # "langgraph" below the root is an ordinary label.
    await kv.aput(("foo", "langgraph", "foo"), "bar", {"foo": "bar"})
    found = await kv.asearch(("foo", "langgraph"))
    assert [i.value for i in found] == [{"foo": "bar"}]
    await kv.adelete(("foo", "langgraph", "foo"), "bar")
    assert await kv.aget(("foo", "langgraph", "foo"), "bar") is None


async def test_non_ascii_labels_keys_and_values(kv: KVStoreStore) -> None:
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for i, text in enumerate(texts):
        await kv.aput(("user_123", "memories", "ü"), f"ключ{i}", {"text": text})
    for i, text in enumerate(texts):
        (found,) = await kv.asearch(("user_123",), filter={"text": text})
        assert (found.key, found.namespace) == (f"ключ{i}", ("user_123", "memories", "ü"))
    assert await kv.alist_namespaces(suffix=("ü",)) == [("user_123", "memories", "ü")]


async def test_list_namespaces_matches_in_memory_store(kv: KVStoreStore) -> None:
    ref = InMemoryStore()
    await _fill(kv, ref)
    calls: list[dict[str, Any]] = [
        {},
        {"prefix": ("a",)},
        {"prefix": ("a", "b")},
        {"prefix": ("a", "*", "f")},
        {"prefix": ("*", "*", "f")},
        {"suffix": ("f",)},
        {"suffix": ("*", "f")},
        {"prefix": ("a",), "suffix": ("f",)},
        {"prefix": ("users",)},
        {"prefix": ("nothing",)},
        {"max_depth": 1},
        {"max_depth": 2},
        {"prefix": ("a", "b"), "max_depth": 3},
        {"suffix": ("f",), "max_depth": 2},
        {"limit": 3},
        {"limit": 3, "offset": 3},
        {"limit": 4, "offset": 8},
        {"offset": 20},
        {"max_depth": 2, "limit": 2, "offset": 1},
    ]
    for kwargs in calls:
        assert await kv.alist_namespaces(**kwargs) == await ref.alist_namespaces(**kwargs), kwargs


async def test_list_namespaces_pages_through_many(kv: KVStoreStore) -> None:
    ref = InMemoryStore()
    for s in (kv, ref):
        await s.abatch([PutOp(("test", f"ns{i:03d}", "x"), "k", {"i": i}) for i in range(150)])
    for offset in (0, 50, 100, 140):
        kwargs: dict[str, Any] = {"prefix": ("test",), "limit": 50, "offset": offset}
        assert await kv.alist_namespaces(**kwargs) == await ref.alist_namespaces(**kwargs)
    assert await kv.alist_namespaces(max_depth=1) == [("test",)]
    assert len(await kv.alist_namespaces(suffix=("x",), limit=1000)) == 150


async def test_list_namespaces_of_an_empty_store(kv: KVStoreStore) -> None:
    assert await kv.alist_namespaces() == []
    assert await kv.abatch(
        [ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("a",)),))]
    ) == [[]]


# -- search -------------------------------------------------------------------------------------


async def test_search_by_prefix_with_filters_limit_and_offset(
    kv: KVStoreStore, clock: Clock
) -> None:
    docs = [
        (("docs", "u1"), "a", {"kind": "note", "score": 4, "tags": ["x"]}),
        (("docs", "u1"), "b", {"kind": "todo", "score": 4.0, "done": False}),
        (("docs", "u2"), "c", {"kind": "note", "score": 5, "done": True}),
        (("docs", "u2", "deep"), "d", {"kind": "note", "score": None}),
        (("other",), "e", {"kind": "note"}),
    ]
    for namespace, key, value in docs:
        clock.advance(seconds=1)
        await kv.aput(namespace, key, value)

    async def keys(prefix: tuple[str, ...], **kwargs: Any) -> list[str]:
        return [i.key for i in await kv.asearch(prefix, **kwargs)]

    assert await keys(("docs",)) == ["d", "c", "b", "a"]  # newest first
    assert await keys(()) == ["e", "d", "c", "b", "a"]
    assert await keys(("docs", "u2")) == ["d", "c"]
    assert await keys(("docs", "u")) == []  # labels match whole
    assert await keys(("docs",), filter={"kind": "note"}) == ["d", "c", "a"]
    assert await keys(("docs",), filter={"kind": {"$eq": "note"}, "score": 4}) == ["a"]
    assert await keys(("docs",), filter={"score": 4}) == ["b", "a"]  # 4 == 4.0
    assert await keys(("docs",), filter={"done": False}) == ["b"]
    assert await keys(("docs",), filter={"score": None}) == ["d"]
    assert await keys((), filter={"kind": "note"}, limit=2) == ["e", "d"]
    assert await keys((), filter={"kind": "note"}, limit=2, offset=2) == ["c", "a"]
    assert await keys((), filter={"kind": "absent"}) == []
    found = await kv.asearch(("docs", "u1"), filter={"kind": "note"})
    assert [(i.namespace, i.key, i.value) for i in found] == [docs[0]]
    # An update moves the item to the front and out of its old filter values.
    clock.advance(seconds=1)
    await kv.aput(("docs", "u1"), "a", {"kind": "todo"})
    assert await keys(("docs",)) == ["a", "d", "c", "b"]
    assert await keys(("docs",), filter={"kind": "note"}) == ["d", "c"]
    await kv.adelete(("docs", "u2"), "c")
    assert await keys(("docs",), filter={"kind": "note"}) == ["d"]


async def test_search_refuses_what_it_cannot_serve(kv: KVStoreStore) -> None:
    await kv.aput(("docs",), "a", {"kind": "note"})
    with pytest.raises(NotImplementedError, match="semantic"):
        await kv.asearch(("docs",), query="notes about cats")
    for bad in [{"score": {"$gt": 1}}, {"meta": {"a": 1}}, {"tags": ["x"]}]:
        with pytest.raises(ValidationError):
            await kv.asearch(("docs",), filter=bad)
    assert [i.key for i in await kv.asearch(("docs",))] == ["a"]


async def test_search_matches_in_memory_store_as_sets(kv: KVStoreStore) -> None:
    ref = InMemoryStore()
    for s in (kv, ref):
        await s.abatch(
            [
                PutOp(("m", f"u{i % 3}"), f"k{i}", {"parity": i % 2, "third": str(i % 3)})
                for i in range(30)
            ]
        )
    for prefix, flt in [
        (("m",), None),
        (("m",), {"parity": 1}),
        (("m", "u1"), {"parity": 0}),
        ((), {"third": "2", "parity": 1}),
    ]:
        got = {(i.namespace, i.key) for i in await kv.asearch(prefix, filter=flt, limit=100)}
        want = {(i.namespace, i.key) for i in await ref.asearch(prefix, filter=flt, limit=100)}
        assert got == want, (prefix, flt)


# -- TTL ----------------------------------------------------------------------------------------


async def test_expired_items_are_never_returned(store: Storage, clock: Clock) -> None:
    kv = KVStoreStore(store)
    assert kv.supports_ttl
    await kv.aput(("t",), "short", {"v": 1}, ttl=1)
    await kv.aput(("t",), "long", {"v": 2}, ttl=10)
    await kv.aput(("u",), "short", {"v": 3}, ttl=1)
    clock.advance(seconds=61)
    assert await kv.aget(("t",), "short") is None
    assert [i.key for i in await kv.asearch(("t",))] == ["long"]
    assert await kv.alist_namespaces() == [("t",)]
    clock.advance(minutes=10)
    assert await kv.aget(("t",), "long") is None
    assert await kv.asearch(()) == []
    assert await kv.alist_namespaces() == []


async def test_reads_refresh_the_ttl_unless_told_not_to(store: Storage, clock: Clock) -> None:
    kv = KVStoreStore(store, ttl={"default_ttl": 1})
    await kv.aput(("t",), "a", {"v": 1})
    await kv.aput(("t",), "b", {"v": 2})
    await kv.aput(("t",), "forever", {"v": 3}, ttl=None)
    clock.advance(seconds=45)
    assert await kv.aget(("t",), "a") is not None  # a's timer restarts
    assert await kv.aget(("t",), "b", refresh_ttl=False) is not None  # b's does not
    clock.advance(seconds=45)
    assert await kv.aget(("t",), "a") is not None
    assert await kv.aget(("t",), "b", refresh_ttl=False) is None

    async def keys(**kwargs: Any) -> list[str]:
        return sorted(i.key for i in await kv.asearch(("t",), **kwargs))

    clock.advance(seconds=45)
    assert await keys() == ["a", "forever"]  # a search refreshes what it returns
    clock.advance(seconds=45)
    assert await keys(refresh_ttl=False) == ["a", "forever"]
    clock.advance(seconds=30)
    assert await keys() == ["forever"]


async def test_refresh_on_read_false_makes_reads_leave_the_ttl(
    store: Storage, clock: Clock
) -> None:
    kv = KVStoreStore(store, ttl={"default_ttl": 1, "refresh_on_read": False})
    await kv.aput(("t",), "a", {"v": 1})
    clock.advance(seconds=45)
    assert await kv.aget(("t",), "a") is not None
    clock.advance(seconds=30)
    assert await kv.aget(("t",), "a") is None
    # A write always restarts the timer.
    await kv.aput(("t",), "b", {"v": 1})
    clock.advance(seconds=45)
    await kv.aput(("t",), "b", {"v": 2})
    clock.advance(seconds=45)
    item = await kv.aget(("t",), "b")
    assert item is not None
    assert item.value == {"v": 2}


# -- in a graph ---------------------------------------------------------------------------------


async def test_a_graph_remembers_across_runs_through_the_store(backend: Any) -> None:
    """A node reads and writes long-term memory through the store LangGraph injects; a
    second store on the same data (another process, on every backend but memory) sees it."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.store.base import BaseStore

    class State(TypedDict):
        user: str
        said: str
        known: list[str]

    async def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
        namespace = ("memories", state["user"])
        await store.aput(
            namespace, f"m{len(await store.asearch(namespace))}", {"text": state["said"]}
        )
        found = await store.asearch(namespace, limit=10)
        return {"known": sorted(item.value["text"] for item in found)}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    async with backend.store() as first:
        graph = builder.compile(store=KVStoreStore(first))
        out = await graph.ainvoke({"user": "u1", "said": "likes tea", "known": []})
        assert out["known"] == ["likes tea"]
    async with backend.store() as second:
        graph = builder.compile(store=KVStoreStore(second))
        out = await graph.ainvoke({"user": "u1", "said": "lives in Oslo", "known": []})
        assert out["known"] == ["likes tea", "lives in Oslo"]
        other = await graph.ainvoke({"user": "u2", "said": "hi", "known": []})
        assert other["known"] == ["hi"]
        assert await KVStoreStore(second).alist_namespaces() == [
            ("memories", "u1"),
            ("memories", "u2"),
        ]
