"""The long-term store domain's conformance suite (``store.langgraph_items``) on every backend.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
backend runs it. Time moves through the domain's clock (``utc_now``), never by waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kvstore import (
    GetItem,
    ListNamespaces,
    PutItem,
    SearchItems,
    Storage,
    StoreItem,
    ValidationError,
)
from kvstore.domains import langgraph_items
from tests.support.counting import CountingDriver

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def put(namespace: tuple[str, ...], key: str, value: Any, ttl: float | None = None) -> PutItem:
    return PutItem(namespace=namespace, key=key, value=value, ttl=ttl)


def get(namespace: tuple[str, ...], key: str, refresh: bool = True) -> GetItem:
    return GetItem(namespace=namespace, key=key, refresh_ttl=refresh)


async def _export_all(store: Storage, count: int) -> list[StoreItem]:
    """Every item of ``store``, through its export walk."""
    exported: list[StoreItem] = []
    cursor = None
    while True:
        chunk = await store.langgraph_items.export_items(cursor=cursor, count=count)
        exported += chunk.items
        cursor = chunk.cursor
        if cursor is None:
            return exported


class LangGraphItemsSuite:
    """Tests of ``store.langgraph_items``; needs a ``store`` fixture (a :class:`Storage`)."""

    @pytest.fixture
    def clock(self, monkeypatch: pytest.MonkeyPatch) -> _Clock:
        clock = _Clock()
        monkeypatch.setattr(langgraph_items, "utc_now", clock)
        return clock

    async def test_items_round_trip(self, store: Storage, clock: _Clock) -> None:
        items = store.langgraph_items
        value = {"text": "héllo \x00 {x}", "n": 1.5, "nested": {"a": [1, None, True]}}
        odd = ("mem:{1}", "ü*\n", '["x"]')
        assert await items.batch([put(odd, "k:{}\x00", value, ttl=2)]) == [None]
        want = StoreItem(
            namespace=odd,
            key="k:{}\x00",
            value=value,
            created_at=T0,
            updated_at=T0,
            ttl=2,
            expires_at=T0 + timedelta(minutes=2),
        )
        assert await items.batch([get(odd, "k:{}\x00")]) == [want]
        # Ids that would collide if labels and keys were simply joined stay apart.
        await items.batch([put(("a", "b"), "c", {"v": 1}), put(("a",), "b\x00c", {"v": 2})])
        got = await items.batch([get(("a", "b"), "c"), get(("a",), "b\x00c"), get(("a",), "")])
        assert [i.value if i else None for i in got] == [{"v": 1}, {"v": 2}, None]
        clock.advance(seconds=10)
        await items.batch([put(odd, "k:{}\x00", {"v": 3})])
        (again,) = await items.batch([get(odd, "k:{}\x00")])
        assert isinstance(again, StoreItem)
        assert (again.created_at, again.updated_at) == (T0, T0 + timedelta(seconds=10))
        assert (again.ttl, again.expires_at) == (None, None)
        await items.batch([put(odd, "k:{}\x00", None), put(("a",), "missing", None)])
        assert await items.batch([get(odd, "k:{}\x00")]) == [None]
        assert await items.batch([ListNamespaces()]) == [[("a",), ("a", "b")]]

    async def test_items_batch_is_one_round_trip_reads_first_last_put_wins(
        self, store: Storage
    ) -> None:
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()  # the layout check, once per Storage
        items = storage.langgraph_items
        await items.batch([put(("u", str(i)), "k", {"i": i}) for i in range(5)])
        before = counting.round_trips
        results = await items.batch(
            [
                put(("u", "0"), "k", {"i": 10}),
                get(("u", "0"), "k"),
                put(("u", "0"), "k", {"i": 20}),
                get(("u", "9"), "k"),
                SearchItems(namespace_prefix=("u",), limit=3),
                ListNamespaces(prefix=("u",), limit=2, offset=1),
                put(("u", "9"), "k", {"i": 9}),
                put(("u", "1"), "k", None),
            ]
        )
        assert counting.round_trips - before == 1
        assert results[0] is None
        assert isinstance(results[1], StoreItem)
        assert results[1].value == {"i": 0}
        assert results[3] is None
        assert isinstance(results[4], list)
        assert len(results[4]) == 3
        assert results[5] == [("u", "1"), ("u", "2")]
        got = await items.batch([get(("u", "0"), "k"), get(("u", "9"), "k"), get(("u", "1"), "k")])
        assert [i.value if i else None for i in got] == [{"i": 20}, {"i": 9}, None]
        assert await items.batch([]) == []

    async def test_items_search_filters_by_equality(self, store: Storage, clock: _Clock) -> None:
        items = store.langgraph_items
        long_text = "x" * 200
        values = [
            {"kind": "note", "n": 1, "flag": True, "text": long_text},
            {"kind": "note", "n": 1.0, "flag": False, "text": long_text + "y"},
            {"kind": "todo", "n": 2, "flag": 1, "text": None},
            {"kind": "note", "n": "1", "weird\x00field": "a\x00b"},
            {"kind": ["note"], "n": {"$eq": 1}},
        ]
        for i, value in enumerate(values):
            clock.advance(seconds=1)
            await items.batch([put(("s", str(i % 2)), f"k{i}", value)])

        async def keys(prefix: tuple[str, ...] = ("s",), **filter_: Any) -> list[str]:
            (found,) = await items.batch([SearchItems(namespace_prefix=prefix, filter=filter_)])
            assert isinstance(found, list)
            return [item.key for item in found]

        assert await keys() == ["k4", "k3", "k2", "k1", "k0"]
        assert await keys(kind="note") == ["k3", "k1", "k0"]
        assert await keys(n=1) == ["k1", "k0"]  # 1 == 1.0, but not "1" nor {"$eq": 1}
        assert await keys(n="1") == ["k3"]
        assert await keys(flag=True) == ["k0"]  # True is not 1
        assert await keys(flag=1) == ["k2"]
        assert await keys(text=long_text) == ["k0"]
        assert await keys(text=None) == ["k2"]
        assert await keys(**{"weird\x00field": "a\x00b"}) == ["k3"]
        assert await keys(("s", "0"), kind={"$eq": "note"}, n=1) == ["k0"]
        assert await keys(("s", "1"), kind="note") == ["k3", "k1"]
        assert await keys(("s", "2")) == []
        assert await keys(kind="absent") == []

    async def test_items_search_pages_and_goes_past_its_scan_budget(self, store: Storage) -> None:
        # One bucket on every backend, so that one walk holds every candidate.
        counting = CountingDriver(store.driver)
        one = Storage(counting, namespace=store.namespace + "-b1", buckets=1)
        items = one.langgraph_items
        count = langgraph_items.SCAN_BUDGET * 2 + 50
        # "a" and "b" each hold for about half the items, both for a few: the walk of
        # either condition skips more than the scan budget.
        values = [{"a": 1 - i % 2, "b": 1 if i % 2 or i % 97 == 0 else 0} for i in range(count)]
        await items.batch([put(("p", f"n{i % 7}"), f"k{i:04d}", v) for i, v in enumerate(values)])
        # All items share one timestamp: ties go by id, newest (highest) first.
        ordered = sorted(range(count), key=lambda i: f'["p","n{i % 7}","k{i:04d}"]')
        ordered.reverse()
        rare = [f"k{i:04d}" for i in ordered if values[i]["b"] == 1 and values[i]["a"] == 1]
        before = counting.round_trips
        (found,) = await items.batch(
            [SearchItems(namespace_prefix=("p",), filter={"a": 1, "b": 1}, limit=100)]
        )
        assert counting.round_trips - before == 2  # the walk went on where it stopped
        assert isinstance(found, list)
        assert [i.key for i in found] == rare
        everything = [f"k{i:04d}" for i in ordered]
        for offset, limit in [(0, 10), (37, 100), (count - 5, 10)]:
            (page,) = await items.batch(
                [SearchItems(namespace_prefix=("p",), limit=limit, offset=offset)]
            )
            assert isinstance(page, list)
            assert [i.key for i in page] == everything[offset : offset + limit]

    async def test_items_spread_over_buckets_merge_in_order(self, store: Storage) -> None:
        spread = Storage(store.driver, namespace=store.namespace + "-b4", buckets=4)
        items = spread.langgraph_items
        namespaces = [("t", f"{i:02d}", "x" if i % 3 else "y") for i in range(24)]
        await items.batch([put(ns, "k", {"i": i}) for i, ns in enumerate(namespaces)])
        listing = ListNamespaces(prefix=("t",), limit=5, offset=7)
        assert await items.batch([listing]) == [sorted(namespaces)[7:12]]
        assert await items.batch([ListNamespaces(suffix=("y",), limit=100)]) == [
            sorted(ns for ns in namespaces if ns[-1] == "y")
        ]
        assert await items.batch([ListNamespaces(max_depth=1)]) == [[("t",)]]
        (page,) = await items.batch([SearchItems(namespace_prefix=("t",), limit=6, offset=4)])
        assert isinstance(page, list)
        ids = sorted((f'["t","{ns[1]}","{ns[2]}","k"]', ns) for ns in namespaces)[::-1]
        assert [i.namespace for i in page] == [ns for _, ns in ids[4:10]]

    async def test_items_never_return_what_expired(self, store: Storage, clock: _Clock) -> None:
        items = store.langgraph_items
        many = langgraph_items.PURGE_LIMIT * 2 + 3
        await items.batch([put(("e", str(i)), "k", {"i": i}, ttl=1) for i in range(many)])
        await items.batch([put(("keep",), "k", {"i": -1}, ttl=3), put(("e", "0"), "x", {"i": 0})])
        clock.advance(seconds=30)
        assert len((await items.batch([ListNamespaces(limit=1000)]))[0] or []) == many + 1
        clock.advance(seconds=31)  # every ("e", i) item expired, none purged yet
        assert await items.batch([ListNamespaces(limit=1000)]) == [[("e", "0"), ("keep",)]]
        assert await items.batch([get(("e", "1"), "k")]) == [None]
        (found,) = await items.batch([SearchItems(namespace_prefix=(), limit=1000)])
        assert isinstance(found, list)
        assert [i.namespace for i in found] == [("keep",), ("e", "0")]
        # Reads restart the timer (unless asked not to); writes always do.
        clock.advance(minutes=2)
        await items.batch([get(("keep",), "k")])
        clock.advance(minutes=2)
        assert await items.batch([get(("keep",), "k", refresh=False)]) != [None]
        clock.advance(minutes=1, seconds=1)
        assert await items.batch([get(("keep",), "k")]) == [None]
        assert await items.batch([ListNamespaces()]) == [[("e", "0")]]

    async def test_items_refuse_bad_input_and_write_nothing(self, store: Storage) -> None:
        items = store.langgraph_items
        good = put(("ok",), "k", {"v": 1})
        bad_ops: list[Any] = [
            put((), "k", {"v": 1}),
            put("ok", "k", {"v": 1}),  # a bare string is not a tuple of labels
            put(("a", ""), "k", {"v": 1}),
            put(("a\x00b",), "k", {"v": 1}),
            put(("ok",), "\ud800", {"v": 1}),
            put(("ok",), "k", ["not", "a", "mapping"]),
            put(("ok",), "k", {"v": float("nan")}),
            put(("ok",), "k", {"v": 1}, ttl=0),
            put(("ok",), "k", {"v": 1}, ttl=True),  # type: ignore[arg-type]
            SearchItems(namespace_prefix=("ok",), filter={"v": {"$gt": 1}}),
            SearchItems(namespace_prefix=("ok",), filter={"v": [1]}),
            SearchItems(namespace_prefix=("ok",), limit=0),
            SearchItems(namespace_prefix=("ok",), offset=-1),
            ListNamespaces(max_depth=0),
            ListNamespaces(prefix="ok"),  # type: ignore[arg-type]
            {"namespace": ("ok",), "key": "k"},
        ]
        for bad in bad_ops:
            with pytest.raises(ValidationError):
                await items.batch([good, bad])
        with pytest.raises(ValidationError):
            await items.batch(good)  # type: ignore[arg-type]
        assert await items.batch([get(("ok",), "k"), ListNamespaces()]) == [None, []]

    async def test_items_listing_folds_namespaces_without_reading_each(
        self, store: Storage
    ) -> None:
        counting = CountingDriver(store.driver)
        one = Storage(counting, namespace=store.namespace + "-fold", buckets=1)
        items = one.langgraph_items
        namespaces = [(top, f"{i:03d}", "z") for top in ("a", "b", "c") for i in range(250)]
        for first in range(0, len(namespaces), 250):
            await items.batch([put(ns, "k", {}) for ns in namespaces[first : first + 250]])
        before = counting.round_trips
        assert await items.batch([ListNamespaces(max_depth=1)]) == [[("a",), ("b",), ("c",)]]
        # A page, then one per result folded: never one per namespace.
        assert counting.round_trips - before <= 4
        (two,) = await items.batch([ListNamespaces(prefix=("b",), max_depth=2, offset=240)])
        assert two == [("b", f"{i:03d}") for i in range(240, 250)]
        assert await items.batch([ListNamespaces(suffix=("z",), max_depth=1)]) == [
            [("a",), ("b",), ("c",)]
        ]

    async def test_items_export_and_restore_keep_every_item_exactly(
        self, store: Storage, clock: _Clock
    ) -> None:
        items = store.langgraph_items
        for i in range(7):
            clock.advance(seconds=1)
            await items.batch(
                [
                    put(("x", f"n{i % 3}"), f"k{i}", {"i": i, "kind": "ab"[i % 2]}),
                    put(("x:{y}", "ü\n"), f"t{i}", {"i": i}, ttl=10),
                ]
            )
        await items.batch([put(("gone",), "k", {}, ttl=1)])
        clock.advance(seconds=61)  # ("gone",) expired: not exported
        exported = await _export_all(store, 3)
        assert len(exported) == 14
        assert {(i.namespace, i.key) for i in exported} == {
            *((("x", f"n{i % 3}"), f"k{i}") for i in range(7)),
            *((("x:{y}", "ü\n"), f"t{i}") for i in range(7)),
        }
        copy = Storage(store.driver, namespace=store.namespace + "-copy", buckets=4)
        assert await copy.langgraph_items.restore_items(exported) == exported
        assert await copy.langgraph_items.restore_items([]) == []
        again = await _export_all(copy, 100)

        def key(item: StoreItem) -> tuple[tuple[str, ...], str]:
            return item.namespace, item.key

        assert sorted(again, key=key) == sorted(exported, key=key)
        # The indexes are rebuilt: the same searches and listings, times as exported.
        for op in [
            SearchItems(namespace_prefix=("x",), filter={"kind": "a"}, limit=10, refresh_ttl=False),
            SearchItems(namespace_prefix=(), limit=20, offset=3, refresh_ttl=False),
            ListNamespaces(),
        ]:
            assert await copy.langgraph_items.batch([op]) == await items.batch([op])
        with pytest.raises(ValidationError):
            await copy.langgraph_items.restore_items([{"namespace": ["x"], "key": "k"}])
        with pytest.raises(ValidationError):
            await copy.langgraph_items.restore_items(exported[0])  # type: ignore[arg-type]

    async def test_items_search_offset_beyond_one_call(self, store: Storage) -> None:
        counting = CountingDriver(store.driver)
        one = Storage(counting, namespace=store.namespace + "-off", buckets=1)
        items = one.langgraph_items
        keys = [f"k{i:04d}" for i in range(1050)]
        await items.batch([put(("o",), key, {"v": 1}) for key in keys])
        before = counting.round_trips
        (page,) = await items.batch([SearchItems(namespace_prefix=("o",), offset=1035, limit=10)])
        assert isinstance(page, list)
        # Equal timestamps: newest first is the highest key first.
        assert [i.key for i in page] == keys[::-1][1035:1045]
        assert counting.round_trips - before == 2  # no script call reads more than 1000
