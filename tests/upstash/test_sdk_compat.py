"""The upstash-redis SDK reads the local server's replies as it reads Upstash's.

Every command kvstore uses (``_commandspec.COMMANDS``) goes through the SDK's plain client
against the local server, and the same command goes through redis-py to real Redis. The SDK
formats Upstash's wire replies (JSON, base64) into Python values; redis-py formats RESP.
Where both libraries promise the same Python value, equal values show that the server put
Redis's reply on the wire as Upstash does. Where their conventions differ (PING, streams),
the expected value is the SDK's documented one, or redis-py's reshaped to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis
from upstash_redis.asyncio import Redis as UpstashClient

from kvstore.drivers._commandspec import COMMANDS
from kvstore.drivers.base import Script
from tests.conftest import flush_db

if TYPE_CHECKING:
    from kvstore.upstash_server import UpstashServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

SdkCall = Callable[[UpstashClient], Awaitable[Any]]
RedisCall = Callable[[redis.Redis], Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SCRIPT = Script(
    "sdk-compat",
    "return {redis.call('INCRBY', KEYS[1], ARGV[1]), redis.call('GET', KEYS[1]), ARGV[2]}",
)


async def then(call: Awaitable[Any], shape: Callable[[Any], Any]) -> Any:
    return shape(await call)


def ttl_set(value: int) -> bool:
    return 0 < value <= 1000


def pttl_set(value: int) -> bool:
    return 0 < value <= 1_000_000


def scanned(reply: Any) -> tuple[int, list[str]]:
    return reply[0], sorted(reply[1])


def raw_entries(entries: Any) -> list[list[Any]]:
    """redis-py's (id, {field: value}) stream entries in the wire shape the SDK returns."""
    return [[i, [x for pair in fields.items() for x in pair]] for i, fields in entries]


# (command, the SDK's call, redis-py's call); run in order, each side on an empty database.
STEPS: list[tuple[str, SdkCall, RedisCall]] = [
    # strings and keys
    ("SET", lambda u: u.set("c:s", "héllo"), lambda r: r.set("c:s", "héllo")),
    ("GET", lambda u: u.get("c:s"), lambda r: r.get("c:s")),
    # The layout record's SET NX GET (Redis 7; the SDK's set() refuses NX with GET, so
    # it goes as a raw command): the old value, then nil where there was none.
    (
        "SET",
        lambda u: u.execute(["SET", "c:s", "other", "NX", "GET"]),
        lambda r: r.set("c:s", "other", nx=True, get=True),
    ),
    (
        "SET",
        lambda u: u.execute(["SET", "c:layout", "v", "NX", "GET"]),
        lambda r: r.set("c:layout", "v", nx=True, get=True),
    ),
    ("GET", lambda u: u.get("c:none"), lambda r: r.get("c:none")),
    (
        "MSET",
        lambda u: u.mset({"c:m1": "1", "c:m2": "two"}),
        lambda r: r.mset({"c:m1": "1", "c:m2": "two"}),
    ),
    (
        "MGET",
        lambda u: u.mget("c:m1", "c:m2", "c:none"),
        lambda r: r.mget("c:m1", "c:m2", "c:none"),
    ),
    ("INCR", lambda u: u.incr("c:n"), lambda r: r.incr("c:n")),
    ("INCRBY", lambda u: u.incrby("c:n", 5), lambda r: r.incrby("c:n", 5)),
    ("DECR", lambda u: u.decr("c:n"), lambda r: r.decr("c:n")),
    ("DECRBY", lambda u: u.decrby("c:n", 2), lambda r: r.decrby("c:n", 2)),
    (
        "EXISTS",
        lambda u: u.exists("c:s", "c:n", "c:none"),
        lambda r: r.exists("c:s", "c:n", "c:none"),
    ),
    ("TYPE", lambda u: u.type("c:s"), lambda r: r.type("c:s")),
    ("TYPE", lambda u: u.type("c:none"), lambda r: r.type("c:none")),
    ("EXPIRE", lambda u: u.expire("c:s", 1000), lambda r: r.expire("c:s", 1000)),
    ("EXPIRE", lambda u: u.expire("c:none", 1000), lambda r: r.expire("c:none", 1000)),
    ("TTL", lambda u: then(u.ttl("c:s"), ttl_set), lambda r: ttl_set(r.ttl("c:s"))),
    ("PEXPIRE", lambda u: u.pexpire("c:s", 1_000_000), lambda r: r.pexpire("c:s", 1_000_000)),
    ("PTTL", lambda u: then(u.pttl("c:s"), pttl_set), lambda r: pttl_set(r.pttl("c:s"))),
    (
        "EXPIREAT",
        lambda u: u.expireat("c:m1", 4102444800),
        lambda r: r.expireat("c:m1", 4102444800),
    ),
    (
        "PEXPIREAT",
        lambda u: u.pexpireat("c:m2", 4102444800000),
        lambda r: r.pexpireat("c:m2", 4102444800000),
    ),
    ("PERSIST", lambda u: u.persist("c:s"), lambda r: r.persist("c:s")),
    ("PERSIST", lambda u: u.persist("c:none"), lambda r: r.persist("c:none")),
    ("TTL", lambda u: u.ttl("c:s"), lambda r: r.ttl("c:s")),
    ("PTTL", lambda u: u.pttl("c:none"), lambda r: r.pttl("c:none")),
    (
        "SCAN",
        lambda u: then(u.scan(0, match="c:m*", count=1000), scanned),
        lambda r: scanned(r.scan(0, match="c:m*", count=1000)),
    ),
    ("DEL", lambda u: u.delete("c:m1", "c:none"), lambda r: r.delete("c:m1", "c:none")),
    ("UNLINK", lambda u: u.unlink("c:m2", "c:none"), lambda r: r.unlink("c:m2", "c:none")),
    # hashes
    (
        "HSET",
        lambda u: u.hset("c:h", values={"f": "v", "g": "7"}),
        lambda r: r.hset("c:h", mapping={"f": "v", "g": "7"}),
    ),
    ("HGET", lambda u: u.hget("c:h", "f"), lambda r: r.hget("c:h", "f")),
    ("HMGET", lambda u: u.hmget("c:h", "f", "none"), lambda r: r.hmget("c:h", ["f", "none"])),
    ("HGETALL", lambda u: u.hgetall("c:h"), lambda r: r.hgetall("c:h")),
    ("HKEYS", lambda u: u.hkeys("c:h"), lambda r: r.hkeys("c:h")),
    ("HVALS", lambda u: u.hvals("c:h"), lambda r: r.hvals("c:h")),
    ("HLEN", lambda u: u.hlen("c:h"), lambda r: r.hlen("c:h")),
    ("HEXISTS", lambda u: u.hexists("c:h", "f"), lambda r: r.hexists("c:h", "f")),
    ("HEXISTS", lambda u: u.hexists("c:h", "none"), lambda r: r.hexists("c:h", "none")),
    ("HINCRBY", lambda u: u.hincrby("c:h", "g", 3), lambda r: r.hincrby("c:h", "g", 3)),
    ("HSETNX", lambda u: u.hsetnx("c:h", "f", "w"), lambda r: bool(r.hsetnx("c:h", "f", "w"))),
    ("HSETNX", lambda u: u.hsetnx("c:h", "new", "n"), lambda r: bool(r.hsetnx("c:h", "new", "n"))),
    ("HDEL", lambda u: u.hdel("c:h", "f", "none"), lambda r: r.hdel("c:h", "f", "none")),
    # sorted sets
    (
        "ZADD",
        lambda u: u.zadd("c:z", {"a": 1, "b": 2.5, "c": 3}),
        lambda r: r.zadd("c:z", {"a": 1, "b": 2.5, "c": 3}),
    ),
    ("ZSCORE", lambda u: u.zscore("c:z", "b"), lambda r: r.zscore("c:z", "b")),
    ("ZSCORE", lambda u: u.zscore("c:z", "none"), lambda r: r.zscore("c:z", "none")),
    (
        "ZMSCORE",
        lambda u: u.zmscore("c:z", ["a", "none"]),
        lambda r: r.zmscore("c:z", ["a", "none"]),
    ),
    ("ZCARD", lambda u: u.zcard("c:z"), lambda r: r.zcard("c:z")),
    ("ZCOUNT", lambda u: u.zcount("c:z", 2, "+inf"), lambda r: r.zcount("c:z", 2, "+inf")),
    ("ZINCRBY", lambda u: u.zincrby("c:z", 1.5, "a"), lambda r: r.zincrby("c:z", 1.5, "a")),
    ("ZRANK", lambda u: u.zrank("c:z", "c"), lambda r: r.zrank("c:z", "c")),
    ("ZREVRANK", lambda u: u.zrevrank("c:z", "c"), lambda r: r.zrevrank("c:z", "c")),
    ("ZRANK", lambda u: u.zrank("c:z", "none"), lambda r: r.zrank("c:z", "none")),
    (
        "ZRANGE",
        lambda u: u.zrange("c:z", 0, -1, withscores=True),
        lambda r: r.zrange("c:z", 0, -1, withscores=True),
    ),
    (
        "ZRANGE",
        lambda u: u.zrange("c:z", 0, -1, rev=True),
        lambda r: r.zrange("c:z", 0, -1, desc=True),
    ),
    (
        "ZRANGEBYSCORE",
        lambda u: u.zrangebyscore("c:z", 2.5, 3),
        lambda r: r.zrangebyscore("c:z", 2.5, 3),
    ),
    (
        "ZREVRANGEBYSCORE",
        lambda u: u.zrevrangebyscore("c:z", 3, "-inf", withscores=True),
        lambda r: r.zrevrangebyscore("c:z", 3, "-inf", withscores=True),
    ),
    (
        "ZREVRANGE",
        lambda u: u.zrevrange("c:z", 0, 1, withscores=True),
        lambda r: r.zrevrange("c:z", 0, 1, withscores=True),
    ),
    (
        "ZADD",
        lambda u: u.zadd("c:lex", {"a": 0, "b": 0, "c": 0}),
        lambda r: r.zadd("c:lex", {"a": 0, "b": 0, "c": 0}),
    ),
    (
        "ZRANGEBYLEX",
        lambda u: u.zrangebylex("c:lex", "[a", "(c"),
        lambda r: r.zrangebylex("c:lex", "[a", "(c"),
    ),
    (
        "ZREVRANGEBYLEX",
        lambda u: u.zrevrangebylex("c:lex", "+", "[b"),
        lambda r: r.zrevrangebylex("c:lex", "+", "[b"),
    ),
    (
        "ZLEXCOUNT",
        lambda u: u.zlexcount("c:lex", "[a", "(c"),
        lambda r: r.zlexcount("c:lex", "[a", "(c"),
    ),
    (
        "ZRANGE",
        lambda u: u.zrange("c:lex", "[a", "+", sortby="BYLEX", offset=1, count=5),
        lambda r: r.zrange("c:lex", "[a", "+", bylex=True, offset=1, num=5),
    ),
    (
        "ZRANGE",
        lambda u: u.zrange("c:lex", "+", "-", sortby="BYLEX", rev=True, offset=0, count=2),
        lambda r: r.zrange("c:lex", "+", "-", bylex=True, desc=True, offset=0, num=2),
    ),
    (
        "ZREMRANGEBYLEX",
        lambda u: u.zremrangebylex("c:lex", "(a", "[b"),
        lambda r: r.zremrangebylex("c:lex", "(a", "[b"),
    ),
    ("ZREM", lambda u: u.zrem("c:z", "a", "none"), lambda r: r.zrem("c:z", "a", "none")),
    (
        "ZREMRANGEBYSCORE",
        lambda u: u.zremrangebyscore("c:z", "-inf", 2.5),
        lambda r: r.zremrangebyscore("c:z", "-inf", 2.5),
    ),
    (
        "ZREMRANGEBYRANK",
        lambda u: u.zremrangebyrank("c:z", 0, 0),
        lambda r: r.zremrangebyrank("c:z", 0, 0),
    ),
    # sets
    ("SADD", lambda u: u.sadd("c:set", "x", "y"), lambda r: r.sadd("c:set", "x", "y")),
    ("SREM", lambda u: u.srem("c:set", "y", "none"), lambda r: r.srem("c:set", "y", "none")),
    (
        "SMEMBERS",
        lambda u: then(u.smembers("c:set"), sorted),
        lambda r: sorted(r.smembers("c:set")),
    ),
    ("SISMEMBER", lambda u: u.sismember("c:set", "x"), lambda r: r.sismember("c:set", "x")),
    ("SCARD", lambda u: u.scard("c:set"), lambda r: r.scard("c:set")),
    # streams (explicit ids, so that both sides write the same ones)
    (
        "XADD",
        lambda u: u.xadd("c:x", "1-1", {"f": "v"}),
        lambda r: r.xadd("c:x", {"f": "v"}, id="1-1"),
    ),
    (
        "XADD",
        lambda u: u.xadd("c:x", "2-1", {"g": "w", "h": "x"}),
        lambda r: r.xadd("c:x", {"g": "w", "h": "x"}, id="2-1"),
    ),
    ("XLEN", lambda u: u.xlen("c:x"), lambda r: r.xlen("c:x")),
    ("XRANGE", lambda u: u.xrange("c:x"), lambda r: raw_entries(r.xrange("c:x"))),
    (
        "XREVRANGE",
        lambda u: u.xrevrange("c:x", count=1),
        lambda r: raw_entries(r.xrevrange("c:x", count=1)),
    ),
    ("XDEL", lambda u: u.xdel("c:x", "1-1"), lambda r: r.xdel("c:x", "1-1")),
    (
        "XTRIM",
        lambda u: u.xtrim("c:x", maxlen=0, approximate=False),
        lambda r: r.xtrim("c:x", maxlen=0, approximate=False),
    ),
    # server
    ("PING", lambda u: u.ping(), lambda r: "PONG" if r.ping() else None),
    ("DBSIZE", lambda u: u.dbsize(), lambda r: r.dbsize()),
    ("FLUSHDB", lambda u: u.flushdb(), lambda r: r.flushdb()),
    ("DBSIZE", lambda u: u.dbsize(), lambda r: r.dbsize()),
]

SCRIPT_STEPS: list[tuple[str, SdkCall, RedisCall]] = [
    (
        "EVAL",
        lambda u: u.eval(SCRIPT.lua, ["c:e"], ["5", "é"]),
        lambda r: r.eval(SCRIPT.lua, 1, "c:e", "5", "é"),
    ),
    (
        "EVALSHA",
        lambda u: u.evalsha(SCRIPT.sha, ["c:e"], ["2", "x"]),
        lambda r: r.evalsha(SCRIPT.sha, 1, "c:e", "2", "x"),
    ),
    (
        "SCRIPT",
        lambda u: u.script_exists(SCRIPT.sha, "0" * 40),
        lambda r: r.script_exists(SCRIPT.sha, "0" * 40),
    ),
]


@pytest.fixture
def replay(
    any_server: UpstashServer, upstash_redis_url: str
) -> Iterator[Callable[[list[tuple[str, SdkCall, RedisCall]]], Awaitable[list[str]]]]:
    """Run steps through the SDK to the server, then through redis-py; list the mismatches."""
    direct = redis.Redis.from_url(upstash_redis_url, decode_responses=True, protocol=2)

    async def run(steps: list[tuple[str, SdkCall, RedisCall]]) -> list[str]:
        async with UpstashClient(
            any_server.url, any_server.token, rest_retries=0, allow_telemetry=False
        ) as sdk:
            via_sdk = [await call(sdk) for _, call, _ in steps]
        # The server may share this database (Redis backing): redis-py starts afresh.
        flush_db(upstash_redis_url)
        via_redis = [call(direct) for _, _, call in steps]
        pairs = zip(via_sdk, via_redis, strict=True)
        return [
            f"#{i} {name}: SDK read {got!r}, redis-py read {want!r}"
            for i, ((name, _, _), (got, want)) in enumerate(zip(steps, pairs, strict=True))
            if got != want
        ]

    yield run
    direct.close()


def test_the_steps_cover_every_command_kvstore_uses() -> None:
    covered = {name for name, _, _ in STEPS + SCRIPT_STEPS}
    assert set(COMMANDS) - covered == set(), "add SDK steps for these commands"


async def test_the_sdk_reads_every_reply_as_redis_py_does(
    replay: Callable[[list[tuple[str, SdkCall, RedisCall]]], Awaitable[list[str]]],
) -> None:
    assert await replay(STEPS) == []


async def test_the_sdk_reads_script_replies_as_redis_py_does(
    replay: Callable[[list[tuple[str, SdkCall, RedisCall]]], Awaitable[list[str]]],
) -> None:
    assert await replay(SCRIPT_STEPS) == []
