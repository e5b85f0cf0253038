"""Item 4, at the narrow waist: a str argument UTF-8 cannot encode never reaches a backend.

Every driver encodes all the arguments of a batch before sending any, so a lone surrogate
anywhere in a batch is a ValidationError and nothing of the batch is applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kvstore import ValidationError
from kvstore.drivers import Driver, MemoryDriver, Script
from kvstore.upstash_server import UpstashServer

pytestmark = pytest.mark.anyio


SET = Script("hardening_set", "return redis.call('SET', KEYS[1], ARGV[1])")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis), "upstash"])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[Driver]:
    if request.param == "memory":
        async with MemoryDriver() as memory:
            yield memory
    elif request.param == "redis":
        from kvstore.drivers.redis import RedisDriver

        url = request.getfixturevalue("hardening_redis_url")
        async with RedisDriver.from_url(url) as redis:
            yield redis
    else:
        from kvstore.drivers.upstash import UpstashDriver

        server: UpstashServer = request.getfixturevalue("upstash_memory_server")
        async with UpstashDriver(server.url, server.token) as upstash:
            await upstash.execute([("FLUSHDB",)])
            yield upstash


@pytest.mark.parametrize("text", ["\ud800", "key-\udfff", "\udc80tail"])
async def test_a_lone_surrogate_in_a_batch_sends_nothing(driver: Driver, text: str) -> None:
    for atomic in (False, True):
        with pytest.raises(ValidationError, match="surrogate"):
            await driver.execute([("SET", "first", "1"), ("SET", "k", text)], atomic=atomic)
        with pytest.raises(ValidationError, match="surrogate"):
            await driver.execute([("SET", "first", "1"), ("SET", text, "v")], atomic=atomic)
    with pytest.raises(ValidationError, match="surrogate"):
        await driver.run(SET, [text], ["v"])
    with pytest.raises(ValidationError, match="surrogate"):
        await driver.run(SET, ["first"], [text])
    assert await driver.execute([("EXISTS", "first", "k")]) == [0]


async def test_text_that_is_text_still_goes_through(driver: Driver) -> None:
    # Astral characters (a surrogate pair in UTF-16, one code point in Python) are text.
    await driver.execute([("SET", "\U0001f600", "é\x00\U0001f600")])
    assert await driver.execute([("GET", "\U0001f600")]) == ["é\x00\U0001f600".encode()]
