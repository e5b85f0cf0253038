"""A writer killed with SIGKILL mid-stream loses no acknowledged write and no half batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from kvstore import PersistenceError
from kvstore.drivers import MemoryDriver

pytestmark = pytest.mark.anyio

WRITER = Path(__file__).with_name("_writer.py")
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("acknowledged_before_kill", [1, 60, 250])
async def test_a_killed_writer_loses_no_acknowledged_write(
    path: Path, acknowledged_before_kill: int
) -> None:
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
    acknowledged = [int(line) for line in lines]
    assert acknowledged == list(range(1, len(acknowledged) + 1))
    with warnings.catch_warnings():
        # The kill may have torn the last record: then it is dropped, with a warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        driver = MemoryDriver(path)
    async with driver:
        x, y, length, entries = await driver.execute(
            [["GET", "x"], ["GET", "y"], ["XLEN", "log"], ["XRANGE", "log", "-", "+"]]
        )
    assert isinstance(x, bytes)
    # Every acknowledged batch is there, at most one more (done, killed before printing),
    # and each whole: x and y always agree, and the stream holds every number once.
    assert int(x) in (acknowledged[-1], acknowledged[-1] + 1)
    assert y == x
    assert length == int(x)
    assert [entry[1][1] for entry in entries] == [b"%d" % n for n in range(1, int(x) + 1)]
