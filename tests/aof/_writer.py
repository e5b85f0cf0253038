"""A writer for the crash test: batches to an append-only file, each acknowledged on stdout.

Usage: ``python tests/aof/_writer.py <path>``. Every batch sets ``x`` and ``y`` to the same
number and appends it to the stream ``log``, under ``fsync="always"``; its number is printed
(and flushed) once ``execute`` returned. Every fifth batch also writes a 256 KiB value, so that
a kill has long writes to land in.
"""

from __future__ import annotations

import sys

import anyio

from kvstore.drivers import MemoryDriver


async def main(path: str) -> None:
    async with MemoryDriver(path, fsync="always") as driver:
        print("ready", flush=True)
        number = 0
        while True:
            number += 1
            blob = b"b" * (256 << 10 if number % 5 == 0 else 8)
            await driver.execute(
                [
                    ["SET", "x", number],
                    ["XADD", "log", "*", "n", number],
                    ["SET", "blob", blob],
                    ["SET", "y", number],
                ]
            )
            print(number, flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
