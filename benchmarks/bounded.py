"""Section 10: bounded work: no single call blocks Redis for long, even on 10^6 records.

On the private Redis, one store builds a thread of 10^6 messages (0.7 KB each) and 10^6
spans (10^5 traces of 10 spans), through `save_messages` and `save_spans` (`--quick`: 10^4
of each). Then two operations that must remove all of that without holding the server:

* `delete_thread(thread)`: the thread goes with the first call, its messages 250 per
  script call (`DELETE_SLICE`);
* `apply_retention()` on a store configured with `TraceRetention(max_spans=N/10)` (drops
  90% of the spans, oldest traces first, a slice of at most 10 traces per script call),
  then with `TraceRetention(max_age=1 day)` (drops the rest: the spans are from 2025).

Redis is single-threaded: while one command (a whole script counts as one) runs, every
other client waits. The longest such command is what `SLOWLOG` records: with
`slowlog-log-slower-than 0` and a `slowlog-max-len` large enough to keep every entry, each
top-level command of the operation is logged with the microseconds Redis spent executing
it (a script with all the commands it ran; not the time on the network or in the queue).
The slowlog is reset before each operation and read after it; its settings are restored.
`INFO commandstats` cannot give a maximum (it keeps totals), and `LATENCY` only reports
events above a threshold in whole milliseconds, so SLOWLOG is the exact source here.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from benchmarks import _data
from benchmarks._env import Env, SkipSection, missing
from benchmarks._harness import Report, fmt_int, percentile
from benchmarks._workload import bulk, pipelined_twin, trace
from kvstore import Storage, Thread, TraceRetention
from kvstore.drivers.base import registered_script

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

NAME = "bounded"
TITLE = "10. Bounded work: the longest blocking command while deleting 10^6 records"

#: "A few milliseconds": the longest single command allowed, in microseconds.
TARGET_US = 5_000
NAMESPACE = "bounded"
THREAD = "huge"
MESSAGES_PER_CALL = 500
TRACES_PER_CALL = 50


def _message_calls(count: int) -> list[Callable[[Storage], Awaitable[Any]]]:
    template = _data.message(0, THREAD)

    def call(first: int) -> Callable[[Storage], Awaitable[Any]]:
        batch = [
            replace(
                template,
                id=f"m-{i:08d}",
                created_at=_data.EPOCH + timedelta(milliseconds=i),
            )
            for i in range(first, min(count, first + MESSAGES_PER_CALL))
        ]
        return lambda s: s.memory.save_messages(batch)

    return [call(first) for first in range(0, count, MESSAGES_PER_CALL)]


def _span_calls(spans: int) -> list[Callable[[Storage], Awaitable[Any]]]:
    traces = spans // 10

    def call(first: int) -> Callable[[Storage], Awaitable[Any]]:
        batch = [s for t in range(first, min(traces, first + TRACES_PER_CALL)) for s in trace(t)]
        return lambda s: s.traces.save_spans(batch)

    return [call(first) for first in range(0, traces, TRACES_PER_CALL)]


class _Slowlog:
    """Logs every command of one operation with the time Redis spent on it."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=600)
        self.saved = {
            k: self.client.config_get(k)[k] for k in ("slowlog-log-slower-than", "slowlog-max-len")
        }

    def start(self) -> None:
        self.client.config_set("slowlog-max-len", 10_000_000)
        self.client.config_set("slowlog-log-slower-than", 0)
        self.client.slowlog_reset()

    def stop(self) -> tuple[list[tuple[int, str]], dict[str, list[int]]]:
        """(microseconds, command) of every top-level command since :meth:`start`,
        bookkeeping left out, and the commands scripts ran meanwhile: name -> [count,
        microseconds].

        Redis 7 logs the commands a script runs too, with the client address ``?:0``; they
        are counted apart (their time is part of their script's entry).
        """
        self.client.config_set("slowlog-log-slower-than", self.saved["slowlog-log-slower-than"])
        entries = self.client.execute_command("SLOWLOG", "GET", -1)
        self.client.config_set("slowlog-max-len", self.saved["slowlog-max-len"])
        self.client.slowlog_reset()
        out = []
        inner: dict[str, list[int]] = {}
        for entry in entries:
            micros, args = int(entry[2]), entry[3]
            name = args[0].decode().upper() if args else "?"
            if len(entry) > 4 and entry[4] == b"?:0":
                tally = inner.setdefault(name, [0, 0])
                tally[0] += 1
                tally[1] += micros
                continue
            if name in ("CONFIG", "SLOWLOG", "INFO", "CLIENT", "HELLO", "PING"):
                continue
            if name == "EVALSHA" and len(args) > 1:
                script = registered_script(args[1].decode())
                name = f"EVALSHA {script.name}" if script else name
            out.append((micros, name))
        return out, inner

    def close(self) -> None:
        self.client.close()


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("redis"):
        raise SkipSection(note)
    report.text(__doc__.split("\n\n", 1)[1])
    count = 10_000 if env.mode.quick else 1_000_000
    url = env.fresh_redis()
    store = Storage.from_url(url, namespace=NAMESPACE)
    slowlog = _Slowlog(url)
    rows: list[list[str]] = []
    builds: list[list[str]] = []
    worst: dict[str, tuple[int, str]] = {}
    insides: list[list[str]] = []
    try:
        twin = pipelined_twin(store)
        await store.memory.save_thread(Thread(id=THREAD, resource_id="user-1"))
        for what, calls in (
            (f"{count:,} messages in one thread", _message_calls(count)),
            (f"{count:,} spans in {count // 10:,} traces", _span_calls(count)),
        ):
            started = time.perf_counter()
            await bulk(calls, store, pipelined=twin, chunk=20)
            memory = env.redis_info("memory")["used_memory"]
            builds.append(
                [what, f"{time.perf_counter() - started:.1f} s", f"{memory / 2**20:,.0f} MiB"]
            )
            print(f"  bounded: built {what}", flush=True)
        keep = count // 10
        operations: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (f"delete_thread ({count:,} messages)", lambda: store.memory.delete_thread(THREAD)),
            (
                f"apply_retention (max_spans={keep:,}: drops {count - keep:,} spans)",
                Storage(
                    store.driver,
                    namespace=NAMESPACE,
                    trace_retention=TraceRetention(max_spans=keep),
                ).traces.apply_retention,
            ),
            (
                f"apply_retention (max_age=1 day: drops the other {keep:,})",
                Storage(
                    store.driver,
                    namespace=NAMESPACE,
                    trace_retention=TraceRetention(max_age=timedelta(days=1)),
                ).traces.apply_retention,
            ),
        ]
        for name, call in operations:
            slowlog.start()
            started = time.perf_counter()
            result = await call()
            elapsed = time.perf_counter() - started
            entries, inner = slowlog.stop()
            times = sorted(us for us, _ in entries)
            longest = max(entries)
            worst[name] = longest
            scripts = sum(1 for _, n in entries if n.startswith("EVALSHA"))
            script_us = sum(us for us, n in entries if n.startswith("EVALSHA"))
            inner_us = sum(us for _, us in inner.values())
            insides.append(
                [
                    name,
                    f"{script_us / 1e3:,.0f} ms",
                    ", ".join(
                        f"{n} ({c:,} calls, {us / 1e3:,.0f} ms)"
                        for n, (c, us) in sorted(inner.items(), key=lambda e: -e[1][1])
                    ),
                    f"{(script_us - inner_us) / 1e3:,.0f} ms "
                    f"({(script_us - inner_us) / script_us:.0%})"
                    if script_us
                    else "—",
                ]
            )
            rows.append(
                [
                    name,
                    str(result),
                    f"{elapsed:.2f} s",
                    fmt_int(len(entries)),
                    fmt_int(scripts),
                    fmt_int(sum(c for c, _ in inner.values())),
                    f"{percentile(times, 50):,.0f} µs",
                    f"{percentile(times, 99):,.0f} µs",
                    f"**{longest[0]:,} µs** ({longest[1]})",
                    f"{sum(times) / 1e3:,.0f} ms",
                ]
            )
            print(f"  bounded: {name} done", flush=True)
        left = await store.driver.execute([("DBSIZE",)])
    finally:
        slowlog.close()
        await store.aclose()
    report.heading("Building the data")
    report.table(["what", "time", "Redis used_memory after"], builds)
    report.heading("The longest command while removing it")
    report.table(
        ["operation", "returned", "wall time", "commands", "of them scripts",
         "commands inside the scripts", "p50", "p99", "longest (SLOWLOG)",
         "Redis busy in all"],
        rows,
    )  # fmt: skip
    report.text(
        f"Keys left in the database afterwards: {left[0]} (the layout record and the "
        "buckets' shared hashes and indexes, empty ones aside). Commands: every top-level "
        "command the operation sent, each one SLOWLOG entry; a script's entry covers every "
        "command it ran. p50, p99 and the longest are over those top-level commands."
    )
    report.heading("Inside the scripts: where their time went")
    report.table(
        ["operation", "scripts' time in all", "commands they ran: count, time in all",
         "the rest: Lua itself and the call overhead (share)"],
        insides,
    )  # fmt: skip
    report.text(
        "The commands' times are SLOWLOG's own entries for the commands scripts ran; what a "
        "script's entry has beyond them is the Lua it interpreted between those commands "
        "and the cost of each `redis.call` (argument and reply conversion)."
    )
    for name, (micros, what) in worst.items():
        report.headline(
            f"bounded: longest single command during {name}",
            f"≤ {TARGET_US / 1000:.0f} ms (a few ms)",
            f"{micros / 1000:,.2f} ms ({what})",
            micros <= TARGET_US,
        )
    return report
