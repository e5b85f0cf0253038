"""BYLEX with LIMIT on sorted sets whose scores differ, against real Redis.

Redis defines BYLEX only for one score; with several, small sets (listpacks) answer as
Redis walks them: from the first member in range, step over ``offset`` members without
checking them, then take members while they are within the far bound. The step can leave
the range and land on members in range again. The state machine found this once
(``ZRANGE {t}z + (a BYLEX REV LIMIT 5 1`` gave ``d`` on Redis, nothing on the memory
driver); this grid covers the family.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kvstore.drivers import MemoryDriver
from kvstore.drivers.redis import RedisDriver

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

SETS = {
    "mixed": (1, "a", 1, "b", 2, "c", "-inf", "d", "+inf", "e", 1.5, "aa"),
    "two scores": (0, "m", 0, "k", 1, "b", 1, "z", 0, "a"),
    "one score": (0, "a", 0, "b", 0, "c", 0, "d"),
}
BOUNDS = ["-", "+", "[a", "(a", "[b", "(c", "[d", "(z", "[aa"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _queries(key: str) -> list[tuple[Any, ...]]:
    queries: list[tuple[Any, ...]] = []
    for low, high in itertools.product(BOUNDS, repeat=2):
        for offset, count in itertools.product([0, 1, 2, 3, 5, 7, -1], [-1, 0, 1, 2, 10]):
            limit = ("LIMIT", offset, count)
            queries += [
                ("ZRANGE", key, low, high, "BYLEX", *limit),
                ("ZRANGE", key, high, low, "BYLEX", "REV", *limit),
                ("ZRANGEBYLEX", key, low, high, *limit),
                ("ZREVRANGEBYLEX", key, high, low, *limit),
            ]
    return queries


@pytest.mark.parametrize("members", list(SETS.values()), ids=list(SETS))
async def test_bylex_with_limit_matches_redis(
    differential_redis_url: str, members: tuple[Any, ...]
) -> None:
    memory = MemoryDriver()
    async with RedisDriver.from_url(differential_redis_url) as redis:
        for driver in (memory, redis):
            await driver.execute([("ZADD", "z", *members)])
        queries = _queries("z")
        expected = await redis.execute(queries)
        got = await memory.execute(queries)
    mismatches = [(q, g, e) for q, g, e in zip(queries, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches[:5]
