"""A seeded store and a dump of everything in it, for tests that a refused call wrote nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kvstore import Message, Resource, Score, Span, Storage, Thread
from kvstore.drivers import Driver

T0 = datetime(2025, 1, 1, tzinfo=UTC)


async def seed(store: Storage) -> None:
    """One record or more of every kind, with the ids the tests aim at."""
    memory = store.memory
    await memory.save_thread(Thread(id="t", resource_id="r", title="hello", metadata={"k": 1}))
    await memory.save_messages(
        [
            Message(id=i, thread_id="t", role="user", content=f"message {i}", created_at=T0)
            for i in ("a", "b", "m")
        ]
    )
    await memory.save_resource(Resource(id="r", working_memory="notes", metadata={"k": 1}))
    await store.workflows.persist_snapshot("wf", "run", {"step": 1}, status="running")
    await store.workflows.update_step_result("wf", "run", "fetch", {"ok": True})
    await store.workflows.claim_run("wf", "run", "seeded", timedelta(hours=1))  # token 1
    await store.evals.save_score(Score(id="s", scorer_id="judge", score=0.5, run_id="run"))
    await store.traces.save_spans(
        [Span(trace_id="tr", span_id="sp", name="root", start_time=T0, attributes={"k": "v"})]
    )
    for n, run in enumerate(("run", "run", "run2")):
        await store.checkpoints.put(
            "lg",
            "",
            f"c{n}",
            checkpoint=("json", b"{}"),
            metadata=("json", b"{}"),
            versions={"a": "1"},
            blobs=[("a", "1", ("json", b"1"))] if n == 0 else [],
            parent_id=f"c{n - 1}" if n else None,
            run_id=run,
            filters={"step": n},
        )
    await store.checkpoints.put_writes("lg", "", "c2", "task", [(0, "ch", ("json", b"2"))])


async def dump(driver: Driver) -> dict[bytes, Any]:
    """Every key of the database with its type and its whole value."""
    keys: list[bytes] = []
    cursor: Any = b"0"
    while True:
        [(cursor, found)] = await driver.execute([("SCAN", cursor, "COUNT", 1000)])
        keys += found
        if cursor == b"0":
            break
    state: dict[bytes, Any] = {}
    for key in sorted(keys):
        [kind] = await driver.execute([("TYPE", key)])
        read = {
            b"string": ("GET", key),
            b"hash": ("HGETALL", key),
            b"set": ("SMEMBERS", key),
            b"zset": ("ZRANGE", key, 0, -1, "WITHSCORES"),
            b"stream": ("XRANGE", key, "-", "+"),
            b"list": ("LRANGE", key, 0, -1),
        }[kind]
        [value] = await driver.execute([read])
        if kind == b"hash":
            value = sorted(zip(value[::2], value[1::2], strict=True))
        elif kind == b"set":
            value = sorted(value)
        state[key] = (kind, value)
    return state


async def restore(driver: Driver, state: dict[bytes, Any]) -> None:
    """Empty the database and write back a :func:`dump` of it."""
    commands: list[tuple[Any, ...]] = [("FLUSHDB",)]
    for key, (kind, value) in state.items():
        if kind == b"string":
            commands.append(("SET", key, value))
        elif kind == b"hash":
            commands.append(("HSET", key, *(x for pair in value for x in pair)))
        elif kind == b"set":
            commands.append(("SADD", key, *value))
        elif kind == b"zset":
            pairs = zip(value[::2], value[1::2], strict=True)
            commands.append(("ZADD", key, *(x for member, score in pairs for x in (score, member))))
        elif kind == b"stream":
            commands += [("XADD", key, entry_id, *fields) for entry_id, fields in value]
        elif kind == b"list":
            commands.append(("RPUSH", key, *value))
    await driver.execute(commands)
