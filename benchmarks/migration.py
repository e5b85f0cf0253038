"""Migration: copying a namespace with `kvstore.transfer.migrate`, time and peak memory.

A source namespace on the private Redis holds one thread of N messages (0.7 KB each,
stored through `save_messages`); `migrate(source, destination)` copies it to a fresh
namespace on the same Redis with its default batch size. Each size is migrated twice: once
to time it, once under `tracemalloc` for the peak of Python memory allocated during the
migration (tracemalloc slows Python down, so that run's time is not reported). The copy
of the largest size is checked with `verify`. Streaming means the peak depends on the
batch size, not on N.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import Report, fmt_int, line_chart
from benchmarks._workload import save_messages
from kvstore import Storage, Thread

NAME = "migration"
TITLE = "8. Migration: 10^5 messages, time and peak memory"

THREAD = "migrated"


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("kvstore.transfer", "redis"):
        raise SkipSection(note)
    from kvstore.drivers.redis import RedisDriver
    from kvstore.transfer import migrate, verify

    report.text(__doc__.split("\n\n", 1)[1])
    url = env.fresh_redis()
    sizes = env.mode.sizes(100_000)
    rows: list[list[Any]] = []
    peaks: list[float] = []
    verified = "not checked"
    async with RedisDriver.from_url(url) as driver:
        source = Storage(driver, namespace="migrate-source")
        await source.memory.save_thread(Thread(id=THREAD, resource_id="user-1"))
        have = 0
        for size in sizes:
            await save_messages(source, THREAD, have, size)
            have = size
            timed = Storage(driver, namespace=f"migrate-timed-{size}")
            started = time.perf_counter()
            copied = await migrate(source, timed)
            elapsed = time.perf_counter() - started
            traced = Storage(driver, namespace=f"migrate-traced-{size}")
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                await migrate(source, traced)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            peaks.append(peak / 2**20)
            records = sum(copied.values())
            rows.append(
                [
                    fmt_int(size),
                    fmt_int(records),
                    f"{elapsed:.2f} s",
                    fmt_int(records / elapsed),
                    f"{peak / 2**20:,.1f} MiB",
                ]
            )
            if size == sizes[-1]:
                checks = await verify(source, timed)
                verified = "yes" if all(c.ok for c in checks) else "**no**"
    report.table(
        ["messages", "records copied", "time", "records/s", "peak Python memory (tracemalloc)"],
        rows,
    )
    report.text(f"The copy of {sizes[-1]:,} messages matches its source (`verify`): {verified}.")
    chart = "migration_memory.png"
    line_chart(
        env.out / chart,
        title="migrate(): peak Python memory against messages migrated",
        x=sizes,
        series={"peak (tracemalloc), MiB": peaks},
        xlabel="messages in the source namespace (log)",
        ylabel="MiB",
    )
    report.image(chart, "migration peak memory")
    report.headline(
        f"migration of {sizes[-1]:,} messages: peak Python memory",
        "context (streaming: flat in N)",
        f"{peaks[-1]:,.1f} MiB (at {sizes[0]:,} messages: {peaks[0]:,.1f} MiB); {rows[-1][3]} "
        "records/s",
        None,
    )
    return report
