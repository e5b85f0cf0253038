"""Opening a damaged file: a torn last record is dropped with a warning, anything else is an
error naming the offset; nothing is ever loaded half-way or skipped silently."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import pytest

from kvstore import PersistenceError
from kvstore.drivers import MemoryDriver
from kvstore.drivers.memory._aof import HEADER, MAGIC
from tests.aof.conftest import dump

pytestmark = pytest.mark.anyio


async def write_batches(path: Path, count: int) -> list[int]:
    """``count`` two-command batches; returns the offset where each one's record starts."""
    starts = []
    async with MemoryDriver(path, fsync="no") as driver:
        for i in range(count):
            starts.append(path.stat().st_size)
            await driver.execute([["SET", f"k{i}", f"v{i}"], ["HSET", "h", f"f{i}", i]])
    return starts


async def assert_holds(path: Path, count: int) -> None:
    """The file holds exactly the first ``count`` batches, each whole; opens without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with MemoryDriver(path) as driver:
            state = await dump(driver)
    assert set(state) == {f"k{i}".encode() for i in range(count)} | ({b"h"} if count else set())
    if count:
        assert state[b"h"][1][::2] == [f"f{i}".encode() for i in range(count)]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    ["cut in the payload", "cut in the header", "bad payload checksum", "zeros after it"],
)
async def test_a_torn_last_record_is_dropped_with_a_warning(path: Path, damage: str) -> None:
    starts = await write_batches(path, 5)
    last, size = starts[-1], path.stat().st_size
    if damage == "cut in the payload":
        with path.open("r+b") as f:
            f.truncate(size - 3)
    elif damage == "cut in the header":
        with path.open("r+b") as f:
            f.truncate(last + 7)
    elif damage == "bad payload checksum":
        flip(path, size - 1)
    else:  # a file system that allocated space for the record but wrote nothing into it
        data = bytearray(path.read_bytes())
        data[last:] = bytes(4096)
        path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match=f"incomplete last record at offset {last} "):
        driver = MemoryDriver(path)
    async with driver:
        assert await driver.execute([["GET", "k3"], ["GET", "k4"]]) == [b"v3", None]
        assert path.stat().st_size == last  # cut back before anything is appended
        await driver.execute([["SET", "k4", "v4"], ["HSET", "h", "f4", 4]])
    await assert_holds(path, 5)


async def test_a_file_cut_inside_its_header_starts_over(path: Path) -> None:
    path.write_bytes(HEADER[:5])  # a crash while the file was created
    with pytest.warns(RuntimeWarning, match="offset 0"):
        driver = MemoryDriver(path)
    async with driver:
        await driver.execute([["SET", "k0", "v0"], ["HSET", "h", "f0", 0]])
    await assert_holds(path, 1)


@pytest.mark.parametrize("where", ["payload", "length", "payload checksum"])
async def test_a_bad_record_in_the_middle_is_an_error_naming_its_offset(
    path: Path, where: str
) -> None:
    starts = await write_batches(path, 5)
    bad = starts[2]
    flip(path, {"payload": bad + 14, "length": bad + 1, "payload checksum": bad + 5}[where])
    damaged = path.read_bytes()
    with pytest.raises(PersistenceError, match=f"corrupt record at offset {bad}:") as caught:
        MemoryDriver(path)
    assert caught.value.offset == bad
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == damaged  # nothing truncated or rewritten
    with pytest.raises(PersistenceError):  # and the lock was released
        MemoryDriver(path)


async def test_a_record_that_decodes_to_nonsense_is_an_error(path: Path) -> None:
    await write_batches(path, 1)
    payload = b"\x92\x00\x91\x91\xc4\x03GET"  # [0, [["GET"]]]: not a write
    lengths = struct.pack("<II", len(payload), zlib.crc32(payload))
    with path.open("ab") as f:
        f.write(lengths + struct.pack("<I", zlib.crc32(lengths)) + payload)
    with pytest.raises(PersistenceError, match="is not a write command"):
        MemoryDriver(path)


async def test_an_unknown_format_version_is_refused(path: Path) -> None:
    head = MAGIC + struct.pack("<I", 2)
    path.write_bytes(head + struct.pack("<I", zlib.crc32(head)))
    with pytest.raises(
        PersistenceError, match="format version 2, and this kvstore reads version 1"
    ):
        MemoryDriver(path)


@pytest.mark.parametrize("content", [b"*2\r\n$3\r\nSET\r\n", HEADER[:12] + b"\x00\x00\x00\x00"])
async def test_other_files_are_refused(path: Path, content: bytes) -> None:
    path.write_bytes(content + b"x" * 40)
    with pytest.raises(PersistenceError, match=r"not a kvstore append-only file|damaged header"):
        MemoryDriver(path)
    assert path.read_bytes() == content + b"x" * 40


async def test_an_empty_file_is_a_new_store(path: Path) -> None:
    path.touch()
    await write_batches(path, 2)
    await assert_holds(path, 2)
