"""Rewriting compacts the file, keeps every key as it is, and loses no write made meanwhile."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.from_thread
import pytest

from kvstore import CommandError, PersistenceError
from kvstore.drivers import MemoryDriver
from kvstore.drivers.memory import _aof
from kvstore.drivers.memory._rewrite import Copy
from tests.aof.conftest import T0, Clock, dump
from tests.aof.test_roundtrip import write_every_type

pytestmark = pytest.mark.anyio


async def test_rewrite_shrinks_the_file_and_keeps_every_key(path: Path) -> None:
    clock = Clock()
    async with MemoryDriver(path, clock=clock) as driver:
        await write_every_type(driver, clock)
        for i in range(300):
            await driver.execute([["SET", "counter", i], ["HSET", "h", "count", i]])
            await driver.execute([["ZADD", "z", i, "a"], ["XADD", "log", "MAXLEN", 5, "*", "i", i]])
        await driver.execute([["XADD", "gone", "9-9", "f", "v"], ["XDEL", "gone", "9-9"]])
        before = await dump(driver)
        grown = path.stat().st_size
        await driver.rewrite()
        assert path.stat().st_size < grown / 10
        assert await dump(driver) == before
        await driver.execute([["SET", "after", "rewrite"]])  # appended to the new file
        before = await dump(driver)
    assert before[b"gone"] == (b"stream", [], -1)  # an empty stream is a key too
    async with MemoryDriver(path, clock=clock) as driver:
        assert await dump(driver) == before
        # The streams' last ids came back too.
        with pytest.raises(CommandError, match="equal or smaller"):
            await driver.execute([["XADD", "gone", "9-9", "f", "v"]])
        [last] = await driver.execute([["XREVRANGE", "log", "+", "-", "COUNT", 1]])
        with pytest.raises(CommandError, match="equal or smaller"):
            await driver.execute([["XADD", "log", last[0][0], "f", "v"]])


async def test_a_large_keyspace_rewrites_in_chunks(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_aof, "_REWRITE_BUDGET", 100)
    monkeypatch.setattr(_aof, "_RECORD_TARGET", 4096)  # many records, and many flushes
    async with MemoryDriver(path) as driver:
        await driver.execute([["SET", f"s{i}", i] for i in range(2000)])
        await driver.execute([["HSET", "big", *(str(i) for i in range(5000))]])
        await driver.execute([["ZADD", "zbig", *(str(i) for i in range(3000))]])
        before = await dump(driver)
        await driver.rewrite()
    async with MemoryDriver(path) as driver:
        assert await dump(driver) == before


@pytest.fixture
def between_chunks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make each key the rewrite serialises first call the hooks in the returned list.

    The rewrite serialises outside the driver's lock, in a worker thread, so a hook can run a
    batch on the event loop right there, between two chunks, deterministically.
    """
    hooks: list[object] = []
    rebuild = _aof.rebuild

    def hooked(copy: Copy) -> Iterator[list[bytes]]:
        for hook in hooks:
            hook(copy)  # type: ignore[operator]
        return rebuild(copy)

    monkeypatch.setattr(_aof, "rebuild", hooked)
    monkeypatch.setattr(_aof, "_REWRITE_BUDGET", 1)  # one key per chunk
    return hooks


async def test_writes_during_a_rewrite_are_kept(path: Path, between_chunks: list[object]) -> None:
    clock = Clock()
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(60)]
    async with MemoryDriver(path, clock=clock) as driver:
        for key in keys:
            await driver.execute([["HSET", key, "n", 0], ["SET", f"{key}:s", 0, "PX", 100_000]])
        await driver.execute([["XADD", "log", "1-1", "f", "v"]])

        def write_something(copy: Copy) -> None:
            # Whatever the key being copied: writes to keys copied already, not yet, new ones,
            # several at once, expiring ones; increments, which replayed twice would show.
            a, b = rng.sample(keys, 2)
            batch = [
                ["HINCRBY", a, "n", 1],
                ["HINCRBY", copy[0], "n", 1] if copy[1] == b"hash" else ["PING"],
                ["INCR", f"{b}:s"],
                ["DEL", f"{a}:s", "new:1", f"{b}:gone"],
                ["MSET", f"{b}:s", 5, f"new:{rng.randrange(9)}", "x", f"{a}:m", "y"],
                ["PEXPIRE", f"{b}:s", rng.randrange(1, 5000)],
                ["XADD", "log", "*", "f", "v"],
                ["SADD", f"set:{rng.randrange(5)}", rng.randrange(20)],
            ]
            clock.now += rng.randrange(0, 3000)  # so some keys expire (logged as DEL)
            anyio.from_thread.run(driver.execute, batch)

        between_chunks.append(write_something)
        await driver.rewrite()
        between_chunks.clear()
        before = await dump(driver)
    assert sum(int(value[1]) for kind, value, _ in before.values() if kind == b"hash") > 60
    async with MemoryDriver(path, clock=clock) as driver:
        assert await dump(driver) == before


async def test_flushdb_during_a_rewrite(path: Path, between_chunks: list[object]) -> None:
    async with MemoryDriver(path) as driver:
        await driver.execute([["SET", f"k{i}", i] for i in range(10)])
        seen: list[bytes] = []

        def flush_at_the_fifth(copy: Copy) -> None:
            seen.append(copy[0])
            if len(seen) == 5:
                anyio.from_thread.run(
                    driver.execute,
                    # k1 was copied already, k7 not yet: both must come back after the flush.
                    [
                        ["SET", "k9", "before"],
                        ["FLUSHDB"],
                        ["SET", "k1", "after"],
                        ["SET", "k7", "7"],
                    ],
                )

        between_chunks.append(flush_at_the_fifth)
        await driver.rewrite()
        assert len(seen) == 5  # the keys not copied yet were gone
        before = await dump(driver)
    assert before == {b"k1": (b"string", b"after", -1), b"k7": (b"string", b"7", -1)}
    async with MemoryDriver(path) as driver:
        assert await dump(driver) == before


async def test_writes_from_threads_during_rewrites(path: Path) -> None:
    """Unscripted interleavings: threads write while the event loop rewrites, repeatedly."""
    async with MemoryDriver(path, fsync="no") as driver:
        await driver.execute([["SET", f"k{i}", "x" * 50] for i in range(3000)])
        done = threading.Event()

        def writer(number: int) -> None:
            n = 0
            while not done.is_set():
                n += 1
                anyio.run(
                    driver.execute, [["INCR", f"c{number}"], ["HSET", f"k{n % 3000}:h", "n", n]]
                )

        async with anyio.create_task_group() as tasks:
            for number in range(3):
                tasks.start_soon(anyio.to_thread.run_sync, writer, number)
            try:
                for _ in range(5):
                    await driver.rewrite()
            finally:
                done.set()
        before = await dump(driver)
    async with MemoryDriver(path) as driver:
        assert await dump(driver) == before


async def test_the_lock_moves_to_the_rewritten_file(path: Path) -> None:
    async with MemoryDriver(path) as driver:
        await driver.execute([["SET", "a", "1"]])
        await driver.rewrite()
        with pytest.raises(PersistenceError, match="in use"):
            MemoryDriver(path)
    assert not path.with_name("data.aof.rewrite").exists()
    async with MemoryDriver(path) as driver:
        assert await driver.execute([["GET", "a"]]) == [b"1"]


async def test_rewrite_runs_by_itself_as_the_file_grows(path: Path) -> None:
    async with MemoryDriver(path, auto_rewrite_min_size=20_000, auto_rewrite_ratio=2) as driver:
        for i in range(3000):
            await driver.execute([["SET", "k", "v" * (i % 10)]])
            if path.stat().st_size < 20_000 and i > 1000:
                break  # compacted by the background rewrite, which ran meanwhile
            if i % 100 == 0:
                await anyio.sleep(0.01)
        else:
            pytest.fail("the file was never rewritten")
        before = await dump(driver)
    async with MemoryDriver(path) as driver:
        assert await dump(driver) == before


async def test_a_rewrite_left_behind_by_a_crash_is_removed(path: Path) -> None:
    async with MemoryDriver(path) as driver:
        await driver.execute([["SET", "a", "1"]])
    leftover = path.with_name("data.aof.rewrite")
    leftover.write_bytes(b"half a rewrite")
    async with MemoryDriver(path) as driver:
        assert await driver.execute([["GET", "a"]]) == [b"1"]
    assert not leftover.exists()


async def test_a_deadline_survives_a_rewrite(path: Path) -> None:
    clock = Clock()
    async with MemoryDriver(path, clock=clock) as driver:
        await driver.execute(
            [["SET", "a", "1", "PX", 1000], ["HSET", "h", "f", "v"], ["PEXPIREAT", "h", T0 + 5]]
        )
        await driver.rewrite()
    clock.now += 500
    async with MemoryDriver(path, clock=clock) as driver:
        assert await driver.execute([["PTTL", "a"], ["EXISTS", "h"]]) == [500, 0]
