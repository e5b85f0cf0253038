"""Opening, locking, URLs, fsync policies, closing, and a disk that refuses a write."""

from __future__ import annotations

import errno
import gc
import os
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from kvstore import PersistenceError, Storage
from kvstore.drivers import MemoryDriver
from kvstore.drivers.memory import _aof
from kvstore.errors import UnsupportedError
from kvstore.storage import driver_from_url
from tests.aof.conftest import dump

pytestmark = pytest.mark.anyio


def flushers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kvstore-aof-fsync")]


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (a background thread's doing); no deadline is asserted,
    but a condition that never comes fails the test instead of hanging it."""
    for _ in range(30_000):
        if condition():
            return
        await anyio.sleep(0.001)
    pytest.fail(f"never happened: {what}")


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
async def test_every_fsync_policy_keeps_the_writes(
    path: Path, fsync: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[str] = []  # the thread of each sync of this file
    ticks = [0]  # rounds of the everysec flusher
    sync, tick = _aof._sync, _aof.AppendOnlyFile._sync_if_dirty

    def counted_sync(fd: int) -> None:
        if os.path.samestat(os.fstat(fd), path.stat()):
            syncs.append(threading.current_thread().name)
        sync(fd)

    def counted_tick(aof: _aof.AppendOnlyFile) -> bool:
        go_on = tick(aof)
        ticks[0] += aof.path == path
        return go_on

    monkeypatch.setattr(_aof, "_sync", counted_sync)
    monkeypatch.setattr(_aof.AppendOnlyFile, "_sync_if_dirty", counted_tick)
    monkeypatch.setattr(_aof, "_FLUSH_INTERVAL", 0.001)  # "every second", quicker
    me, flusher = threading.current_thread().name, f"kvstore-aof-fsync {path}"
    async with MemoryDriver(path, fsync=fsync) as driver:  # type: ignore[arg-type]
        syncs.clear()  # creating the file synced it under every policy
        for n in range(1, 6):
            await driver.execute([["SET", "a", "1"], ["SADD", "s", "x"], ["SET", "b", n]])
            # always: synced by the writer before the batch returned, once per batch.
            assert syncs.count(me) == (n if fsync == "always" else 0)
        if fsync == "everysec":
            # Synced by the flusher instead, and only when there was a write to sync: once
            # it has gone a full round after the last write, its later rounds sync nothing.
            after_writes = ticks[0]
            await wait_for(lambda: ticks[0] >= after_writes + 2, "two rounds of the flusher")
            assert set(syncs) == {flusher}
            synced, after_sync = len(syncs), ticks[0]
            await wait_for(lambda: ticks[0] >= after_sync + 3, "three more rounds")
            assert len(syncs) == synced
        else:
            assert ticks == [0]  # no flusher
        if fsync == "no":
            assert syncs == []  # the OS's business
        await driver.execute([["SET", "b", "2"]])
        mine = syncs.count(me)
    assert syncs.count(me) == mine + 1  # closing syncs, under every policy
    async with MemoryDriver.from_url(f"memory://{path}?fsync={fsync}") as driver:
        assert await driver.execute([["MGET", "a", "b"], ["SMEMBERS", "s"]]) == [
            [b"1", b"2"],
            [b"x"],
        ]


async def test_the_everysec_flusher_starts_and_stops_with_the_driver(path: Path) -> None:
    others = set(flushers())
    driver = MemoryDriver(path, fsync="everysec")
    [thread] = set(flushers()) - others
    assert thread.daemon
    await driver.execute([["SET", "a", "1"]])
    await driver.aclose()
    assert not thread.is_alive()
    await driver.aclose()  # closing twice is harmless
    for fsync in ("always", "no"):
        async with MemoryDriver(path, fsync=fsync):  # type: ignore[arg-type]
            assert set(flushers()) <= others


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("a directory", "cannot open it: Is a directory"),
        ("under a file", "cannot create its directory: File exists"),
        ("deeper under a file", "cannot create its directory: Not a directory"),
    ],
)
async def test_a_path_that_cannot_hold_the_file_is_a_persistence_error(
    tmp_path: Path, where: str, problem: str
) -> None:
    (tmp_path / "file").touch()
    path = {
        "a directory": tmp_path,
        "under a file": tmp_path / "file" / "x.aof",
        "deeper under a file": tmp_path / "file" / "dir" / "x.aof",
    }[where]
    with pytest.raises(PersistenceError, match=problem) as caught:
        MemoryDriver(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(PersistenceError, match=problem):
        Storage.from_url(f"memory://{path}")


async def test_a_second_driver_on_the_file_is_refused(path: Path) -> None:
    async with MemoryDriver(path) as driver:
        await driver.execute([["SET", "a", "1"]])
        with pytest.raises(PersistenceError, match="in use by another driver") as caught:
            MemoryDriver(path)
        assert caught.value.path == str(path)
        with pytest.raises(PersistenceError, match="in use"):
            Storage.from_url(f"memory://{path}")
        assert await driver.execute([["GET", "a"]]) == [b"1"]  # the first one is unharmed
    async with MemoryDriver(path) as driver:  # closed: free again
        assert await driver.execute([["GET", "a"]]) == [b"1"]


async def test_a_closed_driver_refuses_commands(path: Path) -> None:
    driver = MemoryDriver(path)
    await driver.aclose()
    with pytest.raises(PersistenceError, match="closed"):
        await driver.execute([["GET", "a"]])
    with pytest.raises(PersistenceError, match="closed"):
        await driver.rewrite()


async def test_rewrite_needs_a_file() -> None:
    with pytest.raises(UnsupportedError, match="no file"):
        await MemoryDriver().rewrite()


async def test_a_failed_append_stops_the_driver(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = MemoryDriver(path, fsync="always")
    await driver.execute([["SET", "kept", "1"]])
    write_all = _aof._write_all

    def full_disk(fd: int, data: bytes | bytearray) -> None:
        write_all(fd, bytes(data)[:5])  # a part gets written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_aof, "_write_all", full_disk)
    with pytest.raises(PersistenceError, match=r"No space left on device.*applied in memory only"):
        await driver.execute([["SET", "lost", "1"]])
    monkeypatch.undo()
    with pytest.raises(PersistenceError, match="earlier write to the file failed"):
        await driver.execute([["GET", "kept"]])
    await driver.aclose()
    async with MemoryDriver(path) as reopened:  # the part was cut off again
        assert await dump(reopened) == {b"kept": (b"string", b"1", -1)}


async def test_memory_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _aof.parse_url("memory://") == (None, {})
    assert _aof.parse_url("memory:///") == (None, {})
    assert _aof.parse_url("MEMORY:///abs/data.aof") == ("/abs/data.aof", {})
    assert _aof.parse_url("memory://rel/d.aof?fsync=no") == ("rel/d.aof", {"fsync": "no"})
    for bad, message in [
        ("memory:///x.aof?fsync=sometimes", "fsync must be"),
        ("memory:///x.aof?mode=1", "unknown option 'mode'"),
        ("memory://?fsync=always", "names no file"),
    ]:
        with pytest.raises(ValueError, match=message):
            driver_from_url(bad)
    with pytest.raises(ValueError, match="both"):
        MemoryDriver.from_url("memory:///x.aof?fsync=no", fsync="always")

    relative = MemoryDriver.from_url("memory://.kvstore/sub/kv.aof")  # directories created
    assert relative.path == str(tmp_path / ".kvstore/sub/kv.aof")
    assert (tmp_path / ".kvstore/sub/kv.aof").is_file()
    plain = driver_from_url("memory://")
    assert isinstance(plain, MemoryDriver)
    assert plain.path is None
    with_path = driver_from_url(f"memory://{tmp_path}/x.aof", fsync="no")
    assert isinstance(with_path, MemoryDriver)
    assert with_path.path == str(tmp_path / "x.aof")
    for driver in (relative, with_path):
        await driver.aclose()


async def test_a_driver_dropped_without_closing_releases_the_file(path: Path) -> None:
    driver = MemoryDriver(path, fsync="everysec")
    await driver.execute([["SET", "a", "1"]])
    [thread] = [t for t in flushers() if str(path) in t.name]
    del driver
    with pytest.warns(ResourceWarning, match="unclosed memory driver file"):
        gc.collect()
    thread.join()
    async with MemoryDriver(path) as reopened:
        assert await reopened.execute([["GET", "a"]]) == [b"1"]
