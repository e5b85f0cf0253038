"""Items 1 to 5: bad input gives ValidationError, and the store is left as it was.

Every case runs a public call on a seeded store, expects :class:`ValidationError`, and
compares a dump of the whole database before and after. The JSON and MessagePack codecs
both run (MessagePack keeps NaN and infinities, JSON cannot: both must refuse them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from kvstore import (
    Include,
    Message,
    MessagePatch,
    Resource,
    Score,
    Span,
    Storage,
    Thread,
    ValidationError,
    WorkflowRun,
)
from kvstore.codec import MAX_DEPTH
from kvstore.errors import CorruptRecordError
from tests.hardening._store import T0, dump, seed

pytestmark = pytest.mark.anyio

Call = Callable[[Storage], Awaitable[Any]]


@pytest.fixture(params=["json", "msgpack"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    async with Storage(codec=request.param) as store:
        await seed(store)
        yield store


def nested(depth: int, leaf: Any = "x") -> Any:
    """A value ``depth`` lists deep, built the way the issue did: ``d = [d]`` in a loop."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


async def refused(store: Storage, call: Call, field: str | None = None) -> ValidationError:
    """Run ``call``: it must raise ValidationError (naming ``field``) and write nothing."""
    before = await dump(store.driver)
    with pytest.raises(ValidationError) as caught:
        await call(store)
    assert await dump(store.driver) == before
    if field is not None:
        assert caught.value.field == field, caught.value
    return caught.value


def message(**fields: Any) -> Message:
    return Message(**{"id": "m", "thread_id": "t", "role": "user", "content": "", **fields})


def span(**fields: Any) -> Span:
    return Span(**{"trace_id": "tr", "span_id": "sp2", "name": "n", "start_time": T0, **fields})


def run(**fields: Any) -> WorkflowRun:
    defaults = {"workflow_name": "wf", "run_id": "run2", "snapshot": None, "version": 1}
    return WorkflowRun(**{**defaults, "created_at": T0, "updated_at": T0, **fields})


def write_paths(value: Any) -> dict[str, tuple[Call, str]]:
    """Every public write that takes a caller's JSON value, with ``value`` in it, and the
    field the error must name."""
    return {
        "save_messages content": (
            lambda s: s.memory.save_messages([message(content=value)]),
            "messages[0].content",
        ),
        "save_messages metadata": (
            lambda s: s.memory.save_messages([message(metadata={"v": value})]),
            "messages[0].metadata",
        ),
        "restore_messages": (
            lambda s: s.memory.restore_messages(
                [{"id": "m", "thread_id": "t", "role": "user", "content": value}]
            ),
            "messages[0].content",
        ),
        "update_messages content": (
            lambda s: s.memory.update_messages([MessagePatch(id="m", content=value)]),
            "patches[0].content",
        ),
        "update_messages metadata": (
            lambda s: s.memory.update_messages([MessagePatch(id="m", metadata={"v": value})]),
            "patches[0].metadata",
        ),
        "save_thread": (
            lambda s: s.memory.save_thread(Thread(id="t", resource_id="r", metadata={"v": value})),
            "thread.metadata",
        ),
        "update_thread": (
            lambda s: s.memory.update_thread("t", title="new", metadata={"ok": 1, "v": value}),
            "metadata.v",
        ),
        "save_resource": (
            lambda s: s.memory.save_resource(Resource(id="r", metadata={"v": value})),
            "resource.metadata",
        ),
        "update_resource": (
            lambda s: s.memory.update_resource("r", working_memory="x", metadata={"v": value}),
            "metadata.v",
        ),
        "update_resource (new)": (
            lambda s: s.memory.update_resource("new", metadata={"v": value}),
            "metadata.v",
        ),
        "persist_snapshot": (
            lambda s: s.workflows.persist_snapshot("wf", "run", value, status="done"),
            "snapshot",
        ),
        "persist_snapshot (new run)": (
            lambda s: s.workflows.persist_snapshot("wf", "new", {"v": value}),
            "snapshot",
        ),
        "update_run result": (
            lambda s: s.workflows.update_run("wf", "run", status="done", result=value),
            "result",
        ),
        "update_run error": (
            lambda s: s.workflows.update_run("wf", "run", error=[value]),
            "error",
        ),
        "restore_runs": (
            lambda s: s.workflows.restore_runs([run(snapshot=value)]),
            "runs[0].snapshot",
        ),
        "save_score": (
            lambda s: s.evals.save_score(Score(scorer_id="j", score=1.0, input=value)),
            "score.input",
        ),
        "restore_scores": (
            lambda s: s.evals.restore_scores(
                [Score(scorer_id="j", score=1.0, metadata={"v": value})]
            ),
            "scores[0].metadata",
        ),
        "save_spans": (
            lambda s: s.traces.save_spans([span(attributes={"v": value})]),
            "spans[0].attributes",
        ),
    }


def cases(value: Any) -> list[Any]:
    return [
        pytest.param(call, field, id=name) for name, (call, field) in write_paths(value).items()
    ]


# -- item 1: deep nesting -------------------------------------------------------------------


@pytest.mark.parametrize(("call", "field"), cases(nested(10_000)))
async def test_deep_nesting_is_refused(store: Storage, call: Call, field: str) -> None:
    error = await refused(store, call)
    assert "nested too deep" in str(error)
    assert error.field is not None
    assert error.field.startswith(field), error.field


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 600, 5_000])
async def test_nesting_beyond_the_limit_is_refused_below_the_recursion_limit(
    store: Storage, depth: int
) -> None:
    # 600 levels encode without hitting Python's recursion limit: the limit is explicit,
    # so that whatever is stored can be decoded again from any reasonable call depth.
    await refused(
        store, lambda s: s.workflows.persist_snapshot("wf", "run", nested(depth)), "snapshot"
    )


async def test_nesting_up_to_the_limit_round_trips(store: Storage) -> None:
    deepest = nested(MAX_DEPTH, {"leaf": [1.5, None]})  # MAX_DEPTH lists, then 2 more levels
    await refused(store, lambda s: s.workflows.persist_snapshot("wf", "run", deepest))
    fits = nested(MAX_DEPTH - 2, {"leaf": [1.5, None]})
    await store.workflows.persist_snapshot("wf", "run", fits)
    assert await store.workflows.load_snapshot("wf", "run") == fits
    content = nested(MAX_DEPTH - 1)  # one level for the message record itself
    await store.memory.save_messages([message(content=content)])
    [saved] = await store.memory.get_messages(["m"])
    assert saved.content == content


async def test_deep_data_already_stored_reads_as_corrupt_not_recursion_error() -> None:
    """Data written by another program may nest deeper than anything kvstore writes."""
    async with Storage() as store:  # JSON: the stored document is patched as text
        await seed(store)
        await store.workflows.persist_snapshot("wf", "run", "MARKER-9b1c")
        await _replace_stored(store, b'"MARKER-9b1c"', b"[" * 20_000 + b"]" * 20_000)
        with pytest.raises(CorruptRecordError):
            await store.workflows.load_snapshot("wf", "run")
        with pytest.raises(CorruptRecordError):
            await store.workflows.get_run("run", "wf")


async def _replace_stored(store: Storage, marker: bytes, replacement: bytes) -> None:
    """Replace ``marker`` in whichever hash field holds it (layout-agnostic)."""
    patched = 0
    for key, (kind, value) in (await dump(store.driver)).items():
        if kind != b"hash":
            continue
        for field, data in value:
            if marker in data:
                new = data.replace(marker, replacement)
                await store.driver.execute([("HSET", key, field, new)])
                patched += 1
    assert patched


# -- item 2: values JSON cannot encode --------------------------------------------------------


@pytest.mark.parametrize(("call", "field"), cases(object()))
async def test_unencodable_values_are_refused(store: Storage, call: Call, field: str) -> None:
    error = await refused(store, call)
    assert "cannot be encoded" in str(error)
    assert error.field is not None
    assert error.field.startswith(field), error.field


async def test_update_thread_and_resource_name_the_metadata_key(store: Storage) -> None:
    await refused(
        store, lambda s: s.memory.update_thread("t", metadata={"a": object()}), "metadata.a"
    )
    await refused(
        store, lambda s: s.memory.update_resource("r", metadata={"a": object()}), "metadata.a"
    )
    await refused(store, lambda s: s.memory.update_thread("t", metadata=["a"]), "metadata")
    await refused(store, lambda s: s.memory.update_resource("r", metadata={1: "x"}), "metadata")


# -- item 3: NaN and infinities -------------------------------------------------------------


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")], ids=str)
async def test_the_issue_example(store: Storage, number: float) -> None:
    await refused(
        store, lambda s: s.workflows.persist_snapshot("wf", "r", {"x": number}), "snapshot.x"
    )
    assert await store.workflows.load_snapshot("wf", "r") is None


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")], ids=str)
async def test_non_finite_numbers_are_refused_on_every_write_path(
    store: Storage, number: float
) -> None:
    for name, (call, field) in write_paths({"deep": [1, None, {"n": number}]}).items():
        error = await refused(store, call)
        assert "NaN and infinity" in str(error), name
        assert error.field is not None, name
        assert error.field.startswith(field), error.field
        assert error.field.endswith("deep[2].n"), error.field


async def test_non_finite_scores_and_span_attributes_are_refused(store: Storage) -> None:
    await refused(store, lambda s: s.evals.save_score(Score(scorer_id="j", score=float("inf"))))
    await refused(store, lambda s: s.evals.save_score({"scorer_id": "j", "score": float("nan")}))
    await refused(
        store,
        lambda s: s.traces.save_spans([span(attributes={"x": float("nan")})]),
        "spans[0].attributes.x",
    )


async def test_values_that_look_like_non_finite_numbers_are_kept(store: Storage) -> None:
    """No false alarm: null, strings, and bytes whose MessagePack form resembles a NaN."""
    value = {
        "null": None,
        "text": "NaN inf -Infinity \xcb\x7f\xff",
        "bytes": b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
        "huge": 2**70,
        "floats": [0.0, -0.0, 1e308, -1e-308, 5e-324],
    }
    if store.codec == "msgpack":
        del value["huge"]  # MessagePack has no integers beyond 64 bits
    await store.workflows.persist_snapshot("wf", "run", value)
    loaded = await store.workflows.load_snapshot("wf", "run")
    assert loaded["null"] is None
    assert loaded["floats"] == value["floats"]
    assert loaded["text"] == value["text"]
    assert loaded.get("huge") == value.get("huge")


# -- item 4: lone surrogates ----------------------------------------------------------------

LONE = "a\ud800b"

SURROGATE_CALLS: dict[str, tuple[Call, str]] = {
    "get_thread": (lambda s: s.memory.get_thread(LONE), "thread_id"),
    "save_thread id": (
        lambda s: s.memory.save_thread({"id": LONE, "resource_id": "r"}),
        "thread.id",
    ),
    "save_thread title": (
        lambda s: s.memory.save_thread(Thread(id="t", resource_id="r", title=LONE)),
        "thread.title",
    ),
    "save_thread key": (
        lambda s: s.memory.save_thread({"id": "t", "resource_id": "r", LONE: 1}),
        "thread",
    ),
    "list_threads": (lambda s: s.memory.list_threads(LONE), "resource_id"),
    "update_thread id": (lambda s: s.memory.update_thread(LONE, title="x"), "thread_id"),
    "update_thread title": (lambda s: s.memory.update_thread("t", title=LONE), "title"),
    "update_thread key": (lambda s: s.memory.update_thread("t", metadata={LONE: 1}), "metadata"),
    "update_thread value": (
        lambda s: s.memory.update_thread("t", metadata={"k": [LONE]}),
        "metadata.k",
    ),
    "delete_thread": (lambda s: s.memory.delete_thread(LONE), "thread_id"),
    "save_messages": (lambda s: s.memory.save_messages([message(id=LONE)]), "messages[0].id"),
    "save_messages content": (
        lambda s: s.memory.save_messages([message(content={"k": LONE})]),
        "messages[0].content",
    ),
    "list_messages": (lambda s: s.memory.list_messages(LONE), "thread_id"),
    "list_messages include": (
        lambda s: s.memory.list_messages("t", include=[Include(message_id=LONE)]),
        "include[0].message_id",
    ),
    "get_messages": (lambda s: s.memory.get_messages(["a", LONE]), "ids"),
    "delete_messages": (lambda s: s.memory.delete_messages(["a", LONE]), "ids"),
    "count_messages": (lambda s: s.memory.count_messages([LONE]), "thread_ids"),
    "export_messages": (lambda s: s.memory.export_messages(LONE), "thread_id"),
    "get_resource": (lambda s: s.memory.get_resource(LONE), "resource_id"),
    "update_resource id": (lambda s: s.memory.update_resource(LONE), "resource_id"),
    "update_resource memory": (
        lambda s: s.memory.update_resource("r", working_memory=LONE),
        "working_memory",
    ),
    "persist_snapshot name": (
        lambda s: s.workflows.persist_snapshot(LONE, "run", 1),
        "workflow_name",
    ),
    "persist_snapshot status": (
        lambda s: s.workflows.persist_snapshot("wf", "run", 1, status=LONE),
        "status",
    ),
    "persist_snapshot value": (
        lambda s: s.workflows.persist_snapshot("wf", "run", [LONE]),
        "snapshot",
    ),
    "load_snapshot": (lambda s: s.workflows.load_snapshot("wf", LONE), "run_id"),
    "get_run": (lambda s: s.workflows.get_run(LONE), "run_id"),
    "list_runs": (lambda s: s.workflows.list_runs(resource_id=LONE), "resource_id"),
    "update_run": (lambda s: s.workflows.update_run("wf", "run", status=LONE), "status"),
    "delete_run": (lambda s: s.workflows.delete_run(LONE, "run"), "workflow_name"),
    "save_score": (
        lambda s: s.evals.save_score(Score(scorer_id=LONE, score=1.0)),
        "score.scorer_id",
    ),
    "get_score": (lambda s: s.evals.get_score(LONE), "score_id"),
    "list_scores entity": (lambda s: s.evals.list_scores(entity=("agent", LONE)), "entity"),
    "list_scores span": (lambda s: s.evals.list_scores(span=(LONE, "sp")), "span"),
    "delete_score": (lambda s: s.evals.delete_score(LONE), "score_id"),
    "list_scores metadata key": (lambda s: s.evals.list_scores(metadata={LONE: 1}), "metadata"),
    "list_scores metadata value": (
        lambda s: s.evals.list_scores(metadata={"k": LONE}),
        "metadata.k",
    ),
    "score_stats": (
        lambda s: s.evals.score_stats(LONE, from_date=T0, to_date=T0),
        "scorer_id",
    ),
    "save_spans": (lambda s: s.traces.save_spans([span(name=LONE)]), "spans[0].name"),
    "get_trace": (lambda s: s.traces.get_trace(LONE), "trace_id"),
    "list_traces name": (lambda s: s.traces.list_traces(name=LONE), "name"),
    "list_traces attribute key": (
        lambda s: s.traces.list_traces(attributes={LONE: 1}),
        "attributes",
    ),
    "list_traces attribute value": (
        lambda s: s.traces.list_traces(attributes={"k": LONE}),
        "attributes.k",
    ),
    "delete_traces": (lambda s: s.traces.delete_traces([LONE]), "trace_ids"),
}


@pytest.mark.parametrize(
    ("call", "field"),
    [pytest.param(*case, id=name) for name, case in SURROGATE_CALLS.items()],
)
async def test_lone_surrogates_are_refused(store: Storage, call: Call, field: str) -> None:
    error = await refused(store, call, field)
    assert "surrogate" in str(error)


async def test_the_id_check_refuses_a_lone_surrogate() -> None:
    async with Storage() as store:
        for text in ["\ud800", "\udfff", "x\udc80"]:
            with pytest.raises(ValidationError, match="surrogate"):
                await store.memory.get_thread(text)
        # Astral characters are text (a surrogate *pair* is not two lone surrogates).
        assert await store.memory.get_thread("\U0001f600") is None


# -- item 5: a string where a list is expected ----------------------------------------------

LIST_CALLS: dict[str, tuple[Call, str]] = {
    "get_messages": (lambda s: s.memory.get_messages("ab"), "ids"),
    "delete_messages": (lambda s: s.memory.delete_messages("ab"), "ids"),
    "delete_messages bytes": (lambda s: s.memory.delete_messages(b"ab"), "ids"),
    "count_messages": (lambda s: s.memory.count_messages("t"), "thread_ids"),
    "delete_traces": (lambda s: s.traces.delete_traces("tr"), "trace_ids"),
    "delete_traces bytes": (lambda s: s.traces.delete_traces(b"tr"), "trace_ids"),
    "save_messages one record": (lambda s: s.memory.save_messages(message()), "messages"),
    "save_messages a mapping": (
        lambda s: s.memory.save_messages(
            {"id": "m", "thread_id": "t", "role": "user", "content": ""}
        ),
        "messages",
    ),
    "save_messages str": (lambda s: s.memory.save_messages("ab"), "messages"),
    "restore_messages": (lambda s: s.memory.restore_messages(b"ab"), "messages"),
    "update_messages": (lambda s: s.memory.update_messages(MessagePatch(id="m")), "patches"),
    "list_messages include": (
        lambda s: s.memory.list_messages("t", include=Include(message_id="a")),
        "include",
    ),
    "list_messages include str": (lambda s: s.memory.list_messages("t", include="a"), "include"),
    "restore_threads": (lambda s: s.memory.restore_threads("t"), "threads"),
    "restore_resources": (lambda s: s.memory.restore_resources("r"), "resources"),
    "restore_runs": (lambda s: s.workflows.restore_runs("run"), "runs"),
    "restore_scores": (lambda s: s.evals.restore_scores("s"), "scores"),
    "save_spans": (lambda s: s.traces.save_spans(span()), "spans"),
    "get_messages int": (lambda s: s.memory.get_messages(7), "ids"),
    "get_messages None": (lambda s: s.memory.get_messages(None), "ids"),
}


@pytest.mark.parametrize(
    ("call", "field"), [pytest.param(*case, id=name) for name, case in LIST_CALLS.items()]
)
async def test_a_string_or_single_item_where_a_list_is_expected(
    store: Storage, call: Call, field: str
) -> None:
    await refused(store, call, field)


async def test_delete_messages_of_a_string_deletes_nothing(store: Storage) -> None:
    await refused(store, lambda s: s.memory.delete_messages("ab"), "ids")
    assert [m.id for m in await store.memory.get_messages(["a", "b"])] == ["a", "b"]
    # Lists, tuples, sets and generators are all lists of ids.
    assert await store.memory.count_messages(("t",)) == [3]
    assert await store.memory.delete_messages(i for i in ["a"]) == 1
    assert await store.memory.delete_messages({"b"}) == 1


# -- arguments with bounds Redis would refuse -----------------------------------------------

BOUND_CALLS: dict[str, tuple[Call, str]] = {
    "page": (lambda s: s.memory.list_threads("r", page=2**64), "page"),
    "per_page": (lambda s: s.workflows.list_runs(per_page=10**6), "per_page"),
    "include before": (
        lambda s: s.memory.list_messages("t", include=[Include(message_id="a", before=10**30)]),
        "include[0].before",
    ),
    "offset cursor": (lambda s: s.memory.export_threads(cursor="9" * 30), "cursor"),
    "stream cursor": (lambda s: s.traces.export_spans(cursor="99999999999999999999-0"), "cursor"),
    "expected_version": (
        lambda s: s.workflows.persist_snapshot("wf", "run", 1, expected_version=2**64),
        "expected_version",
    ),
    "restored version": (
        lambda s: s.workflows.restore_runs([run(version=2**64)]),
        "runs[0].version",
    ),
    "as_type": (lambda s: s.workflows.load_snapshot("wf", "run", as_type=[int]), None),
}


@pytest.mark.parametrize(
    ("call", "field"), [pytest.param(*case, id=name) for name, case in BOUND_CALLS.items()]
)
async def test_out_of_range_arguments_are_refused(
    store: Storage, call: Call, field: str | None
) -> None:
    await refused(store, call, field)


def test_msgspec_still_refuses_what_it_refused() -> None:
    """The checks add to msgspec's validation; they do not replace it."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"id": 1, "resource_id": "r"}, Thread)
