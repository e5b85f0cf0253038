"""Section 4: the memory driver against fakeredis, on the same domain operations.

Two stores hold the same dataset: one on `MemoryDriver`, one on fakeredis behind
`RedisDriver` (`RedisDriver(fakeredis.FakeAsyncRedis(protocol=2))`, with lupa running the
Lua scripts), the in-process alternative people use for tests and local runs. Every
public domain operation that can be called in a loop is timed on both, interleaved.
"""

from __future__ import annotations

import functools

from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import (
    TIMES,
    Contender,
    Report,
    bar_chart,
    fmt_ratio,
    fmt_time,
    interleave,
)
from benchmarks._workload import Dataset, operations, populate, repeatable
from kvstore import Storage
from kvstore.drivers.memory import MemoryDriver

NAME = "fakeredis"
TITLE = "4. Memory driver against fakeredis: the domain operations"

TARGET = 30


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("fakeredis", "lupa", "redis"):
        raise SkipSection(note)
    import fakeredis

    from kvstore.drivers.redis import RedisDriver

    report.text(__doc__.split("\n\n", 1)[1])
    size = Dataset.for_mode(env.mode.quick)
    report.text(
        f"Dataset in each store: {size.threads:,} threads of one resource, a thread of "
        f"{size.messages:,} messages, {size.runs:,} workflow runs, {size.scores:,} scores, "
        f"{size.traces:,} traces of 10 spans."
    )
    fake = RedisDriver(
        fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), protocol=2), owns_client=True
    )
    stores = {"memory": Storage(MemoryDriver()), "fakeredis": Storage(fake, owns_driver=True)}
    try:
        for store in stores.values():
            await populate(store, size)
        rows = []
        speedups: dict[str, float] = {}
        budget = env.mode.io
        for op in repeatable(operations(size)):
            contenders = [
                Contender(name, functools.partial(op.call, store)) for name, store in stores.items()
            ]
            stats = await interleave(contenders, budget)
            memory, fake_stats = stats["memory"], stats["fakeredis"]
            speedup = fake_stats.p50 / memory.p50
            speedups[f"{op.domain}.{op.name}"] = speedup
            rows.append(
                [
                    f"{op.domain}.{op.name}",
                    fmt_time(memory.p50),
                    fmt_time(memory.p99),
                    fmt_time(fake_stats.p50),
                    fmt_time(fake_stats.p99),
                    f"**{fmt_ratio(speedup)}**",
                    fmt_ratio(fake_stats.p99 / memory.p99),
                ]
            )
    finally:
        for store in stores.values():
            await store.aclose()
    report.table(
        [
            "operation",
            "memory p50",
            "memory p99",
            "fakeredis p50",
            "fakeredis p99",
            f"speed-up p50 (fakeredis {TIMES} memory)",
            "speed-up p99",
        ],
        rows,
    )
    chart = "fakeredis.png"
    bar_chart(
        env.out / chart,
        title="memory driver speed-up over fakeredis (p50), per domain operation",
        groups=list(speedups),
        series={"fakeredis p50 / memory p50": list(speedups.values())},
        ylabel=f"{TIMES} faster (log)",
        logy=True,
        hline=(TARGET, f"target {TARGET}{TIMES}"),
    )
    report.image(chart, "memory driver against fakeredis")
    worst_op = min(speedups, key=speedups.__getitem__)
    report.headline(
        "memory driver against fakeredis, every domain operation",
        f"≥ {TARGET}{TIMES} faster",
        f"{fmt_ratio(min(speedups.values()))} (slowest: {worst_op}); "
        f"median {fmt_ratio(sorted(speedups.values())[len(speedups) // 2])}",
        min(speedups.values()) >= TARGET,
    )
    return report
