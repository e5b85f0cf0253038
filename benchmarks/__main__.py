"""``python -m benchmarks [--quick] [--only SECTION ...] [--out DIR]``: run the benchmarks.

Each section writes ``<out>/<section>.md`` (and its PNG plots); ``<out>/summary.md`` collects
every section's targets in one table. See benchmarks/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
import time
import traceback
from pathlib import Path

from benchmarks._env import Env, Mode, SkipSection, load_average, platform_summary
from benchmarks._harness import Report, md_table

#: The sections, in the order they run: module name -> what --only calls it.
SECTIONS = {
    "serialization": "serialization",
    "peers": "peers",
    "upstash": "upstash_cost",
    "fakeredis": "memory_vs_fakeredis",
    "scaling": "scaling",
    "space": "space",
    "drivers": "drivers",
    "migration": "migration",
    "sessions": "sessions",
    "langgraph": "langgraph",
    "cluster": "cluster",
    "bounded": "bounded",
    "memory_v1": "memory_v1",
    "studio": "studio",
}
HERE = Path(__file__).parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few samples: seconds, for CI"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SECTIONS),
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where results go (default: benchmarks/results, or benchmarks/results-quick "
        "with --quick, so that a quick run never overwrites the full results)",
    )
    parser.add_argument(
        "--scaling-max",
        type=int,
        default=100_000,
        help="largest data size of the scaling section (default 100000; 1000000 takes "
        "several minutes more)",
    )
    return parser


async def _run_section(key: str, env: Env) -> Report:
    module = importlib.import_module(f"benchmarks.{SECTIONS[key]}")
    started = time.perf_counter()
    print(f"[{key}] {module.TITLE} ...", flush=True)
    try:
        report: Report = await module.run(env)
    except SkipSection as exc:
        report = Report(module.NAME, module.TITLE, env.out)
        report.skip("the whole section", str(exc))
    print(f"[{key}] done in {time.perf_counter() - started:.1f} s", flush=True)
    return report


def _summary(env: Env, reports: list[Report], elapsed: float, started_load: str) -> str:
    targets: list[list[str]] = []
    context: list[list[str]] = []
    for report in reports:
        section = f"[{report.title.split(':')[0]}]({report.name}.md)"
        for h in report.headlines:
            row = [section, h.claim, h.target, h.measured, h.verdict]
            (context if h.met is None else targets).append(
                row if h.met is not None else [section, h.claim, h.measured]
            )
    skipped = [f"- {r.title}: {s}" for r in reports for s in r.skipped]
    parts = [
        "# kvstore benchmarks: summary",
        f"Command: `python -m benchmarks {' '.join(sys.argv[1:])}`".rstrip(),
        f"Mode: **{env.mode.name}**, {elapsed:.0f} s in all. Every ratio compares contenders "
        "measured side by side in the same run, interleaved in rounds; see "
        "[the README](../README.md) for how to read them.",
        "## Targets",
        md_table(["section", "claim", "target", "measured", "verdict"], targets, left=5),
        "## Context (no target)",
        md_table(["section", "what", "measured"], context, left=3),
        "## Not measured",
        "\n".join(skipped) if skipped else "Everything ran.",
        "## Machine",
        md_table(["", ""], platform_summary(env), left=2),
        f"Load average at the start: {started_load}; at the end: {load_average()}. "
        "The machine is shared: absolute times drift between runs, ratios much less.",
    ]
    return "\n\n".join(parts) + "\n"


async def _main(args: argparse.Namespace) -> int:
    mode = Mode(quick=args.quick)
    out = args.out or HERE / ("results-quick" if args.quick else "results")
    out.mkdir(parents=True, exist_ok=True)
    env = Env(mode=mode, out=out, scaling_max=args.scaling_max)
    started, started_load = time.perf_counter(), load_average()
    reports: list[Report] = []
    failed = False
    try:
        for key in args.only or SECTIONS:
            try:
                report = await _run_section(key, env)
            except Exception:
                traceback.print_exc()
                failed = True
                continue
            report.write()
            reports.append(report)
        if args.only is None:  # a partial run leaves the summary of the last full one
            summary = _summary(env, reports, time.perf_counter() - started, started_load)
            (out / "summary.md").write_text(summary, encoding="utf-8")
    finally:
        env.close()
    print(f"results in {out}")
    return 1 if failed else 0


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl+C: the private redis-server is stopped on the way out."""
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(asyncio.run(_main(_parser().parse_args())))


if __name__ == "__main__":
    main()
