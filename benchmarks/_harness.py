"""The shared harness: timing, interleaving, percentiles, ratio tables, markdown, plots.

Every section measures its contenders side by side in one run: :func:`interleave` runs them
in rounds, rotating who goes first, so that drift on a noisy machine (other processes, CPU
frequency, a Redis rehash) lands on all of them alike. Results are reported as p50 and p99
and as ratios to a baseline measured in the same rounds; a bare time is only context.
"""

from __future__ import annotations

import gc
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "TIMES",
    "Budget",
    "Contender",
    "Headline",
    "Report",
    "Stats",
    "bar_chart",
    "calibrate",
    "fmt_bytes",
    "fmt_int",
    "fmt_ratio",
    "fmt_time",
    "interleave",
    "line_chart",
    "md_table",
    "percentile",
]

Call = Callable[[], Any]
#: The multiplication sign of ratios (3.5 times), spelled out for linters.
TIMES = "\N{MULTIPLICATION SIGN}"


# -- statistics -------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, by linear interpolation."""
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class Stats:
    """Per-call times of one contender, in nanoseconds."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(tuple(sorted(samples)))

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else math.nan

    @property
    def ops_per_s(self) -> float:
        """Calls per second, one after another (from the mean)."""
        return 1e9 / self.mean if self.samples else math.nan

    def ratio_to(self, base: Stats) -> tuple[float, float]:
        """``(p50 / base.p50, p99 / base.p99)``."""
        return self.p50 / base.p50, self.p99 / base.p99


# -- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Budget:
    """How long to measure: ``rounds`` rounds, each giving every contender up to
    ``per_round`` samples or ``seconds`` of wall time (whichever ends first; at least one
    sample), after ``warmup`` untimed calls."""

    rounds: int
    per_round: int
    warmup: int
    seconds: float = 1.0
    #: A contender that has used this many seconds in all (and has 3 samples) sits out
    #: the remaining rounds: calls of seconds each (reading 10^5 messages) stay bounded.
    total: float = float("inf")


@dataclass(slots=True)
class Contender:
    """One thing to time: ``call`` is a function or coroutine function with no arguments.

    ``batch`` calls make one sample (the sample is their mean), so that sub-microsecond
    calls are not drowned in the timer's own cost; see :func:`calibrate`.
    """

    name: str
    call: Call
    batch: int = 1
    is_async: bool | None = None


async def _invoke(contender: Contender) -> None:
    result = contender.call()
    if contender.is_async is None:
        contender.is_async = inspect.isawaitable(result)
    if contender.is_async:
        await result


async def _sample(contender: Contender, budget: Budget, out: list[float]) -> None:
    call, batch = contender.call, contender.batch
    clock = time.perf_counter_ns
    deadline = clock() + int(budget.seconds * 1e9)
    for _ in range(budget.per_round):
        if contender.is_async:
            start = clock()
            for _ in range(batch):
                await call()
            end = clock()
        else:
            start = clock()
            for _ in range(batch):
                call()
            end = clock()
        out.append((end - start) / batch)
        if end > deadline:
            break


async def interleave(contenders: Sequence[Contender], budget: Budget) -> dict[str, Stats]:
    """Time the contenders side by side: warm each up (``budget.warmup`` calls, or fewer if
    they take longer than ``budget.seconds``), then run ``budget.rounds`` rounds in which
    every contender takes its turn, the order rotating by one each round.

    Garbage is collected before each contender's turn, so that one contender's garbage (a
    peer that decodes 10^5 messages) is not collected on another's time. What exists when
    timing starts (the datasets) is frozen out of the collector (``gc.freeze``), which
    keeps those collections short.

    Returns:
        The per-call :class:`Stats` of each contender, by name.
    """
    for contender in contenders:
        deadline = time.perf_counter() + budget.seconds
        for _ in range(max(1, budget.warmup)):
            await _invoke(contender)
            if time.perf_counter() > deadline:  # slow calls are warm after one or two
                break
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    spent: dict[str, float] = dict.fromkeys(samples, 0.0)
    count = len(contenders)
    gc.collect()
    gc.freeze()
    try:
        for round_no in range(budget.rounds):
            shift = round_no % count
            for contender in [*contenders[shift:], *contenders[:shift]]:
                taken = samples[contender.name]
                if spent[contender.name] >= budget.total and len(taken) >= 3:
                    continue
                gc.collect()
                start = time.perf_counter()
                await _sample(contender, budget, taken)
                spent[contender.name] += time.perf_counter() - start
    finally:
        gc.unfreeze()
    return {name: Stats.of(values) for name, values in samples.items()}


async def calibrate(call: Call, *, target_ns: float = 20_000, limit: int = 10_000) -> int:
    """A batch size that makes one sample of ``call`` last about ``target_ns``."""
    probe = Contender("probe", call)
    await _invoke(probe)
    batch = 1
    while batch < limit:
        start = time.perf_counter_ns()
        for _ in range(batch):
            await _invoke(probe)
        elapsed = time.perf_counter_ns() - start
        if elapsed >= target_ns:
            break
        batch = min(limit, batch * 2 if elapsed < target_ns / 4 else batch + batch // 2 + 1)
    return batch


# -- formatting ---------------------------------------------------------------------------------


def fmt_time(ns: float) -> str:
    """A duration in nanoseconds for a table: ``812 ns``, ``2.80 µs``, ``1.31 ms``."""
    if math.isnan(ns):
        return "n/a"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 10_000:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_ratio(ratio: float) -> str:
    """A ratio with the multiplication sign: 0.93, 3.5, 116 (to 3 significant digits)."""
    if math.isnan(ratio):
        return "n/a"
    if ratio < 10:
        return f"{ratio:.2f}{TIMES}"
    if ratio < 100:
        return f"{ratio:.1f}{TIMES}"
    return f"{ratio:,.0f}{TIMES}"


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_bytes(value: float) -> str:
    return f"{value:,.0f} B"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> str:
    """A GitHub markdown table; the first ``left`` columns are left-aligned, others right."""
    align = ["---" if i < left else "---:" for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


# -- reports ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Headline:
    """One claim a section checks, for the summary table.

    ``met`` is None when there is no target (context only) or it could not be measured.
    """

    claim: str
    target: str
    measured: str
    met: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "—"}[self.met]


@dataclass
class Report:
    """The markdown and plots of one section, written to ``<out>/<name>.md``."""

    name: str
    title: str
    out: Path
    parts: list[str] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def text(self, *paragraphs: str) -> None:
        self.parts.extend(p.strip() for p in paragraphs)

    def heading(self, text: str) -> None:
        self.parts.append(f"## {text}")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1
    ) -> None:
        self.parts.append(md_table(headers, rows, left=left))

    def skip(self, what: str, why: str) -> None:
        """Record that ``what`` was not measured and why (shown in the section and summary)."""
        self.skipped.append(f"{what}: {why}")
        self.parts.append(f"> **Not measured — {what}:** {why}")

    def headline(
        self, claim: str, target: str, measured: str, met: bool | None, note: str = ""
    ) -> None:
        self.headlines.append(Headline(claim, target, measured, met, note))

    def image(self, filename: str, caption: str) -> None:
        self.parts.append(f"![{caption}]({filename})")

    def write(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{self.name}.md"
        body = [f"# {self.title}", *self.parts]
        if self.headlines:
            body.append("## Targets")
            body.append(
                md_table(
                    ["claim", "target", "measured", "verdict", "note"],
                    [[h.claim, h.target, h.measured, h.verdict, h.note] for h in self.headlines],
                    left=5,
                )
            )
        path.write_text("\n\n".join(body) + "\n", encoding="utf-8")
        return path


# -- plots --------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_chart(
    path: Path,
    *,
    title: str,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    logx: bool = True,
    logy: bool = False,
    hline: tuple[float, str] | None = None,
) -> None:
    """One line per series against ``x``; NaN points are left out."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7 if len(series) <= 4 else 10, 4.2), dpi=110)
    for label, values in series.items():
        points = [(a, b) for a, b in zip(x, values, strict=True) if not math.isnan(b)]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)  # a linear axis from zero: no exaggerated wiggles
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, len(series))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _legend(ax: Any, entries: int) -> None:
    """A legend inside the axes when small, beside them when it would hide the data."""
    if entries <= 4:
        ax.legend(fontsize="small")
    else:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def bar_chart(
    path: Path,
    *,
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    ylabel: str,
    logy: bool = False,
    hline: tuple[float, str] | None = None,
) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series in each."""
    plt = _pyplot()
    wide = 3 if len(series) > 4 else 0
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(groups) + 3) + wide, 4.2), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + i * width - 0.4 + width / 2 for g in range(len(groups))]
        ax.bar(xs, [0 if math.isnan(v) else v for v in values], width, label=label)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize="small")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    _legend(ax, len(series))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
