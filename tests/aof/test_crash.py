"""A writer killed with SIGKILL mid-stream loses no acknowledged write and no half batch, and
damage done to the file it left is found as the recovery rules say."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from kvstore import PersistenceError
from kvstore.drivers import MemoryDriver
from kvstore.drivers.memory._aof import HEADER

pytestmark = pytest.mark.anyio

WRITER = Path(__file__).with_name("_writer.py")
ROOT = Path(__file__).parents[2]


def write_until_killed(path: Path, acknowledged_before_kill: int) -> list[int]:
    """Run the writer on ``path``, SIGKILL it; the batches it acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline() == b"ready\n"
        # Another process cannot open the file meanwhile.
        with pytest.raises(PersistenceError, match="in use by another driver"):
            MemoryDriver(path)
        lines = [writer.stdout.readline() for _ in range(acknowledged_before_kill)]
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        lines += writer.stdout.read().splitlines()  # acknowledged before the kill, unread
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    return [int(line) for line in lines]


async def read_back(path: Path) -> tuple[bytes | None, bytes | None, int, list[bytes]]:
    """``x``, ``y``, the length of ``log`` and the numbers in it."""
    async with MemoryDriver(path) as driver:
        x, y, length, entries = await driver.execute(
            [["GET", "x"], ["GET", "y"], ["XLEN", "log"], ["XRANGE", "log", "-", "+"]]
        )
    return x, y, length, [entry[1][1] for entry in entries]


def record_starts(path: Path) -> list[int]:
    """Where each record of a sound file starts (walking the length fields)."""
    data = path.read_bytes()
    starts, offset = [], len(HEADER)
    while offset < len(data):
        starts.append(offset)
        offset += 12 + struct.unpack_from("<I", data, offset)[0]
    assert offset == len(data)
    return starts


@pytest.mark.parametrize("acknowledged_before_kill", [1, 60, 250])
async def test_a_killed_writer_loses_no_acknowledged_write(
    path: Path, acknowledged_before_kill: int
) -> None:
    acknowledged = write_until_killed(path, acknowledged_before_kill)
    assert acknowledged == list(range(1, len(acknowledged) + 1))
    size = path.stat().st_size
    with warnings.catch_warnings(record=True) as caught:
        # The kill may have torn the last record: then it is dropped, with a warning naming
        # where it started, which is where the file now ends.
        warnings.simplefilter("always")
        x, y, length, numbers = await read_back(path)
    torn = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(torn) <= 1, torn
    if torn:
        cut = int(re.findall(r"incomplete last record at offset (\d+) ", torn[0])[0])
        assert f"({size - cut} bytes," in torn[0]
        assert path.stat().st_size == cut
    else:
        assert path.stat().st_size == size
    assert isinstance(x, bytes)
    # Every acknowledged batch is there, at most one more (done, killed before printing),
    # and each whole: x and y always agree, and the stream holds every number once.
    assert int(x) in (acknowledged[-1], acknowledged[-1] + 1)
    assert y == x
    assert length == int(x)
    assert numbers == [b"%d" % n for n in range(1, int(x) + 1)]


async def test_damage_to_a_killed_writers_file_is_found(tmp_path: Path) -> None:
    path = tmp_path / "killed.aof"
    write_until_killed(path, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a torn record: the test above
        x, *_ = await read_back(path)
    assert x is not None
    batches = int(x)
    starts = record_starts(path)
    assert len(starts) == batches  # one record per batch
    sound = path.read_bytes()

    # The last record cut in its payload: dropped with a warning, every batch before it kept.
    last = starts[-1]
    torn = tmp_path / "torn.aof"
    torn.write_bytes(sound[: last + 12 + (len(sound) - last - 12) // 2])
    with pytest.warns(RuntimeWarning, match=f"incomplete last record at offset {last} "):
        x, y, length, numbers = await read_back(torn)
    assert x == y == b"%d" % (batches - 1)
    assert numbers == [b"%d" % n for n in range(1, batches)]
    assert length == batches - 1
    assert torn.stat().st_size == last

    # A byte flipped in a record with more after it: an error naming its offset, nothing
    # loaded, the file left as it was.
    bad = starts[len(starts) // 2]
    flipped = bytearray(sound)
    flipped[bad + 12 + 3] ^= 0x40
    damaged = tmp_path / "damaged.aof"
    damaged.write_bytes(bytes(flipped))
    with pytest.raises(PersistenceError, match=f"corrupt record at offset {bad}:") as caught:
        MemoryDriver(damaged)
    assert caught.value.offset == bad
    assert damaged.read_bytes() == bytes(flipped)
