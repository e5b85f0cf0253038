"""Section 11: the memory driver, key layout 2 against layout 1 (today's), every operation.

Layout 2 runs kvstore's Lua scripts in the memory driver through lupa (Lua 5.1, as Redis
does) where layout 1 ran a Python twin of each script; issue 10 accepts that only if domain
operations on the memory driver get no slower than 1.2 times layout 1's.

Two worker processes run the same workload code (`benchmarks/_memory_worker.py`, this
tree's `_workload.py`: the dataset of the Upstash section and every domain operation) on a
`Storage(MemoryDriver())`: one with this checkout's kvstore, one with layout 1's: the
`kvstore` package of commit 335539c (the last before the layout-2 rewrite), taken from this
repository's history with `git archive` and imported by the same interpreter ahead of this
checkout's (or, with `$KVSTORE_V1`, the kvstore of that checkout, run by its
`.venv/bin/python`). They are timed in interleaved rounds, the order alternating, each
worker taking its samples in turn while the other waits; calls shorter than about 20 µs are
timed in batches (the same batch size in both). Operations with a step before each call (a
delete) are timed one call per sample, the step untimed. Ratio: layout 2's p50 over layout
1's.

Where layout 2 misses the target, the slowest operations are profiled in the layout-2
worker: timers around the driver and around the Lua run, the Lua-to-Python bridge and the
commands scripts call give where one call's time goes, and cProfile lists the functions
with the most time of their own (cProfile slows Python calls, not Lua: read its figures as
shares, not times).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._env import Env, SkipSection
from benchmarks._harness import TIMES, Report, Stats, fmt_ratio, fmt_time

NAME = "memory_v1"
TITLE = "11. Memory driver: layout 2 against layout 1, every domain operation"

TARGET = 1.2
WORKER = Path(__file__).with_name("_memory_worker.py")
V1_COMMIT = "335539c8f2598f55f09c7df5dac291daa1d5d570"  # the last commit of layout 1
REPO = Path(__file__).resolve().parent.parent
PROFILED = 3


class _Worker:
    """One worker process and its line protocol."""

    def __init__(self, label: str, python: Path, pythonpath: str | None = None) -> None:
        self.label = label
        self.python = python
        self.pythonpath = pythonpath
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(self.python),
            str(WORKER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(WORKER.parent.parent.parent),  # neither checkout: nothing shadows kvstore
            env={**os.environ, "PYTHONPATH": self.pythonpath} if self.pythonpath else None,
            limit=1 << 24,
        )

    async def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.label} worker exited (see its stderr above)")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.label} worker, {cmd}: {reply['error']}")
        return reply

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            try:
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 30)
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    with tempfile.TemporaryDirectory(prefix="kvstore-layout1-") as scratch:
        layout1 = _layout1_worker(Path(scratch))
        report.text(__doc__.split("\n\n", 1)[1])
        workers = {"layout 1": layout1, "layout 2": _Worker("layout 2", Path(sys.executable))}
        try:
            for worker in workers.values():
                await worker.start()
            await _compare(env, report, workers)
        finally:
            for worker in workers.values():
                await worker.close()
    return report


def _layout1_worker(scratch: Path) -> _Worker:
    """Layout 1's worker: ``$KVSTORE_V1``'s own venv, else layout 1's package from git."""
    if checkout := os.environ.get("KVSTORE_V1"):
        python = Path(checkout) / ".venv" / "bin" / "python"
        if not python.exists():
            raise SkipSection(f"KVSTORE_V1={checkout} has no .venv/bin/python")
        return _Worker("layout 1", python)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", V1_COMMIT, "kvstore"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SkipSection(
            f"commit {V1_COMMIT[:7]} is not in this clone's history (a shallow clone?): "
            f"{archive.stderr.decode(errors='replace').strip()}"
        )
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive.stdout, check=True)
    return _Worker("layout 1", Path(sys.executable), pythonpath=str(scratch))


async def _compare(env: Env, report: Report, workers: dict[str, _Worker]) -> None:
    setups = {label: await w.ask("setup", quick=env.mode.quick) for label, w in workers.items()}
    here = Path(__file__).resolve().parent.parent
    if Path(setups["layout 2"]["kvstore"]).resolve().parent != here:
        raise SkipSection(
            f"the layout-2 worker imported kvstore from {setups['layout 2']['kvstore']}"
        )
    if Path(setups["layout 1"]["kvstore"]).resolve().parent == here:
        raise SkipSection("the layout-1 worker imports this checkout's kvstore, not layout 1's")
    ops = [op for op in setups["layout 2"]["ops"] if op in setups["layout 1"]["ops"]]
    only = [op for op in setups["layout 2"]["ops"] if op not in ops]
    budget = env.mode.micro
    results: dict[str, dict[str, Stats]] = {}
    for op in ops:
        batch = (await workers["layout 1"].ask("calibrate", name=op))["batch"]
        samples: dict[str, list[float]] = {label: [] for label in workers}
        order = list(workers)
        for round_no in range(budget.rounds):
            for label in order if round_no % 2 == 0 else order[::-1]:
                reply = await workers[label].ask(
                    "time", name=op, samples=budget.per_round, batch=batch,
                    seconds=budget.seconds,
                )  # fmt: skip
                samples[label] += reply["samples"]
        results[op] = {label: Stats.of(s) for label, s in samples.items()}
    ratios = {op: r["layout 2"].p50 / r["layout 1"].p50 for op, r in results.items()}
    slowest = sorted(ratios, key=ratios.__getitem__, reverse=True)[:PROFILED]
    profiles = {}
    calls = 200 if env.mode.quick else 2_000
    for op in slowest:
        profiles[op] = {
            label: await w.ask("profile", name=op, calls=calls) for label, w in workers.items()
        }
    _write(report, setups, results, ratios, only, profiles)


def _write(
    report: Report,
    setups: dict[str, dict[str, Any]],
    results: dict[str, dict[str, Stats]],
    ratios: dict[str, float],
    only: list[str],
    profiles: dict[str, dict[str, dict[str, Any]]],
) -> None:
    report.table(
        ["worker", "kvstore imported from", "python", "msgspec", "lupa"],
        [
            [label, f"`{s['kvstore']}`", s["python"], s["msgspec"], s.get("lupa", "—")]
            for label, s in setups.items()
        ],
        left=2,
    )
    rows = []
    for op, stats in results.items():
        one, two = stats["layout 1"], stats["layout 2"]
        rows.append(
            [
                op,
                fmt_time(one.p50),
                fmt_time(two.p50),
                f"**{fmt_ratio(ratios[op])}**",
                fmt_ratio(two.p99 / one.p99),
                "met" if ratios[op] <= TARGET else "**missed**",
                f"{one.n}/{two.n}",
            ]
        )
    report.heading("Per operation (layout 2 / layout 1, p50 and p99)")
    report.table(
        ["operation", "layout 1 p50", "layout 2 p50", "ratio p50", "ratio p99",
         f"≤ {TARGET}{TIMES}", "samples"],
        rows,
    )  # fmt: skip
    if only:
        report.text(f"Only in layout 2, not compared: {', '.join(only)}.")
    ordered = sorted(ratios.values())
    missed = [op for op, r in ratios.items() if r > TARGET]
    worst = max(ratios, key=ratios.__getitem__)
    report.headline(
        "memory driver, layout 2 / layout 1, every domain operation (p50)",
        f"≤ {TARGET}{TIMES}",
        f"{fmt_ratio(ratios[worst])} at worst ({worst}); median "
        f"{fmt_ratio(ordered[len(ordered) // 2])}; {len(missed)} of {len(ratios)} above "
        f"{TARGET}{TIMES}",
        not missed,
    )
    if profiles:
        _profiles(report, profiles, ratios)


def _profiles(
    report: Report, profiles: dict[str, dict[str, dict[str, Any]]], ratios: dict[str, float]
) -> None:
    report.heading("Where the time goes: the slowest operations by ratio")
    report.text(
        "Per call, in µs, from timers around the driver's methods: the median of each part "
        "over the profiled calls (so the parts need not add up to the total exactly; each "
        "timer adds about 0.1 µs). *Domain*: everything outside the driver (validation, "
        "encoding the arguments, decoding the replies into records). *Driver, outside "
        "scripts*: batching, locking, argument encoding, plain commands. *Lua*: the script's "
        "own interpretation, with its `KEYS`/`ARGV` tables, the crossings between Python "
        "and Lua, and the serializing of its reply in Lua (its run minus the Python side of "
        "its `redis.call`s and of its reply). *Script reply to Python*: decoding the reply "
        "Lua serialized. *Bridge*: turning each `redis.call`'s arguments into a Python "
        "command and its reply into Lua values. *Commands from Lua*: the driver "
        "running those commands. Layout 1 had no Lua: its scripts were Python functions, "
        "inside the driver column."
    )
    rows = []
    for op, by_label in profiles.items():
        for label, p in by_label.items():
            parts = p["parts"]
            total = p["total_us"]
            driver = parts.get("driver", 0.0)
            lua = parts.get("lua", 0.0)
            reply = parts.get("reply", 0.0)
            bridge = parts.get("bridge", 0.0)
            commands = parts.get("commands", 0.0)
            calls = p["counts"].get("bridge")
            rows.append(
                [
                    op if label == "layout 1" else f"{op} ({fmt_ratio(ratios[op])})",
                    label,
                    f"{total:,.1f}",
                    f"{total - driver:,.1f}",
                    f"{driver - lua:,.1f}",
                    f"{lua - bridge - reply:,.1f}" if lua else "—",
                    f"{reply:,.1f}" if lua else "—",
                    f"{bridge - commands:,.1f}" if bridge else "—",
                    f"{commands:,.1f}" if commands else "—",
                    "—" if calls is None else f"{calls:,.1f}",
                ]
            )
    report.table(
        ["operation", "layout", "total", "domain", "driver, outside scripts", "Lua",
         "script reply to Python", "bridge", "commands from Lua", "redis.calls"],
        rows,
        left=2,
    )  # fmt: skip
    for op, by_label in profiles.items():
        report.text(f"cProfile, `{op}`, functions with the most own time (µs per call):")
        report.table(
            ["layout", "function", "own", "cumulative", "calls"],
            [
                [label, f"`{t['function']}`", f"{t['own_us']:,.1f}",
                 f"{t['cumulative_us']:,.1f}", f"{t['calls']:,.1f}"]
                for label, p in by_label.items()
                for t in p["top"][:8]
            ],
            left=2,
        )  # fmt: skip
