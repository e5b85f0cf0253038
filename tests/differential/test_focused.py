"""Focused comparisons with real Redis for what the state machine cannot reach quickly:
time passing, large sorted sets (Redis's skiplist encoding), generated stream ids, and
glob patterns in bulk."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvstore.drivers import Driver, MemoryDriver
from kvstore.drivers.base import Reply
from kvstore.drivers.redis import RedisDriver
from tests.differential.machine import outcome

pytestmark = pytest.mark.redis

Batch = Sequence[tuple[Any, ...]]


class Pair:
    """The memory driver and real Redis, fed the same batches."""

    def __init__(self, portal: BlockingPortal, url: str) -> None:
        self.portal = portal
        self.redis = RedisDriver.from_url(url)
        self.memory = MemoryDriver()

    def reset(self) -> None:
        self.memory = MemoryDriver()
        self.run(self.redis, [("FLUSHDB",)])

    def run(self, driver: Driver, batch: Batch) -> list[Reply]:
        return self.portal.call(driver.execute, batch)

    def both(self, batch: Batch) -> tuple[list[Reply], list[Reply]]:
        """Run ``batch`` on each; returns the memory driver's replies, then Redis's."""
        return self.run(self.memory, batch), self.run(self.redis, batch)

    def same(self, batch: Batch) -> list[Reply]:
        """Run ``batch`` on each and assert the same outcome, errors included."""
        redis = outcome(batch, lambda: self.run(self.redis, batch))
        memory = outcome(batch, lambda: self.run(self.memory, batch))
        assert memory == redis, f"\nbatch: {batch!r}"
        return memory[1]  # type: ignore[index,no-any-return]


@pytest.fixture
def pair(portal: BlockingPortal, differential_redis_url: str) -> Iterator[Pair]:
    pair = Pair(portal, differential_redis_url)
    try:
        yield pair
    finally:
        portal.call(pair.redis.aclose)


def test_expired_keys_disappear(pair: Pair) -> None:
    pair.same(
        [
            ("SET", "short", "v", "PX", 100),
            ("HSET", "hash", "f", "v"),
            ("PEXPIRE", "hash", 100),
            ("ZADD", "zset", 1, "m"),
            ("EXPIRE", "zset", 1),
            ("SET", "kept", "v"),
            ("SET", "later", "v", "EX", 1000),
        ]
    )
    time.sleep(1.2)
    # EXISTS first: Redis's DBSIZE also counts expired keys nothing has touched yet.
    pair.same(
        [
            ("EXISTS", "short", "hash", "zset", "kept", "later"),
            ("GET", "short"),
            ("TTL", "hash"),
            ("PTTL", "zset"),
            ("TYPE", "hash"),
            ("SCAN", 0, "COUNT", 1000),
            ("DBSIZE",),
            ("TTL", "later"),
        ]
    )


def _big_set(name: str, size: int, scores: Sequence[Any]) -> tuple[Any, ...]:
    pairs = [word for i in range(size) for word in (scores[i % len(scores)], f"m{i:03}")]
    return ("ZADD", name, *pairs)


def test_large_sorted_sets_keep_negative_zero(pair: Pair) -> None:
    # Past 128 members (or with a member over 64 bytes) Redis switches to a skiplist of
    # doubles, which keeps -0 where the small form stores 0.
    pair.same([_big_set("big", 129, [1, 2, 3]), _big_set("small", 128, [1, 2, 3])])
    pair.same(
        [
            ("ZADD", "big", "-0", "neg"),
            ("ZADD", "small", "-0", "neg"),
            ("ZADD", "long", "-0", "x" * 65),
            ("ZADD", "long", "-0", "short"),
            ("ZSCORE", "big", "neg"),
            ("ZSCORE", "small", "neg"),
            ("ZMSCORE", "long", "x" * 65, "short"),
            ("ZINCRBY", "big", "-0", "neg"),
            ("ZINCRBY", "big", 0, "neg"),
            ("ZSCORE", "big", "neg"),
            ("ZADD", "small", "-0", "neg2"),  # the 129th member converts it
            ("ZSCORE", "small", "neg"),
            ("ZSCORE", "small", "neg2"),
            ("ZRANGE", "big", "-inf", 0, "BYSCORE", "WITHSCORES"),
            ("ZRANGE", "small", 0, 2, "WITHSCORES"),
            ("ZREM", "small", *(f"m{i:03}" for i in range(128))),
            ("ZADD", "small", "-0", "neg3"),  # Redis never converts back
            ("ZRANGE", "small", 0, -1, "WITHSCORES"),
        ]
    )


_MEMBERS = [f"m{i:03}" for i in range(300)]
_SCORES = [0, 1, 1.5, 2, "-inf", "+inf", -1, 2.5, 1e20]


def _zset_queries() -> st.SearchStrategy[tuple[Any, ...]]:
    members = st.sampled_from(_MEMBERS)
    ranks = st.integers(-320, 320)
    bounds = st.sampled_from(["-inf", "+inf", "0", "(0", "1", "(1", "1.5", "(2", "2.5", "(1e20"])
    lex = st.sampled_from(["-", "+", "[m100", "(m100", "[m2", "(m25", "[m", "[m299", "(m000"])
    limit = st.tuples(st.just("LIMIT"), st.integers(-1, 310), st.integers(-1, 40))
    rev = st.sampled_from([(), ("REV",)])
    return st.one_of(
        st.tuples(st.just("ZADD"), st.just("big"), st.sampled_from(_SCORES), members),
        st.tuples(st.just("ZINCRBY"), st.just("big"), st.sampled_from([1, -1, 0.5]), members),
        st.tuples(st.just("ZREM"), st.just("big"), members),
        st.tuples(st.just("ZRANK"), st.just("big"), members),
        st.tuples(st.just("ZREVRANK"), st.just("big"), members),
        st.tuples(st.just("ZRANGE"), st.just("big"), ranks, ranks, st.just("WITHSCORES")),
        st.tuples(st.just("ZRANGE"), st.just("big"), bounds, bounds, st.just("BYSCORE"), rev,
                  limit).map(_flat),
        st.tuples(st.just("ZRANGE"), st.just("lex"), lex, lex, st.just("BYLEX"), rev,
                  limit).map(_flat),
        st.tuples(st.just("ZCOUNT"), st.just("big"), bounds, bounds),
        st.tuples(st.just("ZREMRANGEBYRANK"), st.just("big"), ranks, ranks),
        st.tuples(st.just("ZREMRANGEBYSCORE"), st.just("big"), bounds, bounds),
    )  # fmt: skip


def _flat(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(w for part in parts for w in (part if isinstance(part, tuple) else (part,)))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(queries=st.lists(_zset_queries(), min_size=1, max_size=30))
def test_large_sorted_sets_match_redis(pair: Pair, queries: list[tuple[Any, ...]]) -> None:
    pair.reset()
    pair.same(
        [
            _big_set("big", 300, _SCORES),
            # One score for all: BYLEX is then defined whatever the encoding.
            _big_set("lex", 300, [0]),
        ]
    )
    for query in queries:
        pair.same([query])


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, seq = raw.split(b"-")
    return int(ms), int(seq)


def test_generated_stream_ids(pair: Pair) -> None:
    adds = [("XADD", "s", "*", "n", i) for i in range(20)]
    for driver in (pair.memory, pair.redis):
        ids = [*pair.run(driver, adds), pair.run(driver, [("XADD", "s", "*", "n", 20)])[0]]
        parsed = [_stream_id(i) for i in ids]  # type: ignore[arg-type]
        assert parsed == sorted(set(parsed)), "ids must be strictly increasing"
        assert abs(parsed[0][0] - time.time() * 1000) < 10_000, "ids carry the wall clock"
        # Within one millisecond the sequence counts up from 0.
        for (ms, seq), (next_ms, next_seq) in itertools.pairwise(parsed):
            assert next_seq == (seq + 1 if next_ms == ms else 0)
        # "<ms>-*" continues the last millisecond's sequence; an id at the top is refused.
        ms, seq = parsed[-1]
        assert pair.run(driver, [("XADD", "s", f"{ms}-*", "n", "x")]) == [b"%d-%d" % (ms, seq + 1)]
    # Ids now differ between the two; everything else about the streams must not.
    assert pair.both([("XLEN", "s")]) == ([22], [22])
    memory, redis = pair.both([("XRANGE", "s", "-", "+", "COUNT", 3), ("XREVRANGE", "s", "+", "-")])
    assert [[e[1] for e in r] for r in memory] == [[e[1] for e in r] for r in redis]  # type: ignore[union-attr,index]
    pair.same([("XADD", "s", "1-1", "n", "x"), ("XADD", "s", "*", "n", "y", "extra")])


_GLOB_KEYS = [
    b"", b"a", b"ab", b"abc", b"b", b"ba", b"*", b"?", b"[", b"]", b"\\", b"a*c", b"a?c",
    b"a[b]c", b"^", b"-", b"a-c", "ключ".encode(), b"\x80", b"\xff", b"A", b"aa", b"a\\b",
    b"a\x80b", b"\x7f",
]  # fmt: skip
_GLOB_BYTES = st.sampled_from([*(bytes([c]) for c in b"ab*?[]^-\\A"), b"\x80", b"\xff", b"\x7f"])


# Character classes, often with ranges across 0x80 (where C's signed chars bite).
_GLOB_CLASSES = st.tuples(
    st.sampled_from([b"[", b"[^"]), _GLOB_BYTES, st.sampled_from([b"-", b""]), _GLOB_BYTES,
    st.sampled_from([b"]", b""]),
).map(b"".join)  # fmt: skip


@pytest.fixture
def glob_keys(pair: Pair) -> Pair:
    pair.same([("MSET", *(w for key in _GLOB_KEYS for w in (key, "v")))])
    return pair


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pattern=st.lists(st.one_of(_GLOB_BYTES, _GLOB_CLASSES), max_size=5).map(b"".join))
def test_glob_patterns_match_redis(glob_keys: Pair, pattern: bytes) -> None:
    memory, redis = glob_keys.both([("SCAN", 0, "MATCH", pattern, "COUNT", 1000)])
    assert sorted(memory[0][1]) == sorted(redis[0][1]), pattern  # type: ignore[index,arg-type]
