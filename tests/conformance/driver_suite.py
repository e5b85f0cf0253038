"""The driver contract's conformance suite: the narrow waist, on every driver.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
driver runs it.
"""

from __future__ import annotations

import pytest

from kvstore.drivers import Driver, Script
from kvstore.errors import (
    BatchError,
    CommandError,
    TransactionAbortedError,
    UnsupportedError,
)

# Every key lives under one hash tag, so atomic batches stay legal on a Redis Cluster.
K = "{t}:"

COUNTER = Script(
    "counter",
    """
    local value = redis.call('INCRBY', KEYS[1], ARGV[1])
    return {KEYS[1], ARGV[1], value, redis.call('GET', KEYS[2])}
    """,
)

FAILING = Script(
    "failing",
    """
    redis.call('SET', KEYS[1], 'written-before-the-error')
    return redis.call('HGET', KEYS[1], 'field')
    """,
)

# Lua values crossing into Redis replies: numbers truncate, false is nil, a table ends at
# its first nil, {ok=...} is a status and true is 1.
CONVERSIONS = Script(
    "conversions",
    """
    local missing = redis.call('GET', KEYS[1])
    return {3.99, -2.5, missing == false, true, {ok = 'FINE'}, {1, 'a', {2}}, 7, nil, 8}
    """,
)


class DriverSuite:
    """Tests of the driver contract; needs a ``driver`` fixture."""

    async def test_replies_have_the_normalised_shape(self, driver: Driver) -> None:
        replies = await driver.execute(
            [
                ("SET", K + "s", "héllo"),
                ("GET", K + "s"),
                ("GET", K + "missing"),
                ("HSET", K + "h", "f", 1.5, "g", 7),
                ("HGETALL", K + "h"),
                ("ZADD", K + "z", float("inf"), "top", 0.1, "low"),
                ("ZRANGE", K + "z", 0, -1, "WITHSCORES"),
                ("TYPE", K + "z"),
                ("MGET", K + "s", K + "missing"),
            ]
        )
        assert replies == [
            b"OK",
            "héllo".encode(),
            None,
            2,
            [b"f", b"1.5", b"g", b"7"],
            2,
            [b"low", b"0.10000000000000001", b"top", b"inf"],
            b"zset",
            ["héllo".encode(), None],
        ]

    async def test_empty_batch(self, driver: Driver) -> None:
        assert await driver.execute([]) == []

    async def test_bytes_and_str_arguments_are_the_same_key(self, driver: Driver) -> None:
        await driver.execute([(b"SET", K.encode() + b"k", "héllo".encode())])
        assert await driver.execute([("get", K + "k")]) == ["héllo".encode()]

    async def test_arbitrary_bytes_round_trip_or_are_refused(self, driver: Driver) -> None:
        # Capability, not backend type: text-only transports declare binary_safe = False.
        if driver.binary_safe:
            await driver.execute([("SET", K + "k", b"\x00\xff")])
            assert await driver.execute([("GET", K + "k")]) == [b"\x00\xff"]
        else:
            with pytest.raises(UnsupportedError):
                await driver.execute([("SET", K + "k", b"\x00\xff")])
            assert await driver.execute([("EXISTS", K + "k")]) == [0]

    async def test_failing_command_reports_position_and_keeps_other_results(
        self, driver: Driver
    ) -> None:
        with pytest.raises(BatchError) as caught:
            await driver.execute(
                [
                    ("SET", K + "a", "text"),
                    ("HGET", K + "a", "f"),
                    ("SET", K + "b", "after"),
                    ("INCR", K + "a"),
                ]
            )
        err = caught.value
        assert err.index == 1
        assert err.command == "HGET"
        assert err.message == "WRONGTYPE Operation against a key holding the wrong kind of value"
        assert [e.index for e in err.errors] == [1, 3]
        assert err.errors[1].message == "ERR value is not an integer or out of range"
        assert err.results[0] == b"OK"
        assert err.results[2] == b"OK"
        assert await driver.execute([("GET", K + "b")]) == [b"after"]

    async def test_atomic_batch_runtime_error_applies_the_rest(self, driver: Driver) -> None:
        await driver.execute([("SET", K + "a", "text")])
        with pytest.raises(BatchError) as caught:
            await driver.execute([("HGET", K + "a", "f"), ("SET", K + "b", "1")], atomic=True)
        assert not isinstance(caught.value, TransactionAbortedError)
        assert caught.value.index == 0
        assert caught.value.results[1] == b"OK"
        assert await driver.execute([("GET", K + "b")]) == [b"1"]

    async def test_atomic_batch_refused_at_queue_time_applies_nothing(self, driver: Driver) -> None:
        with pytest.raises(TransactionAbortedError) as caught:
            await driver.execute(
                [("SET", K + "a", "1"), ("GET",), ("SET", K + "b", "2")], atomic=True
            )
        assert caught.value.index == 1
        assert caught.value.message == "ERR wrong number of arguments for 'get' command"
        assert await driver.execute([("EXISTS", K + "a", K + "b")]) == [0]

    async def test_atomic_batch_returns_every_reply(self, driver: Driver) -> None:
        replies = await driver.execute(
            [("INCR", K + "n"), ("INCR", K + "n"), ("GET", K + "n")], atomic=True
        )
        assert replies == [1, 2, b"2"]

    async def test_script_runs(self, driver: Driver) -> None:
        await driver.execute([("SET", K + "label", "hi")])
        first = await driver.run(COUNTER, [K + "n", K + "label"], [5])
        second = await driver.run(COUNTER, [K + "n", K + "label"], [2])
        assert first == [(K + "n").encode(), b"5", 5, b"hi"]
        assert second == [(K + "n").encode(), b"2", 7, b"hi"]

    async def test_script_runs_again_after_the_script_cache_is_flushed(
        self, driver: Driver
    ) -> None:
        # On a server, EVALSHA now meets NOSCRIPT and the driver must send the source once
        # more (the memory driver's registered scripts outlive a flush). On a cluster the
        # flush reaches one node; tests/unit/test_redis_driver.py flushes every node.
        await driver.execute([("SET", K + "label", "hi")])
        first = await driver.run(COUNTER, [K + "n", K + "label"], [1])
        assert first == [(K + "n").encode(), b"1", 1, b"hi"]
        assert await driver.execute([("SCRIPT", "FLUSH")]) == [b"OK"]
        again = await driver.run(COUNTER, [K + "n", K + "label"], [2])
        assert again == [(K + "n").encode(), b"2", 3, b"hi"]

    async def test_script_error_is_a_command_error_and_earlier_writes_stay(
        self, driver: Driver
    ) -> None:
        with pytest.raises(CommandError) as caught:
            await driver.run(FAILING, [K + "x"])
        assert "WRONGTYPE" in caught.value.message
        assert await driver.execute([("GET", K + "x")]) == [b"written-before-the-error"]

    async def test_lua_values_convert_as_redis_converts_them(self, driver: Driver) -> None:
        assert await driver.run(CONVERSIONS, [K + "none"]) == [
            3,
            -2,
            1,
            1,
            b"FINE",
            [1, b"a", [2]],
            7,
        ]

    async def test_scripts_and_commands_share_a_batch(self, driver: Driver) -> None:
        replies = await driver.execute(
            [
                ("SET", K + "label", "hi"),
                COUNTER.command([K + "n", K + "label"], [3]),
                ("GET", K + "n"),
            ]
        )
        assert replies == [b"OK", [(K + "n").encode(), b"3", 3, b"hi"], b"3"]

    async def test_a_script_missing_from_the_server_is_sent_again_inside_a_batch(
        self, driver: Driver
    ) -> None:
        await driver.execute([("SET", K + "label", "hi")])
        assert await driver.execute([("SCRIPT", "FLUSH")]) == [b"OK"]
        replies = await driver.execute(
            [("INCR", K + "before"), COUNTER.command([K + "n", K + "label"], [4])]
        )
        assert replies == [1, [(K + "n").encode(), b"4", 4, b"hi"]]
        # The command before the script ran once only.
        assert await driver.execute([("GET", K + "before")]) == [b"1"]

    async def test_a_batch_may_span_hash_slots(self, driver: Driver) -> None:
        keys = [f"{{slot-{i}}}:k" for i in range(12)]
        replies = await driver.execute([("SET", k, i) for i, k in enumerate(keys)])
        assert replies == [b"OK"] * 12
        assert await driver.execute([("GET", k) for k in keys]) == [
            str(i).encode() for i in range(12)
        ]

    async def test_steps_run_in_order(self, driver: Driver) -> None:
        steps = [
            [("SET", f"{{a{i}}}:k", "first") for i in range(4)],
            [("GET", f"{{a{i}}}:k") for i in range(4)],
        ]
        replies = await driver.execute_steps(steps)
        assert replies == [[b"OK"] * 4, [b"first"] * 4]

    async def test_closing_twice_is_harmless(self, driver: Driver) -> None:
        await driver.aclose()
        await driver.aclose()
