"""The write journal (the hook for a future append-only file): replaying it rebuilds the
store, relative expiries and generated stream ids included."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from kvstore.drivers.base import Reply
from kvstore.drivers.memory import MemoryDriver
from kvstore.drivers.memory._journal import absolute_form
from kvstore.errors import BatchError
from tests.differential import strategies


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def _dump(driver: MemoryDriver) -> list[Reply]:
    """Everything a client can see of every key the strategies use."""
    probe: list[tuple[Any, ...]] = [("DBSIZE",)]
    for key in strategies.ALL_KEYS:
        probe += [("TYPE", key), ("PTTL", key), ("EXISTS", key)]
    replies = anyio.run(driver.execute, probe)
    kinds = replies[1::3]
    reads: list[tuple[Any, ...]] = []
    for key, kind in zip(strategies.ALL_KEYS, kinds, strict=True):
        reads.append(
            {
                b"string": ("GET", key),
                b"hash": ("HGETALL", key),
                b"set": ("SMEMBERS", key),
                b"zset": ("ZRANGE", key, 0, -1, "WITHSCORES"),
                b"stream": ("XRANGE", key, "-", "+"),
                b"none": ("EXISTS", key),
            }[kind]  # type: ignore[index]
        )
    contents = anyio.run(driver.execute, reads)
    return [*replies, *(sorted(r) if isinstance(r, list) and k == b"set" else r
                        for r, k in zip(contents, kinds, strict=True))]  # type: ignore[type-var]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.lists(strategies.COMMANDS, min_size=1, max_size=4), st.integers(0, 300_000)),
        max_size=12,
    )
)
def test_replaying_the_journal_rebuilds_the_store(steps: list[tuple[list[Any], int]]) -> None:
    clock = Clock()
    original = MemoryDriver(clock=clock)
    journal: list[list[bytes]] = []
    original._journal = journal.append
    for batch, elapsed in steps:
        clock.now += elapsed
        with contextlib.suppress(BatchError):
            anyio.run(original.execute, batch)
    # Replay at another time (earlier, so that nothing expires on the way, but any time
    # would do) and compare at the original's time: the journal holds no relative times.
    replica_clock = Clock()
    replica_clock.now -= 10_000_000
    replica = MemoryDriver(clock=replica_clock)
    for command in journal:
        anyio.run(replica.execute, [command])  # raises if a recorded write fails on replay
    replica_clock.now = clock.now
    assert _dump(replica) == _dump(original)


def test_relative_times_become_absolute() -> None:
    now = 1_000_000
    assert absolute_form("EXPIRE", [b"k", b"10", b"NX"], now, 1) == [
        b"PEXPIREAT", b"k", b"1010000", b"NX"
    ]  # fmt: skip
    assert absolute_form("PEXPIRE", [b"k", b"5"], now, 1) == [b"PEXPIREAT", b"k", b"1000005"]
    # A deadline not in the future deleted the key: that is what gets recorded.
    assert absolute_form("PEXPIRE", [b"k", b"-5"], now, 1) == [b"DEL", b"k"]
    assert absolute_form("EXPIRE", [b"k", b"0"], now, 1) == [b"DEL", b"k"]
    assert absolute_form("PEXPIREAT", [b"k", b"1"], now, 0) == [b"PEXPIREAT", b"k", b"1"]
    assert absolute_form("EXPIREAT", [b"k", b"7000"], now, 1) == [b"PEXPIREAT", b"k", b"7000000"]
    assert absolute_form("SET", [b"k", b"v", b"GET", b"ex", b"2", b"NX"], now, None) == [
        b"SET", b"k", b"v", b"NX", b"GET", b"PXAT", b"1002000"
    ]  # fmt: skip
    assert absolute_form("SET", [b"k", b"v", b"PX", b"5", b"PX", b"7"], now, b"OK") == [
        b"SET", b"k", b"v", b"PXAT", b"1000007"
    ]  # fmt: skip
    assert absolute_form("XADD", [b"s", b"MAXLEN", b"5", b"*", b"f", b"v"], now, b"1000-3") == [
        b"XADD", b"s", b"MAXLEN", b"5", b"1000-3", b"f", b"v"
    ]  # fmt: skip
    assert absolute_form("INCR", [b"n"], now, 4) == [b"INCR", b"n"]


def test_expired_keys_are_journaled_as_deletions() -> None:
    clock = Clock()
    driver = MemoryDriver(clock=clock)
    journal: list[list[bytes]] = []
    driver._journal = journal.append
    anyio.run(driver.execute, [("SET", "k", "v", "PX", 10), ("GET", "k")])
    clock.now += 11
    anyio.run(driver.execute, [("GET", "k")])
    assert journal == [[b"SET", b"k", b"v", b"PXAT", b"%d" % (clock.now - 1)], [b"DEL", b"k"]]
