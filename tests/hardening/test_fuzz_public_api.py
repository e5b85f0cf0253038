"""Every public method of every domain, fed arbitrary JSON-ish values, odd strings and wrong
types (issue 14).

The methods are found by introspection, so a method added later is fuzzed too. Each
argument is drawn from a mix of plausible values (ids that exist in the seeded store,
well-formed records) and hostile ones. A call may succeed; if it raises, the error must be
:class:`ValidationError` or :class:`NotFoundError` (or :class:`ConflictError` for a call
given an ``expected_version``, the documented outcome of compare-and-set), and the store
must be exactly as it was: nothing half-written.

A second property checks that nothing comes back changed: a JSON value stored through
any of the write paths that take one is either refused or read back exactly.
"""

from __future__ import annotations

import inspect
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvstore import (
    ConflictError,
    DateRange,
    Include,
    Message,
    MessagePatch,
    NotFoundError,
    Resource,
    Score,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
    Storage,
    Thread,
    ValidationError,
    WorkflowRun,
)
from kvstore.records import GetItem, ListNamespaces, PutItem, SearchItems, StoreItem
from kvstore.sync import DOMAINS
from tests.hardening._store import T0, dump, seed

# KVSTORE_FUZZ_EXAMPLES=2000 for a longer hunt than the suite's default.
FUZZ = settings(
    max_examples=int(os.environ.get("KVSTORE_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _methods() -> list[tuple[str, str]]:
    store = Storage()
    found = []
    for domain in DOMAINS:
        cls = type(getattr(store, domain))
        for name, _ in inspect.getmembers(cls, inspect.iscoroutinefunction):
            if not name.startswith("_"):
                found.append((domain, name))
    return found


METHODS = _methods()


def test_every_public_method_is_fuzzed() -> None:
    assert len(METHODS) >= 40
    assert ("memory", "delete_messages") in METHODS
    assert ("traces", "save_spans") in METHODS


# -- hostile values -------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


ODD_STRINGS = [
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "\x00",
    ":",
    "{t}",
    "*",
    "\n",
    "ab",
    "é",
    "\U0001f600",
    "x" * 300,
    "NaN",
    "null",
    "-1",
    "1-0",
    "99999999999999999999",
]
odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=8))
IDS = ["t", "r", "a", "b", "m", "wf", "run", "s", "tr", "sp", "missing"]
# Ids the seeded store has, or strings that are no good as ids (or only just good).
ids = st.one_of(
    st.sampled_from(IDS), st.sampled_from(["", "\ud800", "a\udfffb", "\x00", "ab", "x" * 300])
)
aware = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, None]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    odd_text,
    st.binary(max_size=8),
)
json_ish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(odd_text, children, max_size=4)
    ),
    max_leaves=12,
)
wrong_types = st.one_of(
    st.builds(object),
    st.just({1, 2}),
    st.just((1, "a")),
    st.just(b"ab"),
    st.just(bytearray(b"ab")),
    st.just(memoryview(b"ab")),
    aware,
    st.just(timedelta(seconds=1)),
    st.just(Thread(id="t", resource_id="r")),
    st.just(Score(scorer_id="x", score=1.0)),
    st.just(int),
    st.just(Storage),
    st.just(print),
    st.just(float("nan")),
    st.just(-math.inf),
    st.just(True),
    st.just(2**64),
    st.integers(250, 3000).map(nested),
)
anything = st.one_of(json_ish, wrong_types)


def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Plausible values half of the time, anything at all the other half."""
    return st.one_of(plausible, anything)


def record(cls: type[msgspec.Struct], **plausible: st.SearchStrategy[Any]) -> Any:
    """A record of ``cls`` or a mapping of its fields, each field plausible or hostile.

    Structs do not check types when built, so the record may hold anything.
    """
    fields = msgspec.structs.fields(cls)
    required = {f.name: maybe(plausible.get(f.name, anything)) for f in fields if f.required}
    optional = {f.name: maybe(plausible.get(f.name, anything)) for f in fields if not f.required}
    as_dict = st.fixed_dictionaries(required, optional=optional)
    return st.one_of(as_dict.map(lambda kw: cls(**kw)), as_dict, anything)


def items_of(element: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return maybe(st.lists(element, max_size=3))


times = maybe(aware)
page_numbers = maybe(st.integers(min_value=-2, max_value=3) | st.integers())
roles = st.sampled_from(["user", "assistant", "system", "tool"])
metadata = maybe(st.dictionaries(odd_text, anything, max_size=3))
status = maybe(st.sampled_from(["ok", "error", "unset"]))

RECORDS = {
    "thread": record(Thread, id=ids, resource_id=ids, created_at=times, updated_at=times),
    "message": record(
        Message, id=ids, thread_id=ids, role=roles, created_at=times, metadata=metadata
    ),
    "patch": record(MessagePatch, id=ids, role=roles, metadata=metadata),
    "resource": record(Resource, id=ids, metadata=metadata),
    "run": record(
        WorkflowRun,
        workflow_name=ids,
        run_id=ids,
        version=st.integers(min_value=-1, max_value=5),
        created_at=times,
        updated_at=times,
        status=ids,
    ),
    "score": record(Score, id=ids, scorer_id=ids, score=st.floats(), run_id=ids, created_at=times),
    "span": record(
        Span,
        trace_id=ids,
        span_id=ids,
        name=odd_text,
        start_time=times,
        end_time=times,
        parent_span_id=ids,
        attributes=metadata,
        status=record(SpanStatus, code=status),
        events=items_of(record(SpanEvent, timestamp=times)),
        links=items_of(record(SpanLink, trace_id=ids, span_id=ids)),
    ),
}

#: Namespaces of the long-term store: plausible tuples of labels, or odd ones.
NAMESPACES = maybe(st.lists(odd_text, max_size=3).map(tuple))

#: A strategy per parameter name; any other name gets ``anything``.
PARAMETERS: dict[str, st.SearchStrategy[Any]] = {
    **{
        name: maybe(ids)
        for name in [
            "thread_id",
            "resource_id",
            "run_id",
            "workflow_name",
            "score_id",
            "scorer_id",
            "trace_id",
            "span_id",
            "user_id",
            "session_id",
            "tag",
            "environment",
            "service",
            "status",
            "name",
            "scope",
            "title",
            "working_memory",
        ]
    },
    "ids": items_of(ids),
    "thread_ids": items_of(ids),
    "new_thread_id": maybe(ids),
    "message_ids": items_of(ids),
    "message_limit": page_numbers,
    "trace_ids": items_of(ids),
    "thread": RECORDS["thread"],
    "threads": items_of(RECORDS["thread"]),
    "messages": items_of(RECORDS["message"]),
    "patches": items_of(RECORDS["patch"]),
    "resource": RECORDS["resource"],
    "resources": items_of(RECORDS["resource"]),
    "runs": items_of(RECORDS["run"]),
    "score": RECORDS["score"],
    "scores": items_of(RECORDS["score"]),
    "spans": items_of(RECORDS["span"]),
    "metadata": metadata,
    "attributes": maybe(st.dictionaries(odd_text, scalars, max_size=2)),
    "snapshot": anything,
    "result": anything,
    "error": anything,
    "page": page_numbers,
    "per_page": page_numbers,
    "count": page_numbers,
    "last": page_numbers,
    "cursor": maybe(st.sampled_from([None, "0", "1", "2", "0-0", "1-5"])),
    "order_by": maybe(st.sampled_from(["created_at", "updated_at"])),
    "direction": maybe(st.sampled_from(["asc", "desc"])),
    "source": maybe(st.sampled_from(["live", "test"])),
    "entity": maybe(st.tuples(ids, ids)),
    "span": maybe(st.tuples(ids, ids)),
    "date_range": record(DateRange, start=times, end=times),
    "include": items_of(record(Include, message_id=ids, before=page_numbers, after=page_numbers)),
    "from_date": times,
    "to_date": times,
    "end_time": times,
    "events": items_of(record(SpanEvent, timestamp=times)),
    "created_at": times,
    "expected_version": maybe(st.integers(min_value=-1, max_value=3)),
    "fencing_token": maybe(st.integers(min_value=-1, max_value=3)),
    "owner": maybe(st.sampled_from(["seeded", "other"]) | ids),
    "ttl": maybe(st.sampled_from([timedelta(minutes=1), timedelta(0), timedelta(microseconds=1)])),
    "step_id": maybe(ids),
    "older_than": times,
    "with_snapshot": maybe(st.booleans()),
    "as_type": maybe(st.sampled_from([Any, int, str, dict, list[int], Thread])),
    "items": items_of(
        record(
            StoreItem,
            namespace=NAMESPACES,
            key=odd_text,
            value=maybe(st.dictionaries(odd_text, json_ish, max_size=3)),
            created_at=times,
            updated_at=times,
            expires_at=times,
        )
    ),
    "ops": items_of(
        st.one_of(
            record(GetItem, namespace=NAMESPACES, key=odd_text, refresh_ttl=st.booleans()),
            record(
                PutItem,
                namespace=NAMESPACES,
                key=odd_text,
                value=maybe(st.dictionaries(odd_text, json_ish, max_size=3)),
                ttl=maybe(st.floats(min_value=-1, max_value=100) | st.none()),
            ),
            record(
                SearchItems,
                namespace_prefix=NAMESPACES,
                filter=maybe(st.dictionaries(odd_text, scalars, max_size=2)),
                limit=page_numbers,
                offset=page_numbers,
            ),
            record(
                ListNamespaces,
                prefix=NAMESPACES,
                suffix=NAMESPACES,
                max_depth=page_numbers,
                limit=page_numbers,
                offset=page_numbers,
            ),
        )
    ),
}


@st.composite
def calls(draw: st.DrawFn, domain: str, method: str) -> dict[str, Any]:
    """Keyword arguments for ``domain.method``: each optional one given or left out."""
    signature = inspect.signature(getattr(type(getattr(Storage(), domain)), method))
    kwargs: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        if parameter.default is not inspect.Parameter.empty and draw(st.booleans()):
            continue
        kwargs[name] = draw(PARAMETERS.get(name, anything))
    return kwargs


# -- the property -----------------------------------------------------------------------------


@pytest.mark.parametrize(("domain", "method"), METHODS, ids=[f"{d}.{m}" for d, m in METHODS])
def test_bad_input_is_refused_cleanly(domain: str, method: str) -> None:
    @FUZZ
    @given(kwargs=calls(domain, method), codec=st.sampled_from(["json", "msgpack"]))
    def check(kwargs: dict[str, Any], codec: str) -> None:
        anyio.run(_call_and_compare, domain, method, kwargs, codec)

    check()


async def _call_and_compare(domain: str, method: str, kwargs: dict[str, Any], codec: Any) -> None:
    async with Storage(codec=codec) as store:
        await seed(store)
        before = await dump(store.driver)
        try:
            await getattr(getattr(store, domain), method)(**kwargs)
        except (ValidationError, NotFoundError):
            pass
        except ConflictError:
            # Compare-and-set, and leases: a claim of the seeded run (leased to "seeded"),
            # a renewal or a fenced write with another token than the lease's.
            assert (
                kwargs.get("expected_version") is not None
                or kwargs.get("fencing_token") is not None
                or method == "claim_run"
            )
        else:
            return
        assert await dump(store.driver) == before, "a refused call changed the store"


# -- nothing comes back changed ------------------------------------------------------------

# Only what JSON holds: a value either comes back exactly as given or is refused.
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        odd_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(odd_text, children, max_size=4)
    ),
    max_leaves=10,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (``True`` is not ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    return bool(a == b)


async def _round_trips(value: Any, codec: Any) -> None:
    async with Storage(codec=codec) as store:
        await seed(store)
        writes = {
            "snapshot": (
                store.workflows.persist_snapshot("wf", "run", value),
                lambda: store.workflows.load_snapshot("wf", "run"),
            ),
            "step result": (
                store.workflows.update_step_result("wf", "run", "s", value),
                lambda: _step_result(store),
            ),
            "content": (
                store.memory.save_messages(
                    [Message(id="m", thread_id="t", role="user", content=value, created_at=T0)]
                ),
                lambda: _first_content(store),
            ),
            "metadata": (
                store.memory.update_thread("t", metadata={"v": value}),
                lambda: _thread_metadata(store),
            ),
            "score input": (
                store.evals.save_score(Score(id="s", scorer_id="j", score=1.0, input=value)),
                lambda: _score_input(store),
            ),
        }
        for name, (write, read) in writes.items():
            try:
                await write
            except ValidationError:
                continue
            got = await read()
            assert same(got, value), f"{name}: stored {value!r}, read back {got!r}"


async def _step_result(store: Storage) -> Any:
    run = await store.workflows.get_run("run", "wf")
    assert run is not None
    return run.steps["s"]


async def _first_content(store: Storage) -> Any:
    [message] = await store.memory.get_messages(["m"])
    return message.content


async def _thread_metadata(store: Storage) -> Any:
    thread = await store.memory.get_thread("t")
    assert thread is not None
    return thread.metadata["v"]


async def _score_input(store: Storage) -> Any:
    score = await store.evals.get_score("s")
    assert score is not None
    return score.input


@FUZZ
@given(value=json_values, codec=st.sampled_from(["json", "msgpack"]))
def test_json_values_come_back_exactly_or_are_refused(value: Any, codec: str) -> None:
    anyio.run(_round_trips, value, codec)
