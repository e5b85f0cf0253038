"""EVAL, EVALSHA and SCRIPT on the memory driver, side by side with a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kvstore.drivers import Driver, MemoryDriver, Script
from kvstore.drivers.base import Reply, ScriptCall
from kvstore.errors import BatchError
from tests.conformance import drivers

pytestmark = pytest.mark.anyio


def _twin(call: ScriptCall, keys: list[bytes], args: list[bytes]) -> Reply:
    return [call("INCRBY", keys[0], args[0]), keys, args]


INCR = Script("test_incr", "return {redis.call('INCRBY', KEYS[1], ARGV[1]), KEYS, ARGV}", _twin)
UNREGISTERED = "return 42"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(redis_server_url: str) -> AsyncIterator[Driver]:
    async with drivers.redis_driver(redis_server_url) as driver:
        await driver.execute([("SCRIPT", "FLUSH")])
        yield driver


async def _outcomes(driver: Driver, commands: list[tuple[object, ...]]) -> list[object]:
    try:
        return list(await driver.execute(commands))  # type: ignore[arg-type]
    except BatchError as exc:
        return [r.message if isinstance(r, Exception) else r for r in exc.results]


@pytest.mark.redis
async def test_script_commands_reply_as_on_redis(redis: Driver) -> None:
    # One difference by design: the memory driver knows every registered script from the
    # start, where Redis needs an EVAL or SCRIPT LOAD first; the sequence loads it first.
    memory = MemoryDriver()
    sequence: list[tuple[object, ...]] = [
        ("EVAL", INCR.lua, 1, "{s}:n", 5),
        ("EVALSHA", INCR.sha.upper(), 1, "{s}:n", 2),
        ("SCRIPT", "EXISTS", INCR.sha, "0" * 40),
        ("EVALSHA", INCR.sha, "x", "{s}:n"),
        ("EVALSHA", INCR.sha, -1),
        ("EVALSHA", INCR.sha, 3, "{s}:n"),
        ("EVALSHA", "0" * 40, 0),
        ("SCRIPT", "LOAD", INCR.lua),
        ("SCRIPT", "FLUSH", "NOW"),
        ("SCRIPT", "NOPE"),
        ("SCRIPT", "LOAD"),
    ]
    for command in sequence:
        assert await _outcomes(memory, [command]) == await _outcomes(redis, [command]), command


@pytest.mark.redis
async def test_a_failing_twin_reports_the_inner_error(redis: Driver) -> None:
    memory = MemoryDriver()
    command = ("EVAL", INCR.lua, 1, "{s}:text", 1)
    for driver in (memory, redis):
        await driver.execute([("SET", "{s}:text", "abc")])
    (expected,) = await _outcomes(redis, [command])
    (got,) = await _outcomes(memory, [command])
    # Redis appends "script: <sha>, on @user_script:1." to errors raised inside Lua.
    assert isinstance(got, str)
    assert str(expected).startswith(got.rstrip("."))
    assert got.startswith("ERR value is not an integer")


async def test_a_registered_script_answers_exists_and_an_unknown_source_is_refused() -> None:
    memory = MemoryDriver()
    assert await memory.execute([("SCRIPT", "EXISTS", INCR.sha, "0" * 40)]) == [[1, 0]]
    with pytest.raises(BatchError, match="registered scripts"):
        await memory.execute([("EVAL", UNREGISTERED, 0)])
