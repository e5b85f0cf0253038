"""What the sections share at run time: the mode, a private Redis, command counters, skips.

The private Redis is a ``redis-server`` started on a free loopback port for this run only,
so nothing else disturbs its timings or its ``INFO commandstats`` counts. Without the
``redis-server`` binary, the run falls back to ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) and says so: timings still hold, exact command counts may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._harness import Budget
from kvstore.drivers.base import Driver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import redis

    from kvstore.drivers.base import Arg, Command, Reply, Script

__all__ = ["Env", "Mode", "PipelinedDriver", "SkipSection", "missing", "private_cluster"]

FALLBACK_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# What a counting connection itself runs: not the code under measurement.
_BOOKKEEPING = frozenset(
    {"cmdstat_info", "cmdstat_select", "cmdstat_client|setinfo", "cmdstat_hello", "cmdstat_ping"}
)
_SCRIPT_STATS = frozenset({"cmdstat_evalsha", "cmdstat_eval"})


class SkipSection(Exception):  # noqa: N818 - reads as what it does: skip the section
    """Raised by a section that cannot run here; the message says why."""


def missing(*modules: str) -> str | None:
    """None when every module imports, else a note naming the first missing one."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f'`{name}` is not installed (pip install -e ".[bench]")'
    return None


@dataclass(frozen=True, slots=True)
class Mode:
    """Sizes and budgets of one run: ``--quick`` (seconds, for CI) or the default."""

    quick: bool

    @property
    def name(self) -> str:
        return "quick" if self.quick else "full"

    @property
    def micro(self) -> Budget:
        """Budget for calls of a few microseconds (serialization, the memory driver)."""
        return Budget(3, 15, 20, 0.05) if self.quick else Budget(10, 150, 100, 0.2)

    @property
    def io(self) -> Budget:
        """Budget for calls that make a round trip to a server."""
        if self.quick:
            return Budget(3, 20, 10, 0.05, total=0.5)
        return Budget(8, 80, 30, 0.2, total=4.0)

    def sizes(self, largest: int) -> list[int]:
        """Data sizes from 10^2 up to ``largest`` (10^3 at most in quick mode)."""
        top = min(largest, 1_000) if self.quick else largest
        sizes, size = [], 100
        while size <= top:
            sizes.append(size)
            size *= 10
        return sizes


class _CommandCounter:
    """Counts commands a Redis server ran (script internals included) from INFO."""

    def __init__(self, url: str) -> None:
        import redis

        self._client: redis.Redis = redis.Redis.from_url(url)

    def total(self) -> int:
        stats: dict[str, Any] = self._client.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k not in _BOOKKEEPING)

    def usec(self) -> tuple[float, float]:
        """Microseconds Redis has spent running scripts (``EVALSHA``, ``EVAL``), and running
        every command: a script's own commands count in both, so a call that ran a script
        is measured by the first."""
        stats: dict[str, Any] = self._client.info("commandstats")
        scripts = sum(v["usec"] for k, v in stats.items() if k in _SCRIPT_STATS)
        every = sum(v["usec"] for k, v in stats.items() if k not in _BOOKKEEPING)
        return float(scripts), float(every)

    def close(self) -> None:
        self._client.close()


@dataclass
class Env:
    """The run's shared state; sections get it as their only argument."""

    mode: Mode
    out: Path
    scaling_max: int
    _redis_url: str | None = None
    _redis_note: str = ""
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _counter: _CommandCounter | None = None

    # -- Redis ----------------------------------------------------------------------------

    def fresh_redis(self) -> str:
        """:meth:`redis_url`, with the database and script cache emptied first."""
        url = self.redis_url()
        self.flush()
        return url

    def redis_url(self) -> str:
        """The URL of the run's Redis (started on first use), database 0.

        Raises:
            SkipSection: when neither a private server nor the fallback answers.
        """
        if missing("redis"):
            raise SkipSection('redis-py is not installed (pip install -e ".[redis]")')
        if self._redis_url is None:
            if shutil.which("redis-server"):
                self._redis_url = self._stack.enter_context(_private_redis())
                self._redis_note = "a private redis-server started for this run"
            elif _answers(FALLBACK_URL):
                self._redis_url = FALLBACK_URL
                self._redis_note = (
                    f"the shared Redis at {FALLBACK_URL} (no redis-server binary here): "
                    "command counts include anything else that ran on it"
                )
            else:
                raise SkipSection(f"no redis-server binary and no Redis at {FALLBACK_URL}")
        return self._redis_url

    @property
    def redis_note(self) -> str:
        return self._redis_note

    def flush(self) -> None:
        """Empty the run's Redis database and its script cache."""
        import redis

        if self._redis_url is None:
            return
        # Emptying a database of gigabytes takes a while: wait for it, in the foreground
        # (FLUSHDB ASYNC would free memory in the background, during the next section).
        client = redis.Redis.from_url(self._redis_url, socket_timeout=600)
        try:
            client.flushdb()
            client.script_flush()
        finally:
            client.close()

    def commands(self) -> _CommandCounter:
        """The command counter of the run's Redis."""
        if self._counter is None:
            self._counter = _CommandCounter(self.redis_url())
            self._stack.callback(self._counter.close)
        return self._counter

    def redis_info(self, section: str) -> dict[str, Any]:
        import redis

        url = self._redis_url or self.redis_url()
        client = redis.Redis.from_url(url)
        try:
            info: dict[str, Any] = client.info(section)
            return info
        finally:
            client.close()

    def close(self) -> None:
        self._stack.close()

    # -- the machine ------------------------------------------------------------------------

    @staticmethod
    def machine() -> dict[str, str]:
        """What the results were measured on."""
        import msgspec

        cpu = platform.processor() or platform.machine()
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        return {
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "cpu": f"{cpu}, {os.cpu_count()} cores",
            "msgspec": msgspec.__version__,
        }


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _answers(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _free_port(first: int = 16500) -> int:
    for port in range(first, first + 1000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port for a private redis-server")


@contextlib.contextmanager
def _private_redis() -> Iterator[str]:
    """A redis-server on a free loopback port, nothing on disk; yields its URL."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="kvstore-bench-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--maxmemory", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _pong(port: int) -> bool:
    return _answers(f"redis://127.0.0.1:{port}/0")


def _ports_free(base: int, count: int) -> bool:
    """Whether base..base+count-1 and their cluster bus ports (+10000) are free."""
    for port in (p for i in range(count) for p in (base + i, base + i + 10_000)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@contextlib.contextmanager
def private_cluster(masters: int = 3) -> Iterator[list[tuple[str, int]]]:
    """A Redis Cluster of ``masters`` primaries (no replicas) on free loopback ports, nothing
    on disk, made the way ``tests/support/servers.py`` makes one (``redis-cli --cluster
    create``: equal slot ranges); yields the nodes' (host, port) pairs.

    Raises:
        SkipSection: without ``redis-server`` and ``redis-cli`` on the PATH.
    """
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise SkipSection("a cluster needs redis-server and redis-cli on the PATH")
    base = next((b for b in range(17500, 19500, 10) if _ports_free(b, masters)), None)
    if base is None:
        raise RuntimeError("no free loopback ports for a private Redis Cluster")
    ports = [base + i for i in range(masters)]
    workdir = Path(tempfile.mkdtemp(prefix="kvstore-bench-cluster-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            procs.append(
                subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(node_dir),
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "5000", "--maxmemory", "0"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        _wait_until(lambda: all(_pong(p) for p in ports), "the cluster's nodes to start")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        _wait_until(lambda: all(_cluster_ok(p) for p in ports), "the cluster to agree on slots")
        yield [("127.0.0.1", p) for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _cluster_ok(port: int) -> bool:
    import redis

    client = redis.Redis(port=port)
    try:
        return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
    except Exception:
        return False
    finally:
        client.close()


def _wait_until(ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- building large datasets fast -----------------------------------------------------------


class PipelinedDriver(Driver):
    """Builds datasets through the real domain calls, many calls per round trip.

    Wraps a Redis-speaking driver. Domain calls awaited together (``asyncio.gather``) hand
    their script calls and batches here; they are sent to ``inner`` as one pipeline of
    ``EVALSHA`` commands (and plain commands) when the event loop next turns: one round trip
    on a single server, one batch per node on a cluster. Each domain call sends exactly the
    commands it would send alone, so the data written is the same; only the round trips are
    shared. ``inner`` loads a script it has not sent yet ahead of the batch, as always.
    """

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.binary_safe = inner.binary_safe
        self._pending: list[tuple[Command, asyncio.Future[Reply]]] = []
        # Flushes in flight, kept referenced so that they are not collected mid-way.
        self._flushing: set[asyncio.Future[None]] = set()

    @property
    def default_buckets(self) -> int:
        return self.inner.default_buckets

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        if atomic:
            return await self.inner.execute(commands, atomic=True, idempotent=idempotent)
        return list(await asyncio.gather(*(self._enqueue(c) for c in commands)))

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        return await self._enqueue(("EVALSHA", script.sha, len(keys), *keys, *args))

    async def aclose(self) -> None:
        """The inner driver stays open: it is not this wrapper's."""

    def _enqueue(self, command: Command) -> asyncio.Future[Reply]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._pending.append((command, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush_soon)
        return future

    def _flush_soon(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, batch: list[tuple[Command, asyncio.Future[Reply]]]) -> None:
        from kvstore.errors import BatchError, CommandError

        try:
            replies: list[Any] = await self.inner.execute([c for c, _ in batch])
        except BatchError as exc:
            replies = list(exc.results)
        except BaseException as exc:
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, CommandError):
                future.set_exception(reply)
            else:
                future.set_result(reply)


def platform_summary(env: Env) -> list[tuple[str, str]]:
    machine = Env.machine()
    rows = [(k, v) for k, v in machine.items()]
    if env.redis_note:
        version = env.redis_info("server").get("redis_version", "?")
        rows.append(("redis", f"Redis {version}, {env.redis_note}"))
    return rows
