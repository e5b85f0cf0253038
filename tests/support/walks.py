"""Helpers for the export walks, whose chunks go bucket by bucket (oldest first in each)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from kvstore import Storage
from kvstore.records import Chunk

T = TypeVar("T")


async def walk_all(
    export: Callable[..., Awaitable[Chunk[T]]], count: int = 100
) -> tuple[list[T], set[int]]:
    """Every item of a walk, and every ``total`` its chunks reported."""
    items: list[T] = []
    totals: set[int] = set()
    cursor = None
    while True:
        chunk = await export(cursor=cursor, count=count)
        items += chunk.items
        totals.add(chunk.total)
        if (cursor := chunk.cursor) is None:
            return items, totals


async def assert_bucket_order(
    store: Storage,
    walked: Sequence[Any],
    owner: Callable[[Any], str],
    when: Callable[[Any], datetime],
) -> None:
    """Items of the same bucket come oldest first, and buckets one after another."""
    keys = await store.keys()
    buckets = [keys.bucket_of(owner(item)).number for item in walked]
    assert buckets == sorted(buckets)
    for a, b, ba, bb in zip(walked, walked[1:], buckets, buckets[1:], strict=False):
        if ba == bb:
            assert when(a) <= when(b)
