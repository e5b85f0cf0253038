"""Random batches of writes, at moving times, with rewrites in between: a reopened file
always holds exactly what the driver held."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvstore import BatchError
from kvstore.drivers import MemoryDriver
from tests.aof.conftest import T0, Clock, dump

pytestmark = pytest.mark.anyio

# Few keys, so that commands meet each other's keys (and types: WRONGTYPE errors happen).
keys = st.sampled_from(["a", "b", "c", "d"])
small = st.integers(-3, 3)
members = st.sampled_from(["m", "n", "o"])
scores = st.sampled_from(["0", "1.5", "-2", "+inf", "-inf", "1e16", "(1"])
millis = st.integers(-1000, 5000)
expiry_flags = st.lists(st.sampled_from(["NX", "XX", "GT", "LT"]), max_size=1)


def _set(key: str, value: int, option: list[Any]) -> list[Any]:
    return ["SET", key, value, *option]


commands = st.one_of(
    st.builds(
        _set,
        keys,
        small,
        st.sampled_from(
            [[], ["PX", 800], ["EX", 2], ["KEEPTTL"], ["NX"], ["XX", "GET"], ["PXAT", T0 + 1500]]
        ),
    ),
    st.builds(lambda k1, k2: ["DEL", k1, k2], keys, keys),
    st.builds(lambda k1, k2, v: ["MSET", k1, v, k2, v], keys, keys, small),
    st.builds(lambda k, n: ["INCRBY", k, n], keys, small),
    st.builds(lambda k, f, v: ["HSET", k, f, v], keys, members, small),
    st.builds(lambda k, f: ["HDEL", k, f], keys, members),
    st.builds(lambda k, f, n: ["HINCRBY", k, f, n], keys, members, small),
    st.builds(lambda k, m: ["SADD", k, m], keys, members),
    st.builds(lambda k, m: ["SREM", k, m], keys, members),
    st.builds(
        lambda k, opts, s, m: ["ZADD", k, *opts, s, m],
        keys,
        st.lists(st.sampled_from(["NX", "XX", "GT", "LT", "CH", "INCR"]), max_size=2, unique=True),
        scores,
        members,
    ),
    st.builds(lambda k, n, m: ["ZINCRBY", k, n, m], keys, small, members),
    st.builds(lambda k, m: ["ZREM", k, m], keys, members),
    st.builds(lambda k, lo: ["ZREMRANGEBYSCORE", k, lo, "+inf"], keys, scores),
    st.builds(
        lambda k, opts, i: ["XADD", k, *opts, i, "f", "v"],
        keys,
        st.sampled_from([[], ["MAXLEN", "2"], ["NOMKSTREAM"], ["MINID", "5-0"]]),
        st.sampled_from(["*", "*", "5-*", "7-1", f"{T0 + 9000}-0"]),
    ),
    st.builds(lambda k, i: ["XDEL", k, i], keys, st.sampled_from(["7-1", "5-0", "5-1"])),
    st.builds(lambda k, n: ["XTRIM", k, "MAXLEN", n], keys, st.integers(0, 2)),
    st.builds(
        lambda name, k, n, flags: [name, k, n, *flags],
        st.sampled_from(["EXPIRE", "PEXPIRE"]),
        keys,
        millis,
        expiry_flags,
    ),
    st.builds(
        lambda name, k, n, flags: [name, k, n, *flags],
        st.sampled_from(["PEXPIREAT", "EXPIREAT"]),
        keys,
        st.sampled_from([T0 - 1, T0 + 2000, T0 + 9000, (T0 + 3000) // 1000]),
        expiry_flags,
    ),
    st.builds(lambda k: ["PERSIST", k], keys),
    st.just(["FLUSHDB"]),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.lists(commands, min_size=1, max_size=4), st.integers(0, 1500)),
        st.just("rewrite"),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
async def test_a_reopened_file_holds_what_the_driver_held(steps: list[Any]) -> None:
    clock = Clock()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data.aof"
        async with MemoryDriver(path, fsync="no", clock=clock) as driver:
            for step in steps:
                if step == "rewrite":
                    await driver.rewrite()
                    continue
                batch, elapsed = step
                clock.now += elapsed
                # The commands that worked stay applied, and recorded.
                with contextlib.suppress(BatchError):
                    await driver.execute(batch)
            before = await dump(driver)
        async with MemoryDriver(path, clock=clock) as driver:
            assert await dump(driver) == before
