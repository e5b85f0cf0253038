"""MemoryDriver's contract: batches, errors, transactions, scripts, expiry, concurrency.

Exact Redis parity of each command is the differential suite's job (tests/differential);
these tests pin down the driver-level behaviour, under asyncio and trio.
"""

from __future__ import annotations

import threading

import anyio
import pytest

from kvstore.drivers.base import Script
from kvstore.drivers.memory import MemoryDriver
from kvstore.errors import BatchError, CommandError, TransactionAbortedError

pytestmark = pytest.mark.anyio


class FakeClock:
    """A clock for expiry tests: milliseconds that only move when told to."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def driver(clock: FakeClock) -> MemoryDriver:
    return MemoryDriver(clock=clock)


async def test_replies_have_the_normalised_shape(driver: MemoryDriver) -> None:
    replies = await driver.execute(
        [
            ("SET", "k", "v"),
            ("GET", "k"),
            ("GET", "missing"),
            ("ZADD", "z", 1.5, "a", 2, b"b"),
            ("ZRANGE", "z", 0, -1, "WITHSCORES"),
            ("HSET", "h", "f", "é"),
            ("HGETALL", "h"),
            ("PING",),
        ]
    )
    assert replies == [
        b"OK",
        b"v",
        None,
        2,
        [b"a", b"1.5", b"b", b"2"],
        1,
        [b"f", "é".encode()],
        b"PONG",
    ]


async def test_command_names_are_case_insensitive_str_or_bytes(driver: MemoryDriver) -> None:
    replies = await driver.execute([("set", "k", 1), (b"GeT", "k"), (b"get", b"k")])
    assert replies == [b"OK", b"1", b"1"]


async def test_arguments_are_encoded_like_every_driver(driver: MemoryDriver) -> None:
    await driver.execute(
        [("MSET", "i", 42, "f", 0.1, "inf", float("-inf"), "s", "ünï", "b", b"\xff")]
    )
    assert await driver.execute([("MGET", "i", "f", "inf", "s", "b")]) == [
        [b"42", b"0.1", b"-inf", "ünï".encode(), b"\xff"]
    ]


async def test_an_unencodable_argument_leaves_the_store_untouched(driver: MemoryDriver) -> None:
    with pytest.raises(TypeError):
        await driver.execute([("SET", "a", "1"), ("SET", "b", True)])
    assert await driver.execute([("EXISTS", "a", "b")]) == [0]


async def test_errors_stay_in_place_and_the_rest_runs(driver: MemoryDriver) -> None:
    with pytest.raises(BatchError) as caught:
        await driver.execute(
            [("SET", "s", "x"), ("INCR", "s"), ("HSET", "s", "f", "v"), ("SET", "t", "1")]
        )
    error = caught.value
    assert error.results[0] == b"OK"
    assert error.results[3] == b"OK"
    assert [(e.index, e.command, e.message) for e in error.errors] == [
        (1, "INCR", "ERR value is not an integer or out of range"),
        (2, "HSET", "WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]
    assert error.results[1] is error.errors[0]
    assert (error.index, error.command, error.code) == (1, "INCR", "ERR")
    assert await driver.execute([("GET", "t")]) == [b"1"]


async def test_unknown_commands_and_wrong_arity_have_redis_messages(driver: MemoryDriver) -> None:
    with pytest.raises(BatchError) as caught:
        await driver.execute([("NOPE", "a", b"b\nc"), ("GET",), (b"get", "a", "b")])
    assert [e.message for e in caught.value.errors] == [
        "ERR unknown command 'NOPE', with args beginning with: 'a' 'b c' ",
        "ERR wrong number of arguments for 'get' command",
        "ERR wrong number of arguments for 'get' command",
    ]
    assert [e.command for e in caught.value.errors] == ["NOPE", "GET", "GET"]


async def test_atomic_batch_refused_at_queue_time_applies_nothing(driver: MemoryDriver) -> None:
    with pytest.raises(TransactionAbortedError) as caught:
        await driver.execute(
            [("SET", "a", "1"), ("FOO",), ("INCR", "a"), ("ZADD", "z", "1")], atomic=True
        )
    error = caught.value
    assert [(e.index, e.message) for e in error.errors] == [
        (1, "ERR unknown command 'FOO', with args beginning with: "),
        (3, "ERR wrong number of arguments for 'zadd' command"),
    ]
    assert error.results[0] is None
    assert error.results[2] is None
    assert await driver.execute([("EXISTS", "a", "z")]) == [0]


async def test_atomic_batch_keeps_runtime_errors_in_place(driver: MemoryDriver) -> None:
    with pytest.raises(BatchError) as caught:
        await driver.execute(
            # Syntax errors are runtime errors in Redis too: SET's options are read by SET.
            [("SET", "a", "x"), ("INCR", "a"), ("SET", "b", "1", "EX"), ("SET", "c", "1")],
            atomic=True,
        )
    assert not isinstance(caught.value, TransactionAbortedError)
    assert caught.value.results[3] == b"OK"
    assert [e.message for e in caught.value.errors] == [
        "ERR value is not an integer or out of range",
        "ERR syntax error",
    ]
    assert await driver.execute([("MGET", "a", "b", "c")]) == [[b"x", None, b"1"]]


async def test_empty_batch(driver: MemoryDriver) -> None:
    assert await driver.execute([]) == []
    assert await driver.execute([], atomic=True) == []


# --- expiry -------------------------------------------------------------------------------


async def test_ttl_rounds_to_the_nearest_second(driver: MemoryDriver, clock: FakeClock) -> None:
    await driver.execute([("SET", "k", "v", "PX", 10_000)])
    clock.now += 1_499
    assert await driver.execute([("TTL", "k"), ("PTTL", "k")]) == [9, 8_501]
    clock.now += 2
    assert await driver.execute([("TTL", "k"), ("PTTL", "k")]) == [8, 8_499]


async def test_a_key_lives_through_its_deadline_millisecond(
    driver: MemoryDriver, clock: FakeClock
) -> None:
    await driver.execute([("SET", "k", "v", "PX", 100)])
    clock.now += 100
    assert await driver.execute([("GET", "k"), ("PTTL", "k")]) == [b"v", 0]
    clock.now += 1
    assert await driver.execute([("GET", "k"), ("TTL", "k")]) == [None, -2]


async def test_expired_keys_vanish_everywhere(driver: MemoryDriver, clock: FakeClock) -> None:
    await driver.execute(
        [
            ("SET", "gone", "v", "PX", 50),
            ("HSET", "hash", "f", "v"),
            ("PEXPIRE", "hash", 50),
            ("SET", "kept", "v"),
        ]
    )
    clock.now += 51
    replies = await driver.execute(
        [
            ("EXISTS", "gone", "hash", "kept"),
            ("DBSIZE",),
            ("SCAN", 0, "COUNT", 100),
            ("TYPE", "hash"),
            ("HGET", "hash", "f"),
        ]
    )
    assert replies == [1, 1, [b"0", [b"kept"]], b"none", None]


async def test_a_deadline_in_the_past_deletes_at_once(
    driver: MemoryDriver, clock: FakeClock
) -> None:
    await driver.execute([("SET", "a", "1"), ("SET", "b", "1")])
    replies = await driver.execute(
        [
            ("PEXPIREAT", "a", clock.now - 1),
            ("EXISTS", "a"),
            ("SET", "b", "2", "PXAT", clock.now - 1),
            ("GET", "b"),
        ]
    )
    assert replies == [1, 0, b"OK", None]


async def test_writes_keep_or_drop_the_deadline_like_redis(
    driver: MemoryDriver, clock: FakeClock
) -> None:
    await driver.execute([("SET", "n", 1, "EX", 100), ("HSET", "h", "a", 1), ("EXPIRE", "h", 100)])
    replies = await driver.execute(
        [
            ("INCR", "n"),
            ("TTL", "n"),
            ("HSET", "h", "b", 2),
            ("TTL", "h"),
            ("SET", "n", 5, "KEEPTTL"),
            ("TTL", "n"),
            ("SET", "n", 6),
            ("TTL", "n"),
        ]
    )
    assert replies == [2, 100, 1, 100, b"OK", 100, b"OK", -1]


async def test_rescheduled_deadlines_do_not_pile_up(driver: MemoryDriver, clock: FakeClock) -> None:
    # A sliding session: the same key's deadline moved on every request.
    await driver.execute([("SET", "session", "v")])
    for _ in range(1_000):
        clock.now += 1
        await driver.execute([("PEXPIRE", "session", 60_000)])
    assert len(driver._keyspace._deadlines) < 200
    clock.now += 60_001
    assert await driver.execute([("EXISTS", "session")]) == [0]


# --- scripts ------------------------------------------------------------------------------


MOVE = Script(
    "move",
    """
local value = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[2], value)
redis.call('INCR', KEYS[1])  -- fails when the value is not a number
return redis.call('DEL', KEYS[1])
""",
)


async def test_script_runs_atomically(driver: MemoryDriver) -> None:
    await driver.execute([("SET", "a", 5)])
    assert await driver.run(MOVE, ["a", "b"]) == 1
    assert await driver.execute([("GET", "a"), ("GET", "b")]) == [None, b"5"]


async def test_script_error_keeps_earlier_writes(driver: MemoryDriver) -> None:
    await driver.execute([("SET", "a", "x")])
    with pytest.raises(CommandError) as caught:
        await driver.run(MOVE, ["a", "b"])
    assert caught.value.message.startswith("ERR value is not an integer or out of range")
    assert caught.value.command == "script move"
    assert await driver.execute([("GET", "b")]) == [b"x"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("'NOPE'", "ERR Unknown Redis command called from script"),
        ("'GET'", "ERR Wrong number of args calling Redis command from script"),
        ("", "ERR Please specify at least one argument for this redis lib call"),
        ("'EVAL', 'return 1', 0", "ERR This Redis command is not allowed from script"),
    ],
)
async def test_script_call_errors(driver: MemoryDriver, call: str, message: str) -> None:
    script = Script(f"bad {call}", f"return redis.call({call})")
    with pytest.raises(CommandError) as caught:
        await driver.run(script, [])
    assert caught.value.message.startswith(message)


async def test_a_script_cannot_touch_an_undeclared_key(driver: MemoryDriver) -> None:
    script = Script("undeclared", "redis.call('SET', KEYS[1], 1); redis.call('SET', 'other', 2)")
    with pytest.raises(CommandError, match="not declared in KEYS: other"):
        await driver.run(script, ["mine"])
    # The write before the refused command stays, as a failing command's would in Redis.
    assert await driver.execute([("GET", "mine"), ("EXISTS", "other")]) == [b"1", 0]


# --- concurrency and lifecycle ------------------------------------------------------------


async def test_concurrent_tasks_and_threads_share_one_driver() -> None:
    driver = MemoryDriver()

    def bump_in_thread() -> None:
        for _ in range(500):
            anyio.from_thread.run(driver.execute, [("INCR", "n")])

    async def bump_in_task() -> None:
        for _ in range(500):
            await driver.execute([("INCR", "n"), ("HINCRBY", "h", "n", 1)], atomic=True)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(bump_in_task)
        for _ in range(2):
            tg.start_soon(anyio.to_thread.run_sync, bump_in_thread)
    assert await driver.execute([("GET", "n"), ("HGET", "h", "n")]) == [b"2500", b"1500"]


def test_plain_threads_share_one_driver() -> None:
    driver = MemoryDriver()

    def worker() -> None:
        for _ in range(300):
            anyio.run(driver.execute, [("INCR", "n")])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert anyio.run(driver.execute, [("GET", "n")]) == [b"1200"]


async def test_context_manager_and_aclose_are_harmless() -> None:
    async with MemoryDriver() as driver:
        assert await driver.execute([("PING",)]) == [b"PONG"]
    await driver.aclose()
    await driver.aclose()
