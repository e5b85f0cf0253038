"""The long-term store's cost (``store.langgraph_items.batch``) on a real server.

Counts include the commands the script runs and the ``EVALSHA`` itself, on warm calls (see
``conftest``); each must be the same whether hundreds or thousands of items are stored.
Every batch is one ``EVALSHA`` per bucket touched (one bucket here), which starts with the
expiry purge's ``ZRANGEBYSCORE`` (nothing has expired in these tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from kvstore import GetItem, ListNamespaces, PutItem, SearchItems, Storage
from tests.cost.conftest import CountCommands

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

SIZES = (300, 2_000)
#: EVALSHA and the purge's ZRANGEBYSCORE.
BASE = 2


async def _fill(store: Storage, start: int, upto: int) -> None:
    for first in range(start, upto, 200):
        await store.langgraph_items.batch(
            [
                PutItem(
                    namespace=("users", f"u{i % 10}"),
                    key=f"k{i}",
                    value={"kind": "note", "tag": "x", "i": i},
                )
                for i in range(first, min(first + 200, upto))
            ]
        )


async def test_langgraph_items_cost_is_flat(
    redis_store: Storage, count_commands: CountCommands
) -> None:
    items = redis_store.langgraph_items

    def call(*ops: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: items.batch(list(ops))

    costs: list[tuple[int, ...]] = []
    for previous, stored in zip((0, *SIZES), SIZES, strict=False):
        await _fill(redis_store, previous, stored)
        restored = (await items.export_items(count=2)).items
        calls = [
            call(GetItem(namespace=("users", "u1"), key="k1")),
            call(
                GetItem(namespace=("users", "u1"), key="k1"),
                GetItem(namespace=("users", "u2"), key="no"),
            ),
            call(PutItem(namespace=("users", "u1"), key="k1", value={"kind": "note", "tag": "x"})),
            call(PutItem(namespace=("new", str(stored)), key="k", value={"a": 1}, ttl=5)),
            call(PutItem(namespace=("new", str(stored)), key="k", value=None)),
            call(SearchItems(namespace_prefix=("users",), limit=10)),
            call(SearchItems(namespace_prefix=("users",), limit=10, offset=20)),
            call(SearchItems(namespace_prefix=("users", "u3"), filter={"kind": "note"}, limit=10)),
            call(SearchItems(namespace_prefix=(), filter={"kind": "note", "tag": "x"}, limit=10)),
            call(ListNamespaces(prefix=("users",), limit=5)),
            call(ListNamespaces(max_depth=1)),
            lambda: items.export_items(count=50),
            lambda r=restored: items.restore_items(r),
        ]
        costs.append(tuple([await count_commands(c()) for c in calls]))
    assert costs[0] == costs[1]
    assert costs[0] == (
        BASE + 1,  # HGET
        BASE + 2,  # two gets on one bucket: one script
        BASE + 5,  # HGET, ZREM of the old index entries, ZREM expiry, HSET, ZADD index
        BASE + 7,  # a new namespace: HINCRBY and ZADD to both namespace indexes, with a TTL
        BASE + 8,  # a delete that empties its namespace
        BASE + 4 + 10,  # ZLEXCOUNT (the rarest condition), the page (3), one HGET per item
        BASE + 4 + 30,  # offset 20: the bucket reads offset + limit items
        BASE + 4 + 10,
        BASE + 5 + 10 + 10,  # two conditions: one ZSCORE per candidate for the second
        BASE + 1,  # ZRANGEBYLEX
        BASE + 1,
        6,  # export: EVALSHA, ZLEXCOUNT x2, ZRANGE, HMGET, and a ZLEXCOUNT for the total
        BASE + 2 * 5,  # restore of two existing items: as two puts
    )
