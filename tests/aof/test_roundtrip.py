"""What is written is what a reopened driver reads back, for every type and through Storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kvstore import BatchError, CommandError, ConflictError, Span, SpanEvent, SpanStatus, Storage
from kvstore._local import LOCAL_URL, default_url
from kvstore.drivers import MemoryDriver, Script
from tests.aof.conftest import T0, Clock, dump
from tests.transfer.dataset import fill, snapshot

pytestmark = pytest.mark.anyio


# The INCR fails (not an integer): the script stops and the SET stays, as in Redis.
HALF_THEN_FAIL = Script(
    "aof_half_then_fail",
    "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCR', KEYS[1])",
)


async def write_every_type(driver: MemoryDriver, clock: Clock) -> None:
    await driver.execute(
        [
            ["SET", "s:plain", b"\x00bytes\xff"],
            ["SET", "s:ex", "v", "EX", 100],
            ["SET", "s:px", "v", "PX", 5000],
            ["SET", "s:exat", "v", "EXAT", T0 // 1000 + 50],
            ["SET", "s:keep", "v", "PX", 9000],
            ["SET", "s:keep", "w", "KEEPTTL"],
            ["SET", "s:persisted", "v", "EX", 10],
            ["PERSIST", "s:persisted"],
            ["MSET", "m:1", "a", "m:2", "b", "m:3", "c"],
            ["DEL", "m:2", "nope"],
            ["INCRBY", "n", 41],
            ["INCR", "n"],
            ["HSET", "h", "z", "1", "a", "2", "m", "3"],
            ["HDEL", "h", "a"],
            ["HSET", "h", "a", "again"],  # now last in field order
            ["HINCRBY", "h", "count", 7],
            ["EXPIRE", "h", 60],
            ["SADD", "set", "x", "y", "z"],
            ["SREM", "set", "y"],
            ["ZADD", "z", 1.5, "a", "-inf", "b", "+inf", "c", 1e16, "d", 0.1, "e"],
            ["ZINCRBY", "z", 2, "a"],
            ["ZREM", "z", "e"],
            ["PEXPIREAT", "z", T0 + 123_456],
        ]
    )
    clock.now += 1
    await driver.execute([["XADD", "x", "*", "f", "1"], ["XADD", "x", "*", "f", "2", "g", "3"]])
    await driver.execute(
        [["XADD", "x", "MAXLEN", "2", "*", "f", "4"], ["XADD", "t", "7-1", "k", "v"]]
    )
    await driver.execute([["XADD", "t", "7-2", "k", "v"], ["XDEL", "t", "7-1"]])


async def test_every_type_survives_reopening(path: Path) -> None:
    clock = Clock()
    async with MemoryDriver(path, fsync="always", clock=clock) as driver:
        await write_every_type(driver, clock)
        before = await dump(driver)
    assert {kind for kind, _, _ in before.values()} == {
        b"string",
        b"hash",
        b"set",
        b"zset",
        b"stream",
    }
    async with MemoryDriver(path, clock=clock) as driver:
        assert await dump(driver) == before
    async with MemoryDriver(path, clock=clock) as driver:  # and again: reading wrote nothing odd
        assert await dump(driver) == before


async def test_stream_ids_stay_monotonic_after_reopening(path: Path) -> None:
    clock = Clock()
    async with MemoryDriver(path, clock=clock) as driver:
        _, second = await driver.execute(
            [["XADD", "s", "*", "a", "1"], ["XADD", "s", "*", "a", "2"]]
        )
        await driver.execute([["XDEL", "s", second]])
    clock.now -= 60_000  # even with the clock going back
    async with MemoryDriver(path, clock=clock) as driver:
        [third] = await driver.execute([["XADD", "s", "*", "a", "3"]])
        assert isinstance(third, bytes)
        ms, seq = (int(part) for part in third.split(b"-"))
        last_ms, last_seq = (int(part) for part in second.split(b"-"))
        assert (ms, seq) > (last_ms, last_seq)
        with pytest.raises(CommandError, match="equal or smaller"):
            await driver.execute([["XADD", "s", second, "a", "4"]])


async def test_replay_runs_each_batch_at_its_own_time(path: Path) -> None:
    clock = Clock()
    async with MemoryDriver(path, clock=clock) as driver:
        await driver.execute([["HSET", "h", "a", "1"], ["SET", "k", "v", "PX", 100]])
        clock.now += 500
        # A deadline already past deletes at once, so the next HSET starts a new hash; k
        # has expired, so SET NX succeeds.
        await driver.execute([["PEXPIREAT", "h", T0 + 10], ["HSET", "h", "b", "2"]])
        await driver.execute([["SET", "k", "w", "NX"]])
        before = await dump(driver)
    assert before[b"h"] == (b"hash", [b"b", b"2"], -1)
    assert before[b"k"] == (b"string", b"w", -1)
    async with MemoryDriver(path, clock=clock) as driver:
        assert await dump(driver) == before


async def test_keys_expire_across_a_restart(path: Path) -> None:
    clock = Clock()
    async with MemoryDriver(path, clock=clock) as driver:
        await driver.execute([["SET", "short", "v", "PX", 100], ["SET", "long", "v", "EX", 3600]])
    clock.now += 1000  # the process was down while the short deadline passed
    async with MemoryDriver(path, clock=clock) as driver:
        assert await driver.execute([["GET", "short"], ["PTTL", "long"]]) == [None, 3_599_000]
    async with MemoryDriver(path, clock=clock) as driver:
        assert await driver.execute([["EXISTS", "short", "long"]]) == [1]


async def test_failed_commands_and_scripts_keep_what_they_applied(path: Path) -> None:
    async with MemoryDriver(path) as driver:
        with pytest.raises(BatchError):
            await driver.execute([["SET", "a", "1"], ["HSET", "a", "f", "v"], ["SET", "b", "2"]])
        with pytest.raises(CommandError, match="not an integer"):
            await driver.run(HALF_THEN_FAIL, ["c"], ["text"])
        # Through EVALSHA too (how the local Upstash server runs scripts).
        with pytest.raises(BatchError):
            await driver.execute([["EVALSHA", HALF_THEN_FAIL.sha, 1, "d", "more"]])
        before = await dump(driver)
    async with MemoryDriver(path) as driver:
        assert await dump(driver) == before
    assert set(before) == {b"a", b"b", b"c", b"d"}


async def test_flushdb_is_kept(path: Path) -> None:
    async with MemoryDriver(path) as driver:
        await driver.execute([["SET", "a", "1"], ["FLUSHDB"], ["SET", "b", "2"]])
    async with MemoryDriver(path) as driver:
        assert await dump(driver) == {b"b": (b"string", b"2", -1)}


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_domain_records_survive_reopening(tmp_path: Path, codec: str) -> None:
    url = f"memory://{tmp_path}/store/data.aof"  # the directory is created
    async with Storage.from_url(url, codec=codec) as store:  # type: ignore[arg-type]
        await fill(store)
        before = await snapshot(store)
    assert all(before[kind] for kind in ("messages", "runs", "scores", "spans"))
    async with Storage.from_url(url + "?fsync=always", codec=codec) as store:  # type: ignore[arg-type]
        assert await snapshot(store) == before


def test_storage_stays_in_memory_and_the_local_default_is_a_file() -> None:
    store = Storage()
    assert isinstance(store.driver, MemoryDriver)
    assert store.driver.path is None
    assert default_url() == LOCAL_URL == "memory://.kvstore/kvstore.aof"


async def test_a_span_updated_while_it_runs_survives_reopening(path: Path) -> None:
    # The update script's writes (the stream entry moved, the summary and index entries
    # rewritten) are journaled command by command; a reopened store reads the same trace.
    started = datetime.fromtimestamp(T0 / 1000, UTC)
    async with MemoryDriver(path) as driver:
        store = Storage(driver)
        await store.traces.save_spans(
            [Span(trace_id="t", span_id="root", name="run", start_time=started)]
        )
        await store.traces.update_span(
            "t",
            "root",
            end_time=started + timedelta(seconds=1),
            status=SpanStatus(code="error"),
            events=[SpanEvent(name="e", timestamp=started)],
        )
        before = (await store.traces.get_trace("t"), await store.traces.list_traces(has_error=True))
        before_dump = await dump(driver)
    async with MemoryDriver(path) as driver:
        store = Storage(driver)
        assert await dump(driver) == before_dump
        after = (await store.traces.get_trace("t"), await store.traces.list_traces(has_error=True))
    assert after == before
    assert before[1].total == 1


async def test_a_workflow_lease_survives_a_restart_and_ends_on_the_driver_s_clock(
    path: Path,
) -> None:
    clock = Clock()
    ttl = timedelta(seconds=10)
    async with MemoryDriver(path, clock=clock) as driver, Storage(driver) as store:
        await store.workflows.persist_snapshot("w", "r", {"step": 1}, status="suspended")
        await store.workflows.update_step_result("w", "r", "fetch", {"ok": True})
        token = await store.workflows.claim_run("w", "r", "worker-a", ttl)
    clock.now += 5_000
    async with MemoryDriver(path, clock=clock) as driver, Storage(driver) as store:
        with pytest.raises(ConflictError) as caught:
            await store.workflows.claim_run("w", "r", "worker-b", ttl)
        assert caught.value.actual == token
        await store.workflows.persist_snapshot("w", "r", {"step": 2}, fencing_token=token)
    clock.now += 5_001  # the lease's deadline, kept across the restart, has passed
    async with MemoryDriver(path, clock=clock) as driver, Storage(driver) as store:
        with pytest.raises(ConflictError) as caught:
            await store.workflows.persist_snapshot("w", "r", {"step": "late"}, fencing_token=token)
        assert caught.value.actual == 0
        second = await store.workflows.claim_run("w", "r", "worker-b", ttl)
        assert second > token
        run = await store.workflows.get_run("r", "w")
        assert run is not None
        assert (run.snapshot, run.steps, run.version) == ({"step": 2}, {"fetch": {"ok": True}}, 3)
