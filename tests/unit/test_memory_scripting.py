"""The memory driver's Lua engine: EVAL, EVALSHA and SCRIPT, side by side with a real Redis.

The memory driver runs scripts in the Lua 5.1 Redis embeds (see
``kvstore.drivers.memory._lua``). Where behaviour must match Redis (replies, conversions
both ways, error messages, the sandbox) each case runs on both and the outcomes must be
equal, byte for byte. What the memory driver does by design and Redis does not (refusing
undeclared keys, knowing kvstore's registered scripts without a load) is tested on its own.
The differential suite (tests/differential) adds random scripts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kvstore.drivers import Driver, MemoryDriver, Script
from kvstore.errors import BatchError, CommandError
from tests.conformance import drivers

pytestmark = pytest.mark.anyio

INCR = Script("test_incr", "return {redis.call('INCRBY', KEYS[1], ARGV[1]), KEYS, ARGV}")
K1, K2 = "{s}:a", "{s}:b"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis(redis_server_url: str) -> AsyncIterator[Driver]:
    async with drivers.redis_driver(redis_server_url) as driver:
        await driver.execute([("DEL", K1, K2)])
        yield driver
        await driver.execute([("DEL", K1, K2)])


async def _outcomes(driver: Driver, commands: list[tuple[object, ...]]) -> list[object]:
    try:
        return list(await driver.execute(commands))  # type: ignore[arg-type]
    except BatchError as exc:
        return [r.message if isinstance(r, Exception) else r for r in exc.results]


# -- script commands ----------------------------------------------------------------------


@pytest.mark.redis
async def test_script_commands_reply_as_on_redis(redis: Driver) -> None:
    # By design the memory driver knows every registered script from the start, where Redis
    # needs an EVAL or SCRIPT LOAD first: the sequence loads it before asking.
    await redis.execute([("SCRIPT", "FLUSH")])
    memory = MemoryDriver()
    sequence: list[tuple[object, ...]] = [
        ("EVAL", INCR.lua, 1, K1, 5),
        ("EVALSHA", INCR.sha.upper(), 1, K1, 2),
        ("SCRIPT", "EXISTS", INCR.sha, "0" * 40),
        ("EVALSHA", INCR.sha, "x", K1),
        ("EVALSHA", INCR.sha, -1),
        ("EVALSHA", INCR.sha, 3, K1),
        ("EVALSHA", "0" * 40, 0),
        ("EVAL", "return 1", "x"),
        ("EVAL", "return (", 0),
        ("EVAL", "return 'unfinished", 0),
        ("SCRIPT", "LOAD", "return 7"),
        ("SCRIPT", "LOAD", "return +"),
        ("EVALSHA", "3cfe77fb8fd4d3ad7f8ed3ad3a1a9e6dcdd6ec5b", 0),
        ("SCRIPT", "EXISTS", "3cfe77fb8fd4d3ad7f8ed3ad3a1a9e6dcdd6ec5b"),
        ("SCRIPT", "FLUSH", "NOW"),
        ("SCRIPT", "FLUSH", "SYNC"),
        ("SCRIPT", "EXISTS", "3cfe77fb8fd4d3ad7f8ed3ad3a1a9e6dcdd6ec5b"),
        ("EVALSHA", "3cfe77fb8fd4d3ad7f8ed3ad3a1a9e6dcdd6ec5b", 0),
        ("SCRIPT", "NOPE"),
        ("SCRIPT", "LOAD"),
        ("SCRIPT", "EXISTS"),
    ]
    for command in sequence:
        assert await _outcomes(memory, [command]) == await _outcomes(redis, [command]), command


@pytest.mark.redis
@pytest.mark.parametrize(
    "refused",
    [("SCRIPT", "NOPE"), ("SCRIPT", "LOAD", "return 1", "x"), ("SCRIPT", "FLUSH", "x", "y")],
)
async def test_script_subcommands_in_a_transaction_fail_as_on_redis(
    redis: Driver, refused: tuple[object, ...]
) -> None:
    # An unknown subcommand or a subcommand's wrong arity is refused at queue time, which
    # aborts the whole transaction; a bad option fails when it runs.
    batch = [("SET", K1, "v"), refused, ("EVAL", "return 1", 0)]
    outcomes = []
    for driver in (MemoryDriver(), redis):
        try:
            outcomes.append(("ok", await driver.execute(batch, atomic=True)))  # type: ignore[arg-type]
        except BatchError as exc:
            results = [r.message if isinstance(r, Exception) else r for r in exc.results]
            outcomes.append((type(exc).__name__, results))
        outcomes.append(await driver.execute([("EXISTS", K1)]))
    assert outcomes[:2] == outcomes[2:]


# Each program runs with KEYS = {K1, K2}, ARGV = {"a1", "a2"}, K1 holding "text".
PROGRAMS = [
    # Lua -> Redis conversions
    "return 1",
    "return 1.9",
    "return -1.9",
    "return 2^53",
    "return 2^63",
    "return -(2^63)",
    "return 1e300",
    "return 0/0",
    "return 1/0",
    "return {1.5, -0.5, 2^70}",
    "return 'x'",
    "return ''",
    "return true",
    "return false",
    "return nil",
    "return {1, 2, nil, 3}",
    "return {1, {2, {3, {}}}, 'a', false, true}",
    "local t = {} t[1] = 1 t[3] = 3 return t",
    "return {a = 1, 2}",
    "return {string.rep('a', 255), string.rep('b', 256), string.rep('c', 70000)}",
    "local t = {} for i = 1, 70000 do t[i] = i % 3 == 0 and 'x' or i - 35000 end return t",
    "return {-32, -33, 127, 128, 2^32, -(2^32), 2^53 + 0.5, -2^62, 1e19, -1e19}",
    "return setmetatable({1, 2}, {__index = function() return 5 end})",
    "return {setmetatable({'a'}, {__index = function() error('no') end}), _G, {ok = 'x'}}",
    "return {KEYS[1], ARGV[2], #KEYS, #ARGV}",
    "return {err = 'My err'}",
    "return {err = 'boom'}",
    "return {err = 'two\\nlines'}",
    "return {err = 12}",
    "return {ok = 'FINE'}",
    "return {ok = 12}",
    "return {ok = 'a', 1}",
    "return {err = 'a b', ok = 'c'}",
    "return redis.status_reply('FINE')",
    "return redis.status_reply(12)",
    "return redis.error_reply('boom')",
    "return redis.error_reply('boom bar')",
    "return redis.error_reply('-X y')",
    "return redis.error_reply('x\\r\\n')",
    "return redis.error_reply(12)",
    "return redis.error_reply()",
    "return print",
    "return _G",
    "return redis",
    # Redis -> Lua conversions
    "return redis.call('GET', KEYS[1])",
    "return redis.call('GET', KEYS[2])",
    "return type(redis.call('GET', KEYS[2]))",
    "return redis.call('SET', KEYS[2], 'v')",
    "return type(redis.call('SET', KEYS[2], 'v'))",
    "return redis.call('SET', KEYS[2], 'v').ok",
    "return redis.call('SET', KEYS[1], 'v', 'GET')",
    "return redis.call('SET', KEYS[1], 'v', 'NX')",
    "return type(redis.call('SET', KEYS[1], 'v', 'NX'))",
    "return redis.call('TYPE', KEYS[1]).ok",
    "return redis.call('PING').ok",
    "return redis.call('PING', 'hi')",
    "return redis.call('MSET', KEYS[1], 1, KEYS[2], 2).ok",
    "redis.call('HSET', KEYS[2], 'f', 1, 'g', 2) return redis.call('HGETALL', KEYS[2])",
    "redis.call('ZADD', KEYS[2], 1, 'a', 2, 'b') return redis.call('ZRANGE', KEYS[2], 0, -1, "
    "'WITHSCORES')",
    "return {redis.call('EXISTS', KEYS[1], KEYS[2]), redis.call('TYPE', KEYS[2])}",
    # numbers as command arguments
    "redis.call('SET', KEYS[2], 3.0) return redis.call('GET', KEYS[2])",
    "redis.call('SET', KEYS[2], 0.1) return redis.call('GET', KEYS[2])",
    "redis.call('SET', KEYS[2], 1e16) return redis.call('GET', KEYS[2])",
    "redis.call('SET', KEYS[2], 1e17) return redis.call('GET', KEYS[2])",
    "redis.call('SET', KEYS[2], -(2^63)) return redis.call('GET', KEYS[2])",
    "redis.call('SET', KEYS[2], 1/0) return redis.call('GET', KEYS[2])",
    "redis.call('SET', KEYS[2], 0/0) return redis.call('GET', KEYS[2])",
    "return redis.call('INCRBY', KEYS[2], 2.7)",
    # redis.call against redis.pcall, and the errors of each
    "return redis.call('INCR', KEYS[1])",
    "return redis.pcall('INCR', KEYS[1])",
    "local r = redis.pcall('INCR', KEYS[1]) return {type(r), r.err}",
    "local ok, e = pcall(redis.call, 'INCR', KEYS[1]) return {ok and 1 or 0, e}",
    "return {pcall(error, {err = 'X y'})}",
    "return {pcall(error, 'x')}",
    "return {pcall(error, {err = 3})}",
    "return select('#', pcall(function() return 1, nil, 3 end))",
    "local function f()\n  return redis.call('INCR', KEYS[1])\nend\nreturn f()",
    "\n\nredis.call('HSET', KEYS[1], 'f', 'v')",
    "return redis.call('NOPE')",
    "return redis.pcall('NOPE')",
    "return redis.call('GET')",
    "return redis.call('GET', KEYS[1], KEYS[2])",
    "return redis.call()",
    "return redis.pcall()",
    "return redis.call('EVAL', 'return 1', 0)",
    "return redis.pcall('SCRIPT', 'FLUSH')",
    "return redis.call('SET', KEYS[2], {})",
    "return redis.call('SET', KEYS[2], true)",
    "return redis.pcall('SET', KEYS[2], nil)",
    "return redis.call('SET', KEYS[2], 'v', 'EX')",
    "return redis.call('ZADD', KEYS[2], 'x', 'a')",
    "return redis.call('HSET', KEYS[1], 'f', 'x')",
    "error('boom')",
    "error('boom', 0)",
    "error('x\\ny', 0)",
    "error('ERR x', 0)",
    "error()",
    "error(12)",
    "error({err = 'X y'})",
    "error({err = 'lower y'})",
    "error({err = 12})",
    "local a = nil\nreturn a.b",
    "return 1 + {}",
    # globals and the sandbox
    "x = 1",
    "KEYS = {}",
    "string.x = 1",
    "redis.call = 1",
    "table.insert = nil",
    "rawset(_G, 'x', 1)",
    "setmetatable(_G, nil)",
    "return getmetatable(_G)",
    "return undefined_global",
    "return type(os)",
    "return type(io)",
    "return type(debug)",
    "return type(require)",
    "return type(dofile)",
    "return type(loadfile)",
    "return type(print)",
    "return type(setfenv)",
    "return {type(loadstring), type(load), type(pcall), type(xpcall), type(unpack)}",
    "return {type(string), type(table), type(math), type(coroutine), type(tonumber)}",
    "return loadstring('return 1 + 1')()",
    "loadstring('y = 2')()",
    "local t = {} t.x = 1 return t.x",
    "local s = string return s.rep('ab', 3, 4)",
    "return ('x'):rep(2)",
    "return _VERSION",
    "return type(redis.sha1hex)",
    "return redis.sha1hex('')",
    "return redis.sha1hex('abc')",
    "math.randomseed(7) return {math.random(), math.random(10), math.random(3, 9)}",
    "math.randomseed(123456) return math.random(1000000)",
    "return table.concat({1, 2, 3}, ',')",
    "return tostring(12.5)",
    "return string.format('%5.2f|%d|%s', 3.14159, 42, 'x')",
]


@pytest.mark.redis
@pytest.mark.parametrize("program", PROGRAMS)
async def test_a_script_behaves_as_on_redis(redis: Driver, program: str) -> None:
    memory = MemoryDriver()
    command = ("EVAL", program, 2, K1, K2, "a1", "a2")
    # After the script, what a later script sees: no global left behind, redis.call intact,
    # and the data the script wrote.
    after: list[tuple[object, ...]] = [
        ("EVAL", "return {rawget(_G, 'x') or 0, rawget(_G, 'y') or 0, #KEYS}", 0),
        ("EVAL", "return {redis.call('PING').ok, string.rep('a', 2)}", 0),
        ("GET", K1),
        ("TYPE", K2),
    ]
    outcomes = []
    for driver in (memory, redis):
        await driver.execute([("SET", K1, "text")])
        outcomes.append((await _outcomes(driver, [command]), await _outcomes(driver, after)))
        await driver.execute([("DEL", K1, K2)])
    assert outcomes[0][0] == outcomes[1][0], program
    assert outcomes[0][1] == outcomes[1][1], program


# -- by design ------------------------------------------------------------------------------


async def test_a_registered_script_is_known_without_loading() -> None:
    memory = MemoryDriver()
    assert await memory.execute([("SCRIPT", "EXISTS", INCR.sha, "0" * 40)]) == [[1, 0]]
    assert await memory.execute([("EVALSHA", INCR.sha, 1, "n", 3)]) == [[3, [b"n"], [b"3"]]]


async def test_a_script_may_touch_only_the_keys_it_declares() -> None:
    memory = MemoryDriver()
    with pytest.raises(BatchError) as caught:
        await memory.execute(
            [("EVAL", "redis.call('SET', KEYS[1], 1) redis.call('GET', 'b')", 1, "a")]
        )
    assert "not declared in KEYS: b" in caught.value.errors[0].message
    # redis.pcall gets the refusal as an error reply, like any other.
    (reply,) = await memory.execute(
        [("EVAL", "return redis.pcall('MGET', KEYS[1], 'c').err", 1, "a")]
    )
    assert reply == b"ERR Script attempted to access a key not declared in KEYS: c"
    # Commands without keys are allowed.
    assert await memory.execute([("EVAL", "return redis.call('PING').ok", 0)]) == [b"PONG"]


async def test_no_script_leaves_anything_for_the_next() -> None:
    memory = MemoryDriver()
    for vandal in (
        "redis.call = nil",
        "rawset(redis, 'call', nil)",
        "string.rep = nil",
        "rawset(_G, 'x', 1)",
        "loadstring('x = 1')()",
        "setmetatable(_G, {})",
        "math.random = function() return 4 end",
    ):
        with pytest.raises(BatchError, match="readonly table"):
            await memory.execute([("EVAL", vandal, 0)])
    program = "return {rawget(_G, 'x') or 0, redis.call('PING').ok, string.rep('a', 2)}"
    assert await memory.execute([("EVAL", program, 0)]) == [[0, b"PONG", b"aa"]]


async def test_an_error_object_without_a_message_is_an_error() -> None:
    # Redis 7.0 crashes on this one (a NULL message), so it is not compared.
    with pytest.raises(BatchError, match="without a message"):
        await MemoryDriver().execute([("EVAL", "error({})", 0)])


async def test_runaway_results_do_not_crash_the_driver() -> None:
    memory = MemoryDriver()
    (reply,) = await memory.execute(
        [("EVAL", "local t = {} for i = 1, 10000 do t[i] = i end return t", 0)]
    )
    assert reply == list(range(1, 10001))


async def test_a_nested_error_reply_fails_the_script() -> None:
    # Redis would put an error inside the array; the driver contract has no such reply.
    memory = MemoryDriver()
    for program in (
        "return {1, {2, {err = 'ERR deep'}}}",
        "return {1, redis.error_reply('ERR deep')}",
        "return {xpcall(function() return redis.call('INCRBY', KEYS[1], 'x') end, "
        "function(e) return e end)}",
    ):
        with pytest.raises(BatchError, match="ERR") as caught:
            await memory.execute([("EVAL", program, 1, "k")])
        assert "script:" not in caught.value.errors[0].message


async def test_a_reply_nested_too_deep_is_refused() -> None:
    memory = MemoryDriver()
    nest = "local t = {} local c = t for i = 1, ARGV[1] do c[1] = {} c = c[1] end return t"
    (reply,) = await memory.execute([("EVAL", nest, 0, 100)])
    for _ in range(100):
        (reply,) = reply  # type: ignore[misc]
    assert reply == []
    for command in (("EVAL", nest, 0, 10000), ("EVAL", "local t = {} t[1] = t return t", 0)):
        with pytest.raises(BatchError, match="reached lua stack limit"):
            await memory.execute([command])


async def test_script_errors_through_run_name_the_script() -> None:
    script = Script(
        "half_then_fail", "redis.call('SET', KEYS[1], 'x')\nreturn redis.call('INCR', KEYS[1])"
    )
    memory = MemoryDriver()
    with pytest.raises(CommandError) as caught:
        await memory.run(script, ["k"])
    assert caught.value.command == "script half_then_fail"
    assert caught.value.message == (
        f"ERR value is not an integer or out of range script: {script.sha}, on @user_script:2."
    )
    assert await memory.execute([("GET", "k")]) == [b"x"]


async def test_script_writes_are_journaled_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "data.aof"
    program = """
    redis.call('HSET', KEYS[1], 'n', ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'n', 5)
    redis.call('SET', KEYS[2], 'v', 'PX', 100000)
    local ok = redis.pcall('INCR', KEYS[2])      -- fails, writes nothing
    redis.call('ZADD', KEYS[3], 1, 'a', 2, 'b')
    redis.call('ZREMRANGEBYLEX', KEYS[3], '[a', '[a')
    return redis.call('HGET', KEYS[1], 'n')
    """
    async with MemoryDriver(path, fsync="always") as driver:
        assert await driver.execute([("EVAL", program, 3, "h", "s", "z", 10)]) == [b"15"]
        before = await driver.execute(
            [("HGETALL", "h"), ("GET", "s"), ("ZRANGE", "z", 0, -1), ("PTTL", "s")]
        )
    async with MemoryDriver(path) as driver:
        after = await driver.execute(
            [("HGETALL", "h"), ("GET", "s"), ("ZRANGE", "z", 0, -1), ("PTTL", "s")]
        )
    assert after[:3] == before[:3] == [[b"n", b"15"], b"v", [b"b"]]
    assert 0 < after[3] <= before[3]  # the expiry was journaled as an absolute time
