"""A worker process for ``benchmarks.memory_v1``: times domain operations on the memory
driver of whichever kvstore its interpreter imports.

Run as a script (``python benchmarks/_memory_worker.py``) by an interpreter whose
environment holds the kvstore to measure (this checkout's, or an older checkout's venv). It
loads *this* tree's ``benchmarks`` package (the workload and the harness) whatever the
interpreter would find under that name, so both versions run exactly the same workload code.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.

* ``{"cmd": "setup", "quick": bool}`` -> ``{"ops": [...], "kvstore": path, "versions": {...}}``
* ``{"cmd": "calibrate", "name": op}`` -> ``{"batch": n}``
* ``{"cmd": "time", "name": op, "samples": n, "batch": b, "seconds": s}`` ->
  ``{"samples": [ns per call, ...]}``
* ``{"cmd": "profile", "name": op, "calls": n}`` -> ``{"parts": {...}, "top": [...]}``
* ``{"cmd": "quit"}``
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import importlib.util
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    del sys.path[0]  # the section modules' names must not shadow anything
_spec = importlib.util.spec_from_file_location(
    "benchmarks", HERE / "__init__.py", submodule_search_locations=[str(HERE)]
)
assert _spec is not None
assert _spec.loader is not None
_package = importlib.util.module_from_spec(_spec)
sys.modules["benchmarks"] = _package
_spec.loader.exec_module(_package)

from benchmarks._harness import calibrate  # noqa: E402
from benchmarks._workload import Dataset, Op, operations, populate  # noqa: E402


class _Worker:
    def __init__(self) -> None:
        self.store: Any = None
        self.ops: dict[str, Op] = {}
        self.size: Dataset | None = None

    async def _new_store(self) -> Any:
        from kvstore import Storage
        from kvstore.drivers.memory import MemoryDriver

        assert self.size is not None
        store = Storage(MemoryDriver())
        await populate(store, self.size)
        return store

    async def setup(self, quick: bool) -> dict[str, Any]:
        import msgspec

        import kvstore

        self.size = Dataset.for_mode(quick)
        self.store = await self._new_store()
        self.ops = {f"{op.domain}.{op.name}": op for op in operations(self.size)}
        self.ops = {name: op for name, op in self.ops.items() if op.available(self.store)}
        # An older checkout may lack an operation's method or one of its arguments: its
        # worker leaves the operation out (the comparison keeps the operations both have).
        older = (
            Path(kvstore.__file__).resolve().parent.parent != Path(__file__).resolve().parent.parent
        )
        usable = {}
        for name, op in self.ops.items():  # warm: scripts compiled, caches filled
            try:
                for _ in range(3):
                    if op.prepare is not None:
                        await op.prepare(self.store)
                    await op.call(self.store)
            except (TypeError, AttributeError):
                if not older:
                    raise
                continue
            usable[name] = op
        self.ops = usable
        gc.collect()
        gc.freeze()
        versions = {"python": sys.version.split()[0], "msgspec": msgspec.__version__}
        try:
            import lupa

            versions["lupa"] = getattr(lupa, "__version__", "?")
        except ImportError:
            pass
        return {"ops": list(self.ops), "kvstore": str(Path(kvstore.__file__).parent), **versions}

    async def calibrate(self, name: str) -> dict[str, Any]:
        op = self.ops[name]
        if op.prepare is not None:
            return {"batch": 1}
        store = self.store
        return {"batch": await calibrate(lambda: op.call(store))}

    async def time(self, name: str, samples: int, batch: int, seconds: float) -> dict[str, Any]:
        op, store = self.ops[name], self.store
        call, prepare = op.call, op.prepare
        clock = time.perf_counter_ns
        out: list[float] = []
        gc.collect()
        deadline = clock() + int(seconds * 1e9)
        for _ in range(samples):
            if prepare is not None:
                await prepare(store)
                start = clock()
                await call(store)
                end = clock()
                out.append(end - start)
            else:
                start = clock()
                for _ in range(batch):
                    await call(store)
                end = clock()
                out.append((end - start) / batch)
            if end > deadline:
                break
        return {"samples": out}

    async def profile(self, name: str, calls: int) -> dict[str, Any]:
        """Where one call's time goes: timers around the driver and, where the memory driver
        runs Lua, around the script run, its reply's conversion, the bridge and the commands
        scripts call (medians per call); then the top functions by own time under
        cProfile."""
        from kvstore.drivers.memory import MemoryDriver

        timers = _Timers()
        timers.wrap(MemoryDriver, "execute", "driver")
        if "run" in vars(MemoryDriver):
            timers.wrap(MemoryDriver, "run", "driver")
        try:
            from kvstore.drivers.memory._lua import LuaEngine
        except ImportError:
            LuaEngine = None  # noqa: N806 - the class, when this kvstore has it
        if LuaEngine is not None:
            timers.wrap(LuaEngine, "run", "lua")
            timers.wrap(LuaEngine, "_to_reply", "reply")
            timers.wrap(LuaEngine, "_command", "bridge")
            timers.wrap(MemoryDriver, "_script_call", "commands")
        try:
            store = await self._new_store()  # made after wrapping: the bridge is bound then
            gc.collect()
            gc.freeze()  # as for the timed store: no collection walks the dataset mid-call
            op = self.ops[name]
            for _ in range(3):
                if op.prepare is not None:
                    await op.prepare(store)
                await op.call(store)
            # Per call: the time in each part; the medians are reported, so that a call
            # a busy machine delayed does not count.
            per_call: dict[str, list[float]] = {k: [] for k in [*timers.spent, "total"]}
            counts = dict.fromkeys(timers.calls, 0.0)
            for _ in range(calls):
                if op.prepare is not None:
                    timers.paused = True
                    await op.prepare(store)
                    timers.paused = False
                timers.reset()
                start = time.perf_counter_ns()
                await op.call(store)
                per_call["total"].append(time.perf_counter_ns() - start)
                for k, v in timers.spent.items():
                    per_call[k].append(v)
                for k, v in timers.calls.items():
                    counts[k] += v / calls
            parts = {k: statistics.median(v) / 1e3 for k, v in per_call.items()}
        finally:
            timers.restore()
        profiler = cProfile.Profile()
        store = self.store
        op = self.ops[name]
        for _ in range(calls):
            if op.prepare is not None:
                await op.prepare(store)
            profiler.enable()
            await op.call(store)
            profiler.disable()
        stats = pstats.Stats(profiler)
        rows = sorted(
            ((v[2], v[3], v[1], k) for k, v in stats.stats.items()),  # type: ignore[attr-defined]
            reverse=True,
        )[:12]
        top = [
            {
                "function": f"{Path(k[0]).name}:{k[1]} {k[2]}" if k[0] != "~" else k[2],
                "own_us": own / calls * 1e6,
                "cumulative_us": cum / calls * 1e6,
                "calls": n / calls,
            }
            for own, cum, n, k in rows
        ]
        return {"total_us": parts.pop("total"), "parts": parts, "counts": counts, "top": top}


class _Timers:
    """Accumulating timers around methods, the outermost call only (re-entry not counted
    twice), patched on the class and restored after."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.depth: dict[str, int] = {}
        self.paused = False
        self._patched: list[tuple[type, str, Any]] = []

    def reset(self) -> None:
        self.spent = dict.fromkeys(self.spent, 0)
        self.calls = dict.fromkeys(self.calls, 0)

    def wrap(self, cls: type, name: str, bucket: str) -> None:
        original = vars(cls)[name]
        self._patched.append((cls, name, original))
        self.spent.setdefault(bucket, 0)
        self.calls.setdefault(bucket, 0)
        self.depth.setdefault(bucket, 0)
        clock = time.perf_counter_ns
        timers = self

        if asyncio.iscoroutinefunction(original):

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if timers.depth[bucket] or timers.paused:
                    return await original(*args, **kwargs)
                timers.depth[bucket] += 1
                start = clock()
                try:
                    return await original(*args, **kwargs)
                finally:
                    timers.spent[bucket] += clock() - start
                    timers.calls[bucket] += 1
                    timers.depth[bucket] -= 1

            setattr(cls, name, async_wrapper)
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if timers.depth[bucket] or timers.paused:
                return original(*args, **kwargs)
            timers.depth[bucket] += 1
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                timers.spent[bucket] += clock() - start
                timers.calls[bucket] += 1
                timers.depth[bucket] -= 1

        setattr(cls, name, wrapper)

    def restore(self) -> None:
        for cls, name, original in reversed(self._patched):
            setattr(cls, name, original)
        self._patched.clear()


async def _main() -> None:
    worker = _Worker()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            return
        try:
            reply = await getattr(worker, cmd)(**request)
        except Exception as exc:  # reported to the parent, which fails the section
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(_main())
