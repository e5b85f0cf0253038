"""Items 7 and 8: retries tell the truth, and a failed write says it may have been applied.

The fault that matters is a reply lost in flight: the server applied the request, the
client never heard back. On Upstash the local server injects it
(``Fault.error(503, applied=True)`` and friends); on Redis a connection class reads every
reply of a request, so the server has certainly applied it, then drops the connection.

The property, over every public method of every domain: with one reply lost, a call
either returns exactly what it returns without the fault, or raises
:class:`ConnectionFailedError` saying that it may or may not have been applied.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import redis.asyncio
import redis.exceptions

from kvstore import (
    ConnectionFailedError,
    Include,
    Message,
    MessagePatch,
    Resource,
    Score,
    Span,
    Storage,
    Thread,
    TraceRetention,
    WorkflowRun,
)
from kvstore.drivers._retry import RetryPolicy
from kvstore.drivers.redis import RedisDriver
from kvstore.drivers.upstash import UpstashDriver
from kvstore.records import (
    CheckpointWrite,
    GetItem,
    ListNamespaces,
    PutItem,
    SearchItems,
    StoredCheckpoint,
    StoreItem,
)
from kvstore.sync import DOMAINS
from kvstore.upstash_server import Fault, UpstashServer
from tests.hardening._store import T0, dump, restore, seed

pytestmark = pytest.mark.anyio

# Retries without real waiting: the tests count outcomes, they never time them.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)
MAY_HAVE_BEEN_APPLIED = "may or may not have been applied"

Call = Callable[[Storage], Awaitable[Any]]


# -- faults ---------------------------------------------------------------------------------


class LostReplies:
    """How many of the next requests lose their reply (shared by one pool's connections)."""

    def __init__(self) -> None:
        self.planned = 0
        self.struck = 0


def losing_connection_class(plan: LostReplies) -> type[redis.asyncio.Connection]:
    class LosingConnection(redis.asyncio.Connection):
        """Reads every reply of a request (so the server applied it all), then, while
        ``plan`` says so, drops the connection as if the replies had been lost."""

        _expected = 0
        _connecting = False

        async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            # The handshake (HELLO, SELECT) is not a request of kvstore's: leave it alone.
            self._connecting = True
            try:
                await super().connect_check_health(*args, **kwargs)
            finally:
                self._connecting = False

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            # kvstore sends one packed buffer per command of the request.
            self._expected = len(command) if isinstance(command, list) else 1
            await super().send_packed_command(command, check_health)

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            reply = await super().read_response(*args, **kwargs)
            self._expected -= 1
            if self._expected == 0 and plan.planned > 0 and not self._connecting:
                plan.planned -= 1
                plan.struck += 1
                await self.disconnect()
                raise redis.exceptions.ConnectionError("injected: the reply was lost")
            return reply

    return LosingConnection


class Backend:
    """A store on a backend that can lose the reply of the next request."""

    def __init__(
        self, store: Storage, lose: Callable[[Fault], None], struck: Callable[[], int]
    ) -> None:
        self.store = store
        self.lose = lose
        self.struck = struck


@pytest.fixture
async def redis_backend(hardening_redis_url: str) -> AsyncIterator[Backend]:
    plan = LostReplies()
    pool = redis.asyncio.ConnectionPool.from_url(
        hardening_redis_url, protocol=2, connection_class=losing_connection_class(plan)
    )
    driver = RedisDriver(
        redis.asyncio.Redis(connection_pool=pool), owns_client=True, retry=FAST_RETRY
    )

    def lose(fault: Fault) -> None:
        del fault  # one kind of loss on Redis: all replies read, then the connection drops
        plan.planned += 1

    async with Storage(driver, owns_driver=True) as store:
        yield Backend(store, lose, lambda: plan.struck)


@pytest.fixture
async def upstash_backend(upstash_memory_server: UpstashServer) -> AsyncIterator[Backend]:
    server = upstash_memory_server
    server.faults.clear()
    driver = UpstashDriver(server.url, server.token, retry=FAST_RETRY)
    async with Storage(driver, owns_driver=True) as store:
        await driver.execute([("FLUSHDB",)])
        yield Backend(store, server.faults.inject, lambda: server.faults.struck)
    server.faults.clear()


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "upstash"])
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(f"{request.param}_backend")
    return backend


# Faults that strike after the server applied the request.
APPLIED_FAULTS = [
    pytest.param(Fault.error(503, applied=True), id="503"),
    pytest.param(Fault.drop(applied=True), id="dropped"),
    pytest.param(Fault.malformed(applied=True), id="malformed"),
]


async def _outcome(call: Awaitable[Any]) -> Any:
    """What ``call`` returns, or the ConnectionFailedError it raises."""
    try:
        return await call
    except ConnectionFailedError as exc:
        return exc


# -- item 7: deletes ------------------------------------------------------------------------

DELETES: dict[str, tuple[Call, Call]] = {
    # the delete, and a read that is None/empty once the record is gone
    "delete_thread": (lambda s: s.memory.delete_thread("t"), lambda s: s.memory.get_thread("t")),
    "delete_messages": (
        lambda s: s.memory.delete_messages(["a", "b"]),
        lambda s: s.memory.get_messages(["a", "b"]),
    ),
    "delete_run": (
        lambda s: s.workflows.delete_run("wf", "run"),
        lambda s: s.workflows.get_run("run", "wf"),
    ),
    "delete_score": (lambda s: s.evals.delete_score("s"), lambda s: s.evals.get_score("s")),
    "delete_traces": (lambda s: s.traces.delete_traces(["tr"]), lambda s: s.traces.get_trace("tr")),
}


@pytest.mark.parametrize("fault", APPLIED_FAULTS)
@pytest.mark.parametrize(("delete", "read"), list(DELETES.values()), ids=list(DELETES))
async def test_a_delete_whose_reply_was_lost_does_not_say_the_record_never_existed(
    backend: Backend, fault: Fault, delete: Call, read: Call
) -> None:
    store = backend.store
    await seed(store)
    backend.lose(fault)
    outcome = await _outcome(delete(store))
    if isinstance(outcome, ConnectionFailedError):
        assert MAY_HAVE_BEEN_APPLIED in str(outcome)
    else:
        assert outcome in (True, 2, 1), f"the record existed, yet the call returned {outcome!r}"
    assert backend.struck() == 1
    assert not await read(store)  # and it is gone


async def test_the_issue_example_on_upstash(upstash_backend: Backend) -> None:
    store = upstash_backend.store
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    upstash_backend.lose(Fault.error(503, applied=True))
    with pytest.raises(ConnectionFailedError, match=MAY_HAVE_BEEN_APPLIED):
        await store.memory.delete_thread("t")
    assert await store.memory.get_thread("t") is None
    assert await store.memory.delete_thread("t") is False  # the caller's own retry: truthful


async def test_a_delete_that_was_not_applied_is_not_claimed_either(
    upstash_backend: Backend,
) -> None:
    store = upstash_backend.store
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    upstash_backend.lose(Fault.error(503, applied=False))
    with pytest.raises(ConnectionFailedError, match=MAY_HAVE_BEEN_APPLIED):
        await store.memory.delete_thread("t")
    assert await store.memory.get_thread("t") is not None
    assert await store.memory.delete_thread("t") is True


# -- item 8: the Redis driver's message for a write that failed in flight --------------------


async def test_redis_says_a_write_that_failed_in_flight_may_have_been_applied(
    redis_backend: Backend,
) -> None:
    driver = redis_backend.store.driver
    redis_backend.lose(Fault.error(503))
    with pytest.raises(ConnectionFailedError) as caught:
        await driver.execute([("INCR", "n")])
    message = str(caught.value)
    assert MAY_HAVE_BEEN_APPLIED in message
    assert "not retried because the request is not marked idempotent" in message
    assert await driver.execute([("GET", "n")]) == [b"1"]  # it was applied


async def test_redis_retries_an_idempotent_request_and_says_nothing(
    redis_backend: Backend,
) -> None:
    driver = redis_backend.store.driver
    await driver.execute([("SET", "k", "v")])
    redis_backend.lose(Fault.error(503))
    assert await driver.execute([("GET", "k")], idempotent=True) == [b"v"]
    assert redis_backend.struck() == 1


async def test_redis_client_kill_mid_request(hardening_redis_url: str) -> None:
    """A real connection killed by the server while a write's batch is in flight."""
    victim = RedisDriver.from_url(hardening_redis_url)
    admin = redis.asyncio.Redis.from_url(hardening_redis_url)
    failure: list[BaseException] = []

    async def write() -> None:
        try:
            # The SET applies; the BLPOP then waits until the connection is killed.
            await victim.execute([("SET", "k", "applied"), ("BLPOP", "never", "0")])
        except ConnectionFailedError as exc:
            failure.append(exc)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            blocked = await _wait_for_blocked_client(admin)
            await admin.client_kill_filter(_id=blocked)
    finally:
        await victim.aclose()
        value = await admin.get("k")
        await admin.aclose()
    assert failure, "the killed request did not fail"
    assert MAY_HAVE_BEEN_APPLIED in str(failure[0])
    assert "not retried" in str(failure[0])
    assert value == b"applied"


async def _wait_for_blocked_client(admin: redis.asyncio.Redis) -> str:
    while True:  # bounded by pytest's own timeout if the client never blocks
        for client in await admin.client_list():
            if client.get("cmd") == "blpop":
                return str(client["id"])
        await anyio.sleep(0.01)


async def test_redis_says_nothing_was_sent_when_it_cannot_connect() -> None:
    async with RedisDriver.from_url("redis://127.0.0.1:9/0") as driver:
        with pytest.raises(ConnectionFailedError) as caught:
            await driver.execute([("INCR", "n")])
    assert "cannot reach Redis" in str(caught.value)
    assert MAY_HAVE_BEEN_APPLIED not in str(caught.value)


# -- the property, over every public method ---------------------------------------------------


def _span(**fields: Any) -> Span:
    return Span(**{"trace_id": "tr2", "span_id": "x", "name": "n", "start_time": T0, **fields})


async def _cloned(store: Storage) -> Any:
    """A clone, without what is new on every call (its ids and times)."""
    thread, copies = await store.memory.clone_thread("t", "t-copy", message_limit=2)
    return thread.id, thread.resource_id, thread.title, [(m.content, m.created_at) for m in copies]


CALLS: dict[str, Call] = {
    "memory.count_messages": lambda s: s.memory.count_messages(["t", "missing"]),
    "memory.delete_messages": lambda s: s.memory.delete_messages(["a", "missing"]),
    "memory.delete_thread": lambda s: s.memory.delete_thread("t"),
    "memory.export_messages": lambda s: s.memory.export_messages("t", count=2),
    "memory.export_resources": lambda s: s.memory.export_resources(),
    "memory.export_threads": lambda s: s.memory.export_threads(),
    "memory.get_messages": lambda s: s.memory.get_messages(["a", "b", "missing"]),
    "memory.list_resources": lambda s: s.memory.list_resources(per_page=5),
    "memory.pop_message": lambda s: s.memory.pop_message("t"),
    "memory.get_resource": lambda s: s.memory.get_resource("r"),
    "memory.get_thread": lambda s: s.memory.get_thread("t"),
    "memory.list_messages": lambda s: s.memory.list_messages(
        "t", last=2, include=[Include(message_id="a", after=1)]
    ),
    "memory.list_threads": lambda s: s.memory.list_threads("r"),
    "memory.restore_messages": lambda s: s.memory.restore_messages(
        [Message(id="n", thread_id="t", role="user", content="x", created_at=T0)]
    ),
    "memory.restore_resources": lambda s: s.memory.restore_resources(
        [Resource(id="r2", created_at=T0, updated_at=T0)]
    ),
    "memory.restore_threads": lambda s: s.memory.restore_threads(
        [Thread(id="t2", resource_id="r", created_at=T0, updated_at=T0)]
    ),
    "memory.save_messages": lambda s: s.memory.save_messages(
        [Message(id="n", thread_id="t", role="user", content="x", created_at=T0)]
    ),
    "memory.save_resource": lambda s: s.memory.save_resource(
        Resource(id="r", working_memory="w", created_at=T0, updated_at=T0)
    ),
    "memory.save_thread": lambda s: s.memory.save_thread(
        Thread(id="t", resource_id="r", title="new", created_at=T0, updated_at=T0)
    ),
    "memory.update_messages": lambda s: s.memory.update_messages(
        [MessagePatch(id="a", content="y")]
    ),
    "memory.update_resource": lambda s: s.memory.update_resource("r", working_memory="w"),
    "memory.update_thread": lambda s: s.memory.update_thread("t", title="x"),
    "memory.list_messages_merged": lambda s: s.memory.list_messages_merged(
        resource_id="r", direction="desc"
    ),
    "memory.move_thread": lambda s: s.memory.move_thread("t", "r2"),
    "memory.clone_thread": _cloned,
    "workflows.claim_run": lambda s: s.workflows.claim_run(
        "wf", "run", "seeded", timedelta(minutes=1)
    ),
    "workflows.delete_run": lambda s: s.workflows.delete_run("wf", "run"),
    "workflows.delete_runs": lambda s: s.workflows.delete_runs(
        older_than=datetime(2100, 1, 1, tzinfo=UTC), status="running"
    ),
    "workflows.release_run": lambda s: s.workflows.release_run("wf", "run", 1),
    "workflows.renew_run": lambda s: s.workflows.renew_run("wf", "run", 1, timedelta(minutes=1)),
    "workflows.update_step_result": lambda s: s.workflows.update_step_result(
        "wf", "run", "book", {"seat": "12A"}, status="booked", fencing_token=1
    ),
    "workflows.export_runs": lambda s: s.workflows.export_runs(),
    "workflows.get_run": lambda s: s.workflows.get_run("run"),
    "workflows.list_runs": lambda s: s.workflows.list_runs("wf"),
    "workflows.load_snapshot": lambda s: s.workflows.load_snapshot("wf", "run"),
    "workflows.persist_snapshot": lambda s: s.workflows.persist_snapshot("wf", "run", {"s": 2}),
    "workflows.restore_runs": lambda s: s.workflows.restore_runs(
        [
            WorkflowRun(
                workflow_name="wf",
                run_id="run2",
                snapshot=[1],
                version=3,
                created_at=T0,
                updated_at=T0,
            )
        ]
    ),
    "workflows.update_run": lambda s: s.workflows.update_run("wf", "run", status="done"),
    "evals.delete_score": lambda s: s.evals.delete_score("s"),
    "evals.export_scores": lambda s: s.evals.export_scores(),
    "evals.get_score": lambda s: s.evals.get_score("s"),
    "evals.list_scores": lambda s: s.evals.list_scores(scorer_id="judge"),
    "evals.restore_scores": lambda s: s.evals.restore_scores(
        [Score(id="s2", scorer_id="judge", score=1.0, created_at=T0)]
    ),
    "evals.save_score": lambda s: s.evals.save_score(
        Score(id="s3", scorer_id="judge", score=0.25, created_at=T0)
    ),
    # 1000 days from T0: the most one call reads, which holds the seeded score (made now).
    "evals.score_stats": lambda s: s.evals.score_stats(
        "judge", from_date=T0, to_date=T0 + timedelta(days=999), bucket="day"
    ),
    "traces.apply_retention": lambda s: Storage(
        s.driver, namespace=s.namespace, trace_retention=TraceRetention(max_spans=1)
    ).traces.apply_retention(),
    "traces.delete_traces": lambda s: s.traces.delete_traces(["tr", "missing"]),
    "traces.export_spans": lambda s: s.traces.export_spans(),
    "traces.get_root_span": lambda s: s.traces.get_root_span("tr"),
    "traces.get_span": lambda s: s.traces.get_span("tr", "sp"),
    "traces.get_trace": lambda s: s.traces.get_trace("tr"),
    "traces.list_traces": lambda s: s.traces.list_traces(),
    "traces.save_spans": lambda s: s.traces.save_spans([_span()]),
    "traces.update_span": lambda s: s.traces.update_span(
        "tr", "sp", end_time=T0, attributes={"k": "w"}, events=[{"name": "e", "timestamp": T0}]
    ),
    # Reads and writes in one batch: a retry would read the first attempt's writes.
    "langgraph_items.export_items": lambda s: s.langgraph_items.export_items(count=2),
    "langgraph_items.restore_items": lambda s: s.langgraph_items.restore_items(
        [StoreItem(namespace=("n", "r"), key="k", value={"v": 1}, created_at=T0, updated_at=T0)]
    ),
    "langgraph_items.batch": lambda s: s.langgraph_items.batch(
        [
            PutItem(namespace=("n", "a"), key="k", value={"v": 1}, ttl=5),
            GetItem(namespace=("n", "a"), key="k"),
            SearchItems(namespace_prefix=("n",), filter={"v": 1}),
            ListNamespaces(prefix=("n",)),
        ]
    ),
    "checkpoints.copy_thread": lambda s: s.checkpoints.copy_thread("lg", "lg2"),
    "checkpoints.delete_runs": lambda s: s.checkpoints.delete_runs(["run", "missing"]),
    "checkpoints.delete_thread": lambda s: s.checkpoints.delete_thread("lg"),
    "checkpoints.get": lambda s: s.checkpoints.get("lg"),
    "checkpoints.list": lambda s: s.checkpoints.list("lg", filters={"step": 1}),
    "checkpoints.prune": lambda s: s.checkpoints.prune(["lg", "missing"]),
    "checkpoints.put": lambda s: s.checkpoints.put(
        "lg",
        "",
        "c9",
        checkpoint=("json", b"{}"),
        metadata=("json", b"{}"),
        versions={"a": "2"},
        blobs=[("a", "2", ("json", b"2"))],
        parent_id="c2",
        run_id="run3",
    ),
    "checkpoints.put_writes": lambda s: s.checkpoints.put_writes(
        "lg", "", "c2", "task", [(0, "ch", ("json", b"3")), (-1, "err", ("json", b"4"))]
    ),
    "checkpoints.threads": lambda s: s.checkpoints.threads(),
    "checkpoints.export_checkpoints": lambda s: s.checkpoints.export_checkpoints("lg", count=2),
    "checkpoints.count_checkpoints": lambda s: s.checkpoints.count_checkpoints(["lg", "x"]),
    "checkpoints.restore_checkpoints": lambda s: s.checkpoints.restore_checkpoints(
        [
            StoredCheckpoint(
                thread_id="lg3",
                namespace="",
                checkpoint_id="c1",
                parent_id=None,
                checkpoint=("json", b"{}"),
                metadata=("json", b"{}"),
                versions={"a": "1"},
                values={"a": ("json", b"1")},
                writes=[CheckpointWrite(task_id="t", channel="c", value=("json", b"2"), index=0)],
                run_id="run",
                tokens={"step": "n:1"},
            )
        ]
    ),
}


def _public_methods() -> Iterator[str]:
    store = Storage()
    for domain in DOMAINS:
        for name, _ in inspect.getmembers(
            type(getattr(store, domain)), inspect.iscoroutinefunction
        ):
            if not name.startswith("_"):
                yield f"{domain}.{name}"


def test_every_public_method_has_a_call() -> None:
    """A method added later fails here until it is given a call in CALLS."""
    assert set(_public_methods()) == set(CALLS)


@pytest.mark.parametrize("fault", APPLIED_FAULTS[:1])
@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
async def test_a_lost_reply_never_makes_a_call_report_something_untrue(
    backend: Backend, fault: Fault, call: Call
) -> None:
    store = backend.store
    await seed(store)
    state = await dump(store.driver)
    expected = await call(store)  # what the call says without the fault
    await restore(store.driver, state)
    backend.lose(fault)
    got = await _outcome(call(store))
    if isinstance(got, ConnectionFailedError):
        assert MAY_HAVE_BEEN_APPLIED in str(got)
    else:
        assert got == expected
    assert backend.struck() == 1
