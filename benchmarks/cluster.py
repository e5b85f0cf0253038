"""Section 9: one namespace on a 3-master Redis Cluster: how evenly it spreads, hot keys,
round trips.

A private cluster of three primaries (no replicas) on loopback ports, made like the test
suite's (`redis-cli --cluster create`: equal slot ranges). One store on it, made the way an
application makes one: `Storage.from_url("redis+cluster://...")`, which spreads a new
namespace over 64 buckets (hash slots; see `kvstore.keys`). It runs the reference workload
of issue 10 through the public domain calls:

* 1,000 resources, each with its working memory saved and later updated, and 5 threads;
  20 messages per thread, saved a turn (2 messages) at a time, and each thread's last 20
  read back; each resource's threads listed;
* 10,000 workflow runs (a 1 KB snapshot each) persisted and loaded, 10,000 scores saved and
  read, 2,000 traces of 10 spans saved and read;
* global listings (runs, scores, traces: 10 pages each per slice), which read every bucket.

The workload runs in slices, each one tenth of every kind (`--quick`: a much smaller
workload in three slices), calls issued 500 at a time through `PipelinedDriver` (each call
sends exactly what it sends alone). Then:

* **keys** per node: `DBSIZE`;
* **memory** per node: `INFO memory` `used_memory` after the workload minus the same node's
  `used_memory` when the cluster was new and empty (taken just before the workload; it holds
  the server's own structures, which do not belong to the namespace);
* **commands** per node: the `calls` of `INFO commandstats`, zeroed (`CONFIG RESETSTAT`)
  before the workload. Redis counts the commands a script runs as calls of their own, as
  well as the `EVALSHA`; so does this. Cluster and client bookkeeping (`CLUSTER`,
  `COMMAND`, `INFO`, `CONFIG`, `CLIENT`, `HELLO`, `PING`, `READONLY`, `ECHO`, `DBSIZE`) is
  left out;
* **the busiest key**: during the last slice (one tenth of every kind of call, so the same
  mix as the whole workload) every node is watched with `MONITOR`, which shows each command
  a client sends and each command a script runs (`[0 lua]`). Every command is counted once
  for each key it names (an `EVALSHA` for each of its `KEYS`); a key's share is the number
  of commands that name it over all commands of the slice;
* **round trips**: in a namespace of its own on the same cluster (the dataset of the Upstash
  section in `--quick`: costs per call do not depend on it), every public operation and
  five that name several owners are called once through a counting wrapper around the
  driver. Counted: driver calls (`execute`/`run`), round trips in sequence (a batch sent
  to several nodes concurrently is one), batches sent to nodes in all, and the hash slots
  and nodes its commands named. `--quick` and full runs measure the same operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from benchmarks import _data
from benchmarks._env import Env, SkipSection, missing, private_cluster
from benchmarks._harness import TIMES, Report, fmt_int
from benchmarks._workload import (
    SCORER,
    WORKFLOW,
    Dataset,
    Op,
    bulk,
    operations,
    pipelined_twin,
    populate,
    trace,
)
from kvstore import Resource, Storage, Thread
from kvstore.drivers.base import Driver

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

    from kvstore.drivers.base import Arg, Command, Reply, Script

NAME = "cluster"
TITLE = "9. A namespace on a 3-node Redis Cluster: spread, hot keys, round trips"

SHARE, SPREAD = 1 / 3, 0.07
HOT_KEY = 0.01
NAMESPACE = "ref"
#: Commands that are the client's or this section's bookkeeping, not the workload's.
BOOKKEEPING = frozenset(
    {"INFO", "CONFIG", "CLUSTER", "COMMAND", "CLIENT", "HELLO", "PING", "SELECT", "READONLY",
     "MONITOR", "ECHO", "DBSIZE", "SLOWLOG", "MEMORY"}
)  # fmt: skip
MARKER = "kvstore-bench-monitor-end"


@dataclass(frozen=True, slots=True)
class Workload:
    """The reference workload's sizes."""

    resources: int
    threads_per_resource: int
    turns_per_thread: int  # a turn is 2 messages
    runs: int
    scores: int
    traces: int
    slices: int
    listings_per_slice: int = 10

    @classmethod
    def for_mode(cls, quick: bool) -> Workload:
        if quick:
            return cls(30, 5, 10, 300, 300, 60, slices=3, listings_per_slice=3)
        return cls(1_000, 5, 10, 10_000, 10_000, 2_000, slices=10)

    def describe(self) -> str:
        threads = self.resources * self.threads_per_resource
        return (
            f"{self.resources:,} resources {TIMES} {self.threads_per_resource} threads {TIMES} "
            f"{2 * self.turns_per_thread} messages ({threads:,} threads, "
            f"{2 * threads * self.turns_per_thread:,} messages), {self.runs:,} runs, "
            f"{self.scores:,} scores, {self.traces:,} traces of 10 spans, in {self.slices} slices"
        )


def _part(total: int, k: int, slices: int) -> range:
    return range(total * k // slices, total * (k + 1) // slices)


def _thread_id(r: int, j: int) -> str:
    return f"th-{r:06d}-{j}"


def _slice(w: Workload, k: int) -> list[list[Callable[[Storage], Awaitable[Any]]]]:
    """Slice ``k`` of the workload: groups of calls, each group after the one before."""
    snap = _data.snapshot(1_000)
    resources = _part(w.resources, k, w.slices)
    threads = [(r, _thread_id(r, j)) for r in resources for j in range(w.threads_per_resource)]
    statuses = ("success", "running", "suspended", "failed")

    def save_resource(r: int) -> Callable[[Storage], Awaitable[Any]]:
        resource = Resource(id=f"res-{r:06d}", working_memory=f"# User {r}\n- city: Zürich")
        return lambda s: s.memory.save_resource(resource)

    def save_thread(r: int, t: str) -> Callable[[Storage], Awaitable[Any]]:
        at = _data.EPOCH + timedelta(seconds=r)
        thread = Thread(id=t, resource_id=f"res-{r:06d}", title=f"Chat {t}", created_at=at)
        return lambda s: s.memory.save_thread(thread)

    def save_turn(t: str, turn: int) -> Callable[[Storage], Awaitable[Any]]:
        pair = _data.message_pair(turn, t)
        return lambda s: s.memory.save_messages(pair)

    def persist(i: int) -> Callable[[Storage], Awaitable[Any]]:
        return lambda s: s.workflows.persist_snapshot(
            WORKFLOW,
            f"run-{i:07d}",
            snap,
            resource_id=f"res-{i % w.resources:06d}",
            status=statuses[i % len(statuses)],
        )

    def save_score(i: int) -> Callable[[Storage], Awaitable[Any]]:
        score = replace(_data.score(i), id=f"score-{i:07d}", run_id=f"run-{i:07d}")
        return lambda s: s.evals.save_score(score)

    def save_trace(t: int) -> Callable[[Storage], Awaitable[Any]]:
        spans = trace(t)
        return lambda s: s.traces.save_spans(spans)

    def reads(i: int) -> Callable[[Storage], Awaitable[Any]]:
        kinds = (
            lambda s: s.workflows.list_runs(WORKFLOW, per_page=20, page=i % 5),
            lambda s: s.evals.list_scores(scorer_id=SCORER, per_page=20, page=i % 5),
            lambda s: s.traces.list_traces(per_page=20, page=i % 5),
        )
        return kinds[i % len(kinds)]

    runs = _part(w.runs, k, w.slices)
    scores = _part(w.scores, k, w.slices)
    traces = _part(w.traces, k, w.slices)
    groups: list[list[Callable[[Storage], Awaitable[Any]]]] = [
        [save_resource(r) for r in resources] + [save_thread(r, t) for r, t in threads]
    ]
    groups += [[save_turn(t, turn) for _, t in threads] for turn in range(w.turns_per_thread)]
    groups.append(
        [persist(i) for i in runs]
        + [save_score(i) for i in scores]
        + [save_trace(t) for t in traces]
    )
    groups.append(
        [
            *(
                (lambda s, r=r: s.memory.update_resource(f"res-{r:06d}", working_memory="# seen"))
                for r in resources
            ),
            *((lambda s, r=r: s.memory.list_threads(f"res-{r:06d}")) for r in resources),
            *((lambda s, t=t: s.memory.list_messages(t, last=20)) for _, t in threads),
            *((lambda s, i=i: s.workflows.load_snapshot(WORKFLOW, f"run-{i:07d}")) for i in runs),
            *((lambda s, i=i: s.evals.get_score(f"score-{i:07d}")) for i in scores),
            *((lambda s, t=t: s.traces.get_trace(f"{t:032x}")) for t in traces),
            *(reads(i) for i in range(3 * w.listings_per_slice)),
        ]
    )
    return groups


# -- the nodes ----------------------------------------------------------------------------


def _client(node: tuple[str, int]) -> Any:
    import redis

    return redis.Redis(host=node[0], port=node[1], socket_timeout=600)


def _node_stats(nodes: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        client = _client(node)
        try:
            stats = client.info("commandstats")
            calls = {
                k.removeprefix("cmdstat_"): v["calls"]
                for k, v in stats.items()
                if k.removeprefix("cmdstat_").split("|")[0].upper() not in BOOKKEEPING
            }
            out.append(
                {
                    "keys": int(client.dbsize()),
                    "memory": int(client.info("memory")["used_memory"]),
                    "calls": sum(calls.values()),
                    "by_command": calls,
                }
            )
        finally:
            client.close()
    return out


def _reset_stats(nodes: Sequence[tuple[str, int]]) -> None:
    for node in nodes:
        client = _client(node)
        try:
            client.config_resetstat()
        finally:
            client.close()


# -- MONITOR --------------------------------------------------------------------------------

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)")
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}


def _unescape(token: bytes) -> bytes:
    """A MONITOR argument as the client sent it (Redis prints them with ``sdscatrepr``)."""
    if b"\\" not in token:
        return token

    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1] == b"x" and len(code) == 3:
            return bytes([int(code[1:], 16)])
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, token)


def _key_positions(tokens: list[bytes]) -> Iterator[int]:
    """Which tokens of a command (name first) are keys."""
    from kvstore.drivers._commandspec import COMMANDS

    name = tokens[0].decode(errors="replace").upper()
    if name in ("EVAL", "EVALSHA"):
        try:
            numkeys = int(tokens[2])
        except (IndexError, ValueError):
            return
        yield from range(3, min(len(tokens), 3 + numkeys))
        return
    spec = COMMANDS.get(name)
    if spec is None or spec.first_key == 0:
        return
    last = len(tokens) - 1 if spec.last_key == -1 else min(spec.last_key, len(tokens) - 1)
    yield from range(spec.first_key, last + 1, spec.step)


class _Monitor(threading.Thread):
    """Reads one node's MONITOR stream on a socket of its own and counts, as it goes, the
    commands and the commands that name each key, until it sees the end marker."""

    def __init__(self, node: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.commands = 0
        self.from_scripts = 0
        self.per_key: Counter[bytes] = Counter()
        self.per_command: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._sock = socket.create_connection(node)
        self._sock.sendall(b"MONITOR\r\n")
        self._ready = threading.Event()

    def wait_ready(self) -> None:
        if not self._ready.wait(10):
            raise RuntimeError(f"MONITOR did not start on {self.node}")

    def run(self) -> None:
        buffer = b""
        try:
            while True:
                data = self._sock.recv(1 << 20)
                if not data:
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\r\n")
                for line in lines:
                    if self._line(line):
                        return
        except BaseException as exc:  # reported by the section, never swallowed
            self.error = exc
        finally:
            self._ready.set()
            self._sock.close()

    def _line(self, line: bytes) -> bool:
        """Count one line; True at the end marker."""
        if line == b"+OK":
            self._ready.set()
            return False
        cut = line.find(b"] ")
        if not line.startswith(b"+") or cut == -1:
            return False
        tokens = _TOKEN.findall(line, cut + 2)
        if not tokens:
            return False
        name = tokens[0].decode(errors="replace").upper()
        if name == "ECHO" and MARKER.encode() in line:
            return True
        if name in BOOKKEEPING:
            return False
        self.commands += 1
        self.per_command[name] += 1
        if b"lua]" in line[: cut + 1]:
            self.from_scripts += 1
        for i in set(_key_positions(tokens)):
            self.per_key[_unescape(tokens[i])] += 1
        return False


def _stop_monitors(nodes: Sequence[tuple[str, int]], monitors: list[_Monitor]) -> None:
    for node in nodes:
        client = _client(node)
        try:
            client.echo(MARKER)
        finally:
            client.close()
    for monitor in monitors:
        monitor.join(timeout=600)
        if monitor.is_alive():
            raise RuntimeError(f"MONITOR of {monitor.node} did not reach its end marker")
        if monitor.error is not None:
            raise monitor.error


# -- round trips ----------------------------------------------------------------------------


@dataclass
class _Trips:
    """What one operation sent: see the module docstring."""

    calls: int = 0
    waves: int = 0
    batches: int = 0
    slots: set[int] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)
    #: The largest number of batches one node got within one round trip.
    per_node_in_wave: int = 0
    _inflight: int = 0
    _wave: Counter[str] = field(default_factory=Counter)


class _Counting(Driver):
    """Counts driver calls; node batches are counted by :func:`_watch_batches`."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.trips = _Trips()

    @property
    def default_buckets(self) -> int:
        return self.inner.default_buckets

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.trips.calls += 1
        return await self.inner.execute(commands, atomic=atomic, idempotent=idempotent)

    async def execute_steps(
        self, steps: Sequence[Sequence[Command]], *, idempotent: bool = False
    ) -> list[list[Reply]]:
        self.trips.calls += 1
        return await self.inner.execute_steps(steps, idempotent=idempotent)

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        self.trips.calls += 1
        return await self.inner.run(script, keys, args, idempotent=idempotent)


class _watch_batches:  # noqa: N801 - used as a context manager, like contextlib's
    """Counts each batch RedisDriver sends to a node, and the round trips they make.

    ``RedisDriver._exchange`` is where one batch is written to one node's connection and its
    replies read: one node round trip. Batches that overlap in time (a batch split over
    several nodes, sent concurrently) are one round trip of the operation; a batch sent when
    none is in flight starts the next. The method is wrapped for the duration only.
    """

    def __init__(self, counting: _Counting) -> None:
        self.counting = counting
        self.original: Any = None

    def __enter__(self) -> None:
        from kvstore.drivers._commandspec import command_keys
        from kvstore.drivers.redis import RedisDriver
        from kvstore.keys import key_slot

        original = self.original = RedisDriver._exchange
        counting = self.counting

        async def exchange(driver: Any, conn: Any, wire: list[list[bytes]], *rest: Any) -> Any:
            trips = counting.trips
            if trips._inflight == 0:
                trips.waves += 1
                trips._wave = Counter()
            trips._inflight += 1
            trips.batches += 1
            node = rest[-1]
            trips.nodes.add(node)
            trips._wave[node] += 1
            trips.per_node_in_wave = max(trips.per_node_in_wave, trips._wave[node])
            for cmd in wire:
                with contextlib.suppress(KeyError):  # a command without keys
                    trips.slots.update(key_slot(k) for k in command_keys(cmd))
            try:
                return await original(driver, conn, wire, *rest)
            finally:
                trips._inflight -= 1

        RedisDriver._exchange = exchange  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        from kvstore.drivers.redis import RedisDriver

        RedisDriver._exchange = self.original  # type: ignore[method-assign]


def _cross_slot_ops(keys: Any, size: Dataset) -> list[Op]:
    """Operations that name several owners at once (their own buckets differ)."""
    n = itertools.count(20_000_000)
    threads = [f"thread-{i:07d}" for i in range(size.threads)]
    first = threads[0]
    other = next(t for t in threads if keys.bucket_of(t) is not keys.bucket_of(first))
    pairs = [_data.message_pair(0, first), _data.message_pair(0, other)]

    def two_threads(s: Storage) -> Awaitable[Any]:
        i = next(n)
        return s.memory.save_messages(
            [replace(m, id=f"{m.id}-x{i}") for pair in pairs for m in pair]
        )

    spans = [trace(t) for t in range(10)]

    def ten_traces(s: Storage) -> Awaitable[Any]:
        base = next(n)
        return s.traces.save_spans(
            replace(span, trace_id=f"{base * 16 + t:032x}")
            for t, batch in enumerate(spans)
            for span in batch
        )

    doomed = [f"{900_000 + t:032x}" for t in range(10)]
    return [
        Op("memory", "save_messages (2 threads in 2 buckets)", two_threads),
        Op(
            "memory",
            "get_messages (2 threads in 2 buckets)",
            lambda s: s.memory.get_messages([m.id for pair in pairs for m in pair]),
            prepare=lambda s: s.memory.save_messages([m for pair in pairs for m in pair]),
        ),
        Op("traces", "save_spans (10 traces)", ten_traces),
        Op(
            "traces",
            "delete_traces (10 traces)",
            lambda s: s.traces.delete_traces(doomed),
            prepare=lambda s: s.traces.save_spans(
                replace(span, trace_id=d)
                for d, batch in zip(doomed, spans, strict=True)
                for span in batch
            ),
        ),
        Op(
            "memory", "count_messages (20 threads)", lambda s: s.memory.count_messages(threads[:20])
        ),
    ]


async def _round_trips(url: str, nodes: Sequence[tuple[str, int]]) -> list[tuple[str, _Trips, int]]:
    """Every operation once, counted; (name, trips, server-side commands)."""
    size = Dataset.for_mode(True)
    store = Storage.from_url(url, namespace="ops")
    try:
        await populate(store, size)
        counting = _Counting(store.driver)
        counted = Storage(counting, namespace="ops")
        keys = await counted.keys()
        rows = []
        for op in [*operations(size), *_cross_slot_ops(keys, size)]:
            if op.prepare is not None:
                await op.prepare(store)
            counting.trips = _Trips()
            await op.call(counted)  # the scripts are loaded from here on
            if op.prepare is not None:
                await op.prepare(store)
            before = sum(s["calls"] for s in _node_stats(nodes))
            counting.trips = _Trips()
            with _watch_batches(counting):
                await op.call(counted)
            after = sum(s["calls"] for s in _node_stats(nodes))
            rows.append((f"{op.domain}.{op.name}", counting.trips, after - before))
        return rows
    finally:
        await store.aclose()


# -- the section ----------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _within(share: float) -> bool:
    return SHARE - SPREAD <= share <= SHARE + SPREAD


def _key_kind(key: bytes) -> str:
    """``ref:{3.17}:thread_activity`` -> ``thread_activity (bucket tag 3.17)``."""
    text = key.decode(errors="replace")
    _, _, rest = text.partition(":{")
    tag, _, kind = rest.partition("}:")
    name, _, owner = kind.partition(":")
    return f"`{name}`" + (" of one owner" if owner else f" of bucket {tag.split('.')[0]}")


async def run(env: Env) -> Report:
    report = Report(NAME, TITLE, env.out)
    if note := missing("redis"):
        raise SkipSection(note)
    report.text(__doc__.split("\n\n", 1)[1])
    work = Workload.for_mode(env.mode.quick)
    with private_cluster(3) as nodes:
        url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in nodes)
        baseline = [s["memory"] for s in _node_stats(nodes)]
        _reset_stats(nodes)
        store = Storage.from_url(url, namespace=NAMESPACE)
        started = time.perf_counter()
        monitors: list[_Monitor] = []
        try:
            await store.keys()
            twin = pipelined_twin(store)
            for k in range(work.slices):
                if k == work.slices - 1:
                    monitors = [_Monitor(node) for node in nodes]
                    for monitor in monitors:
                        monitor.start()
                        monitor.wait_ready()
                for group in _slice(work, k):
                    await bulk(group, store, pipelined=twin)
                print(f"  cluster: slice {k + 1} of {work.slices} done", flush=True)
            _stop_monitors(nodes, monitors)
            keys = await store.keys()
        finally:
            await store.aclose()
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)  # let the monitors' output buffers go
        stats = _node_stats(nodes)
        trips = await _round_trips(url, nodes)
    report.text(
        f"Workload ({env.mode.name} mode): {work.describe()}; {keys.buckets} buckets. It ran "
        f"in {elapsed:.0f} s, MONITOR included."
    )
    _spread(report, nodes, stats, baseline)
    _hot_keys(report, monitors)
    _trips_table(report, trips)
    return report


def _spread(
    report: Report,
    nodes: Sequence[tuple[str, int]],
    stats: list[dict[str, Any]],
    baseline: list[int],
) -> None:
    report.heading("Each node's share of keys, memory and commands")
    grown = [s["memory"] - b for s, b in zip(stats, baseline, strict=True)]
    totals = {
        "keys": sum(s["keys"] for s in stats),
        "memory": sum(grown),
        "commands": sum(s["calls"] for s in stats),
    }
    rows = []
    shares: dict[str, list[float]] = {k: [] for k in totals}
    for (host, port), s, g, b in zip(nodes, stats, grown, baseline, strict=True):
        values = {"keys": s["keys"], "memory": g, "commands": s["calls"]}
        for k, v in values.items():
            shares[k].append(v / totals[k] if totals[k] else 0.0)
        rows.append(
            [
                f"{host}:{port}",
                f"{fmt_int(s['keys'])} ({_pct(shares['keys'][-1])})",
                f"{g / 2**20:,.1f} MiB ({_pct(shares['memory'][-1])}); empty: {b / 2**20:,.1f} MiB",
                f"{fmt_int(s['calls'])} ({_pct(shares['commands'][-1])})",
            ]
        )
    rows.append(
        [
            "all",
            fmt_int(totals["keys"]),
            f"{totals['memory'] / 2**20:,.1f} MiB",
            fmt_int(totals["commands"]),
        ]
    )
    report.table(
        [
            "node",
            "keys (DBSIZE)",
            "memory (used_memory minus the empty node's)",
            "commands (calls)",
        ],
        rows,
    )
    top = Counter[str]()
    for s in stats:
        top.update(s["by_command"])
    report.text(
        "Commands of the whole workload by name (all nodes, script internals included): "
        + ", ".join(f"{name} {fmt_int(n)}" for name, n in top.most_common(12))
        + "."
    )
    for what, values in shares.items():
        report.headline(
            f"cluster: each node's share of {what}",
            f"{_pct(SHARE)} ± {100 * SPREAD:.0f}% each",
            ", ".join(_pct(v) for v in values),
            all(_within(v) for v in values),
        )


def _hot_keys(report: Report, monitors: list[_Monitor]) -> None:
    report.heading("The busiest keys (MONITOR, last slice)")
    total = sum(m.commands for m in monitors)
    if not total:
        report.skip("the busiest key", "MONITOR saw no command")
        return
    per_key: Counter[bytes] = Counter()
    for m in monitors:
        per_key.update(m.per_key)
    inside = sum(m.from_scripts for m in monitors)
    report.text(
        f"The slice ran {fmt_int(total)} commands, {fmt_int(inside)} of them inside scripts, "
        f"naming {fmt_int(len(per_key))} distinct keys. A key's share: commands naming it / "
        "all commands."
    )
    rows = [
        [f"`{key.decode(errors='replace')}`", _key_kind(key), fmt_int(n), _pct(n / total)]
        for key, n in per_key.most_common(10)
    ]
    report.table(["key", "what", "commands naming it", "share of all commands"], rows, left=2)
    busiest: dict[str, tuple[bytes, int]] = {}
    for key, count in per_key.items():
        kind = _key_kind(key).split(" of ")[0]
        if kind not in busiest or count > busiest[kind][1]:
            busiest[kind] = (key, count)
    report.text("The busiest key of each kind:")
    report.table(
        ["kind", "busiest key", "commands naming it", "share of all commands"],
        [
            [kind, f"`{key.decode(errors='replace')}`", fmt_int(count), _pct(count / total)]
            for kind, (key, count) in sorted(busiest.items(), key=lambda e: -e[1][1])
        ],
        left=2,
    )
    key, n = per_key.most_common(1)[0]
    report.headline(
        "cluster: the busiest single key's share of all commands",
        f"≤ {_pct(HOT_KEY)}",
        f"{_pct(n / total)} ({_key_kind(key)})",
        n / total <= HOT_KEY,
    )


def _trips_table(report: Report, trips: list[tuple[str, _Trips, int]]) -> None:
    report.heading("Round trips per operation")
    rows = []
    single: list[tuple[str, int]] = []
    spanning: list[tuple[str, int, int]] = []
    for name, t, commands in trips:
        one = len(t.slots) <= 1
        (single if one else spanning).append(
            (name, t.waves) if one else (name, t.waves, t.per_node_in_wave)  # type: ignore[arg-type]
        )
        rows.append(
            [
                name,
                "one owner" if one else "across slots",
                fmt_int(t.calls),
                f"**{fmt_int(t.waves)}**",
                fmt_int(t.batches),
                fmt_int(len(t.slots)),
                fmt_int(len(t.nodes)),
                fmt_int(commands),
            ]
        )
    report.table(
        ["operation", "kind", "driver calls", "round trips", "node batches", "slots", "nodes",
         "commands (server side)"],
        rows,
        left=2,
    )  # fmt: skip
    report.text(
        "One owner: every key the operation named lies in one hash slot (its owner's bucket). "
        "Round trips are sequential: batches sent concurrently to several nodes are one. "
        "Operations that start from message ids (`get_messages`, `update_messages`, "
        "`delete_messages`, `include`) first read where the messages live, then act on their "
        "threads: two round trips by design (see `kvstore.domains.memory`)."
    )
    worst_single = max(single, key=lambda e: e[1]) if single else None
    if worst_single is not None:
        more = [n for n, w in single if w > 1]
        report.headline(
            "cluster: an operation on one owner is one round trip",
            "1",
            "1 for each" if not more else f"more for {', '.join(more)}",
            not more,
        )
    if spanning:
        crowded = [n for n, _, per in spanning if per > 1]
        report.headline(
            "cluster: an operation across slots sends at most one batch per node per round trip",
            "≤ 1 batch per node per round trip",
            "met by each" if not crowded else f"more for {', '.join(crowded)}",
            not crowded,
        )
        report.headline(
            "cluster: round trips of operations across slots",
            "context",
            ", ".join(f"{n} {w}" for n, w, _ in spanning if w > 1) or "1 each",
            None,
        )
