"""Scripts through the REST protocol: EVALSHA first, EVAL with the source on NOSCRIPT.

The memory backing runs the same Lua as Redis (in its embedded Lua 5.1), and knows the
scripts registered in its process without a ``SCRIPT LOAD``; on Redis they are loaded by
the first ``EVAL``.
"""

from __future__ import annotations

import pytest
import redis

from kvstore.drivers.base import Script
from kvstore.drivers.upstash import UpstashDriver
from kvstore.errors import CommandError
from kvstore.upstash_server import UpstashServer

pytestmark = pytest.mark.anyio


APPEND = Script(
    "scripts-append",
    """
    local id = redis.call('XADD', KEYS[1], '*', 'body', ARGV[1])
    return {redis.call('XLEN', KEYS[1]), id and 1 or 0}
    """,
)


WRONGTYPE = Script(
    "scripts-wrongtype",
    "redis.call('SET', KEYS[1], 'text') return redis.call('HGET', KEYS[1], 'f')",
)


async def test_a_cached_script_costs_one_request_and_one_command(
    any_server: UpstashServer,
) -> None:
    async with UpstashDriver(any_server.url, any_server.token) as driver:
        with any_server.stats.measure() as first:
            assert await driver.run(APPEND, ["{s}:log"], ["hello"]) == [1, 1]
        with any_server.stats.measure() as second:
            assert await driver.run(APPEND, ["{s}:log"], ["again"]) == [2, 1]
    assert first.total_requests <= 2  # EVALSHA, and EVAL if the script was not cached
    assert second.requests == {"/pipeline": 1}
    assert second.by_command == {"EVALSHA": 1}


@pytest.mark.redis
async def test_an_unknown_script_is_sent_once_with_its_source(
    redis_backed_server: UpstashServer, upstash_redis_url: str
) -> None:
    admin = redis.Redis.from_url(upstash_redis_url)
    admin.script_flush()
    admin.close()
    async with UpstashDriver(redis_backed_server.url, redis_backed_server.token) as driver:
        with redis_backed_server.stats.measure() as usage:
            assert await driver.run(APPEND, ["{s}:log"], ["hello"]) == [1, 1]
    assert usage.requests == {"/pipeline": 2}
    assert usage.by_command == {"EVALSHA": 1, "EVAL": 1}


async def test_a_failing_script_is_a_command_error_naming_it(any_server: UpstashServer) -> None:
    async with UpstashDriver(any_server.url, any_server.token) as driver:
        with pytest.raises(CommandError) as caught:
            await driver.run(WRONGTYPE, ["{s}:k"])
        assert caught.value.command == "script scripts-wrongtype"
        assert "WRONGTYPE" in caught.value.message
        assert await driver.execute([("GET", "{s}:k")]) == [b"text"]


async def test_a_script_call_refused_whole_is_a_command_error() -> None:
    async with (
        UpstashServer(max_request_size=256) as server,
        UpstashDriver(server.url, server.token) as driver,
    ):
        with pytest.raises(CommandError, match="max request size exceeded") as caught:
            await driver.run(APPEND, ["{s}:log"], ["x" * 1000])
        assert caught.value.command == "script scripts-append"
