"""Rewriting compacts the file, keeps every key as it is, and loses no write made meanwhile."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from kvstore import CommandError, PersistenceError
from kvstore.drivers import MemoryDriver
from kvstore.drivers.memory import _aof, _rewrite
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


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of ``Capture.<name>``: the returned list's length."""
    calls: list[int] = []
    method = getattr(_rewrite.Capture, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(0)
        return method(*args, **kwargs)

    monkeypatch.setattr(_rewrite.Capture, name, counted)
    return calls


async def write_large_collections(driver: MemoryDriver, size: int) -> None:
    """A hash, a sorted set, a set and a stream of ``size`` elements each, and a string."""
    await driver.execute(
        [
            ["HSET", "h", *(word for i in range(size) for word in (f"f{i}", i))],
            ["ZADD", "z", *(word for i in range(size) for word in (i, f"m{i}"))],
            ["SADD", "s", *(f"m{i}" for i in range(size))],
            *(["XADD", "x", f"{i + 1}-0", "n", i] for i in range(size)),
            ["PEXPIREAT", "z", T0 + 10**9],
            ["SET", "small", 0],
        ]
    )


async def test_a_large_collection_is_copied_a_slice_at_a_time(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_aof, "_REWRITE_BUDGET", 100)
    takes = count_calls(monkeypatch, "take")
    clock = Clock()
    async with MemoryDriver(path, clock=clock) as driver:
        await write_large_collections(driver, 3000)
        await driver.execute([["XADD", "x", "9999-0", "n", 1], ["XDEL", "x", "9999-0"]])
        before = await dump(driver)
        await driver.rewrite()
        assert len(takes) >= 4 * 3000 // 100  # about 100 elements per hold of the lock
    async with MemoryDriver(path, clock=clock) as driver:
        assert await dump(driver) == before
        with pytest.raises(CommandError, match="equal or smaller"):  # the last id came back
            await driver.execute([["XADD", "x", "9999-0", "f", "v"]])


class HookedLock:
    """The append-only file's lock, calling ``hook`` each time another thread than the
    event loop's (the rewrite's) releases it: between two holds of a rewrite."""

    def __init__(self, lock: Any, hook: Callable[[], None]) -> None:
        self._lock, self._hook, self._loop = lock, hook, threading.get_ident()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()
        if threading.get_ident() != self._loop:
            self._hook()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def writes_to(key: str, n: int) -> list[list[object]]:
    """Writes to one of the collections: increments, which would show if replayed over a copy
    holding them already, and deletions of elements in slices not taken yet."""
    return {
        "h": [["HINCRBY", "h", "f0", 1], ["HDEL", "h", f"f{999 - n}"], ["HSET", "h", f"n{n}", n]],
        "z": [["ZINCRBY", "z", 1, "m0"], ["ZREM", "z", f"m{999 - n}"]],
        "s": [["SADD", "s", f"new{n}"], ["SREM", "s", f"m{999 - n}"]],
        "x": [["XADD", "x", "*", "n", n], ["XDEL", "x", f"{1000 - n}-0"]],
    }[key]


@pytest.mark.parametrize("target", ["h", "z", "s", "x"])
async def test_writes_to_a_collection_being_copied_in_slices(
    path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setattr(_aof, "_REWRITE_BUDGET", 100)
    takes = count_calls(monkeypatch, "take")
    restarts = count_calls(monkeypatch, "_restart")
    clock = Clock()
    async with MemoryDriver(path, clock=clock, fsync="no") as driver:
        await write_large_collections(driver, 1000)
        aof = driver._aof
        assert aof is not None
        holds = 0

        def write_between_holds() -> None:
            # Between every two holds, to every collection, copied, not copied yet, or being
            # copied, but to the one being copied only if it is the target.
            nonlocal holds
            holds += 1
            capture = aof._rewriting
            slices = capture._slices if capture is not None else None
            sliced = slices.key.decode() if slices is not None else None
            batch = [["INCR", "small"]]
            for key in "hzsx":
                if key != sliced or key == target:
                    batch += writes_to(key, holds)
            anyio.from_thread.run(driver.execute, batch)

        lock = aof._lock
        aof._lock = HookedLock(lock, write_between_holds)  # type: ignore[assignment]
        await driver.rewrite()
        aof._lock = lock
        before = await dump(driver)
    assert len(takes) > 3 * 1000 // 100  # the others were copied in slices meanwhile
    assert len(restarts) == 1  # the target, then copied whole
    assert int(before[b"small"][1]) == holds
    async with MemoryDriver(path, clock=clock) as driver:
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
