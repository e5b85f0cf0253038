"""KVStoreSession: the OpenAI Agents SDK's Session protocol on every backend.

The behaviours of the SDK's own session tests (its SQLite and Redis session tests), in our
words, plus what kvstore adds: exact round trips of every item type, an atomic pop under
concurrency, sessions shown as threads, and a conversation kept and resumed by ``Runner``
with a scripted model.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, cast

import anyio
import pytest
from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
from agents.memory import Session, SessionSettings

from kvstore import Message, Storage, Thread
from kvstore.integrations.openai_agents import DEFAULT_RESOURCE_ID, ITEM_TYPE, KVStoreSession
from tests.integrations.agents_fakes import ScriptedModel, function_call, reasoning, text_message
from tests.integrations.conftest import Backend

pytestmark = pytest.mark.anyio

# Tracing would try to export to OpenAI's servers; these tests never use the network.
set_tracing_disabled(True)


def said(*texts: str, role: str = "user") -> list[Any]:
    return [{"role": role, "content": t} for t in texts]


def contents(items: list[Any]) -> list[Any]:
    return [item.get("content") for item in items]


# Every kind of item a conversation carries, as the SDK stores them (JSON objects).
EVERY_ITEM_TYPE: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "developer", "content": "Use metric units."},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is in this picture?"},
            {
                "type": "input_image",
                "detail": "high",
                "image_url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ",
            },
            {"type": "input_file", "file_id": "file-abc", "filename": "notes.pdf"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "The user wants a description."}],
        "content": [{"type": "reasoning_text", "text": "Look at the pixels."}],
        "encrypted_content": "gAAAAABo-opaque==",
        "status": None,
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Zürich", "units": "metric"}',
        "status": "completed",
    },
    {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"temperature": 3.5, "conditions": ["snow", "wind"], "ok": true}',
    },
    {
        "type": "computer_call",
        "id": "cu_1",
        "call_id": "call_2",
        "action": {"type": "click", "button": "left", "x": 10, "y": 20},
        "pending_safety_checks": [],
        "status": "completed",
    },
    {
        "type": "computer_call_output",
        "call_id": "call_2",
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"},
        "acknowledged_safety_checks": [],
    },
    {
        "type": "image_generation_call",
        "id": "ig_1",
        "result": "iVBORw0KGgoAAAANSUhEUg==",
        "status": "completed",
    },
    {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": None},
    {
        "type": "file_search_call",
        "id": "fs_1",
        "queries": ["refund policy"],
        "status": "completed",
        "results": [{"file_id": "file-1", "score": 0.875, "text": "30 days", "attributes": {}}],
    },
    {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "docs",
        "name": "search",
        "arguments": "{}",
        "output": "found",
        "error": None,
    },
    {"type": "item_reference", "id": "msg_0"},
    {
        "type": "message",
        "id": "msg_2",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "A cat, 3.5°C outside. 😺",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url": "https://example.com/?q=a&b=c",
                        "title": "Example",
                        "start_index": 0,
                        "end_index": 5,
                    }
                ],
                "logprobs": [],
            },
            {"type": "refusal", "refusal": ""},
        ],
    },
    {"role": "user", "content": 'O\'Reilly; DROP TABLE x;-- "quoted" \\n\t \u0000 ☃'},
    {"role": "assistant", "content": "", "extra": {"nested": [1, 2.5, -3, None, True, {}]}},
]


# -- the Session protocol -------------------------------------------------------------------


async def test_the_session_satisfies_the_sdk_protocol(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    assert isinstance(session, Session)
    assert session.session_id == "s1"
    assert isinstance(session.session_settings, SessionSettings)
    assert session.session_settings.limit is None


async def test_add_get_pop_clear(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    await session.add_items(said("Hello") + said("Hi there!", role="assistant"))
    got = await session.get_items()
    assert got == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
    ]
    assert await session.pop_item() == {"role": "assistant", "content": "Hi there!"}
    assert contents(await session.get_items()) == ["Hello"]
    await session.clear_session()
    assert await session.get_items() == []


async def test_get_items_limit_returns_the_newest_oldest_first(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    await session.add_items(said("1", "2", "3", "4", "5", "6"))
    assert contents(await session.get_items()) == ["1", "2", "3", "4", "5", "6"]
    assert contents(await session.get_items(limit=2)) == ["5", "6"]
    assert contents(await session.get_items(limit=4)) == ["3", "4", "5", "6"]
    assert contents(await session.get_items(limit=10)) == ["1", "2", "3", "4", "5", "6"]
    assert await session.get_items(limit=0) == []
    assert await session.get_items(limit=-1) == []


async def test_session_settings_limit_is_the_default(store: Storage) -> None:
    session = KVStoreSession("s1", store, session_settings=SessionSettings(limit=3))
    assert session.session_settings is not None
    assert session.session_settings.limit == 3
    await session.add_items(said(*(f"m{i}" for i in range(10))))
    assert contents(await session.get_items()) == ["m7", "m8", "m9"]
    assert contents(await session.get_items(limit=2)) == ["m8", "m9"]  # explicit wins
    from_dict = KVStoreSession("s1", store, session_settings={"limit": 1})
    assert contents(await from_dict.get_items()) == ["m9"]


async def test_get_items_beyond_one_page(store: Storage) -> None:
    session = KVStoreSession("long", store)
    await session.add_items(said(*(f"m{i}" for i in range(1500))))
    everything = contents(await session.get_items())
    assert everything == [f"m{i}" for i in range(1500)]
    assert contents(await session.get_items(limit=1200)) == [f"m{i}" for i in range(300, 1500)]
    assert contents(await session.get_items(limit=999)) == [f"m{i}" for i in range(501, 1500)]


async def test_pop_item_newest_first_then_none(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    assert await session.pop_item() is None
    await session.add_items(said("Hello", "How are you?") + said("Fine", role="assistant"))
    assert contents([await session.pop_item() for _ in range(3)]) == [
        "Fine",
        "How are you?",
        "Hello",
    ]
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_sessions_are_isolated(store: Storage) -> None:
    one, two = KVStoreSession("s1", store), KVStoreSession("s2", store)
    await one.add_items(said("session 1"))
    await two.add_items(said("session 2 a", "session 2 b"))
    assert contents([await two.pop_item()]) == ["session 2 b"]
    assert contents(await one.get_items()) == ["session 1"]
    assert contents(await two.get_items()) == ["session 2 a"]
    await one.clear_session()
    assert contents(await two.get_items()) == ["session 2 a"]


async def test_namespaces_isolate_sessions_with_the_same_id(store: Storage) -> None:
    other = Storage(store.driver, namespace="app2")
    await KVStoreSession("same", store).add_items(said("app1"))
    await KVStoreSession("same", other).add_items(said("app2"))
    assert contents(await KVStoreSession("same", store).get_items()) == ["app1"]
    assert contents(await KVStoreSession("same", other).get_items()) == ["app2"]


async def test_adding_no_items_changes_nothing(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    await session.add_items([])
    assert await session.get_items() == []
    assert await store.memory.get_thread("s1") is None


async def test_text_round_trips_unchanged(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    texts = [
        "こんにちは",
        "😊👍",
        "Привет",
        "O'Reilly",
        '{"nested": "json"}',
        'Quote: "Hello world"',
        "Line1\nLine2\tTabbed",
        "Robert'); DROP TABLE students;--",
        "\\n\\t\\r Special escapes",
    ]
    await session.add_items(said(*texts))
    assert contents(await session.get_items()) == texts


async def test_every_item_type_round_trips_exactly(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    given = copy.deepcopy(EVERY_ITEM_TYPE)
    await session.add_items(cast("list[Any]", given))
    assert given == EVERY_ITEM_TYPE  # not changed in place
    assert await session.get_items() == EVERY_ITEM_TYPE
    assert await session.get_items(limit=3) == EVERY_ITEM_TYPE[-3:]
    assert await session.pop_item() == EVERY_ITEM_TYPE[-1]
    reopened = KVStoreSession("s1", store)
    assert await reopened.get_items() == EVERY_ITEM_TYPE[:-1]


async def test_concurrent_add_items_keep_every_item_and_each_call_in_order(
    store: Storage,
) -> None:
    session = KVStoreSession("s1", store)

    async def add(start: int) -> None:
        await session.add_items(said(*(f"m{start + i}" for i in range(5))))

    async with anyio.create_task_group() as tg:
        for start in (0, 5, 10):
            tg.start_soon(add, start)
    got = contents(await session.get_items())
    assert sorted(got, key=lambda c: int(c[1:])) == [f"m{i}" for i in range(15)]
    for start in (0, 5, 10):  # each call's items stay together, in order
        first = got.index(f"m{start}")
        assert got[first : first + 5] == [f"m{start + i}" for i in range(5)]


async def test_pop_item_is_atomic_under_concurrent_callers(backend: Backend) -> None:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(backend.store())
        # Over a server, the second store is another client; the memory driver and the AOF
        # file have one store at a time, which the sessions then share.
        second = first
        if backend.name in ("redis", "cluster", "upstash"):
            second = await stack.enter_async_context(backend.store())
        writer = KVStoreSession("shared", first)
        await writer.add_items(said(*(f"m{i}" for i in range(40))))
        sessions = [KVStoreSession("shared", s) for s in (first, second, first, second)]
        popped: list[Any] = []

        async def pop(session: KVStoreSession) -> None:
            for _ in range(15):
                popped.append(await session.pop_item())

        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(pop, session)
        got = [item["content"] for item in popped if item is not None]
        assert sorted(got, key=lambda c: int(c[1:])) == [f"m{i}" for i in range(40)]
        assert popped.count(None) == 20
        assert await writer.get_items() == []


async def test_clear_then_add_starts_afresh(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    await session.add_items(said("old"))
    await session.clear_session()
    await session.clear_session()  # clearing an empty session is harmless
    await session.add_items(said("new"))
    assert contents(await session.get_items()) == ["new"]


# -- sessions are threads -------------------------------------------------------------------


async def test_a_session_is_a_thread_of_its_resource(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    await session.add_items(cast("list[Any]", EVERY_ITEM_TYPE[:6]))
    thread = await store.memory.get_thread("s1")
    assert thread is not None
    assert thread.resource_id == DEFAULT_RESOURCE_ID
    page = await store.memory.list_threads(DEFAULT_RESOURCE_ID)
    assert [t.id for t in page.items] == ["s1"]
    messages = (await store.memory.list_messages("s1")).items
    assert [m.role for m in messages] == [
        "system",
        "system",
        "user",
        "assistant",
        "assistant",
        "tool",
    ]
    assert {m.type for m in messages} == {ITEM_TYPE}
    assert {m.resource_id for m in messages} == {DEFAULT_RESOURCE_ID}
    assert [m.content for m in messages] == EVERY_ITEM_TYPE[:6]


async def test_resource_id_can_be_chosen(store: Storage) -> None:
    session = KVStoreSession("s1", store, resource_id="alice")
    assert session.thread_id == "s1"
    await session.add_items(said("hi"))
    page = await store.memory.list_threads("alice")
    assert [t.id for t in page.items] == ["s1"]


async def test_messages_saved_by_other_code_come_back_as_easy_messages(store: Storage) -> None:
    await store.memory.save_thread(Thread(id="t", resource_id="alice"))
    await store.memory.save_messages(
        [Message(id="m1", thread_id="t", role="user", content="typed elsewhere")]
    )
    session = KVStoreSession("t", store, resource_id="alice")
    await session.add_items(said("from the session", role="assistant"))
    assert await session.get_items() == [
        {"role": "user", "content": "typed elsewhere"},
        {"role": "assistant", "content": "from the session"},
    ]


async def test_a_store_passed_in_stays_open(store: Storage) -> None:
    session = KVStoreSession("s1", store)
    await session.add_items(said("kept"))
    await session.close()
    assert contents(await session.get_items()) == ["kept"]
    assert await store.memory.get_thread("s1") is not None


async def test_from_url_owns_its_store(backend: Backend) -> None:
    url = "memory://" if backend.url is None else backend.url
    async with KVStoreSession.from_url("s1", url) as session:
        await session.add_items(said("persisted"))
        assert contents(await session.get_items()) == ["persisted"]
    with pytest.raises(RuntimeError, match="closed"):
        await session.get_items()
    if backend.url is not None:  # a new client (a new process) sees the items
        async with KVStoreSession.from_url("s1", backend.url) as again:
            assert contents(await again.get_items()) == ["persisted"]


async def test_bad_arguments_are_refused(store: Storage) -> None:
    with pytest.raises(ValueError, match="session_id"):
        KVStoreSession("", store)
    with pytest.raises(ValueError, match="resource_id"):
        KVStoreSession("s", store, resource_id="")
    with pytest.raises(TypeError, match="Storage"):
        KVStoreSession("s", cast("Any", object()))
    with pytest.raises(TypeError, match=r"items\[0\]"):
        await KVStoreSession("s", store).add_items(cast("Any", ["not a mapping"]))


# -- Runner with a scripted model -----------------------------------------------------------


async def test_runner_keeps_and_resumes_a_conversation(backend: Backend) -> None:
    model = ScriptedModel().then(text_message("San Francisco"))
    agent = Agent(name="guide", model=model)
    async with backend.store() as store:
        session = KVStoreSession("trip", store)
        first = await Runner.run(agent, "What city is the Golden Gate Bridge in?", session=session)
        assert first.final_output == "San Francisco"
        if backend.url is None:
            model.then(text_message("California"))
            second = await Runner.run(
                agent, "What state is it in?", session=KVStoreSession("trip", store)
            )
    if backend.url is not None:  # resume from a new client, as a new process would
        model.then(text_message("California"))
        async with KVStoreSession.from_url("trip", backend.url) as resumed:
            second = await Runner.run(agent, "What state is it in?", session=resumed)
            items = await resumed.get_items()
    else:
        items = await KVStoreSession("trip", store).get_items()
    assert second.final_output == "California"
    seen = model.inputs[-1]
    assert [i.get("content") for i in seen if i.get("role") == "user"] == [
        "What city is the Golden Gate Bridge in?",
        "What state is it in?",
    ]
    assert len(seen) == 3  # the first turn's question and answer, then the new question
    assert len(items) == 4


async def test_runner_resumes_with_tool_calls_and_reasoning_exactly(store: Storage) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"3.5°C and snow in {city}"

    model = ScriptedModel(
        [reasoning("Need the weather."), function_call("get_weather", '{"city": "Zürich"}', "c1")],
        [text_message("It is 3.5°C and snowing.")],
    )
    agent = Agent(name="weather", model=model, tools=[get_weather])
    result = await Runner.run(agent, "Weather in Zürich?", session=KVStoreSession("w", store))
    assert result.final_output == "It is 3.5°C and snowing."
    assert calls == ["Zürich"]
    stored = await KVStoreSession("w", store).get_items()
    assert [i.get("type", "message") for i in stored] == [
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert stored[3]["output"] == "3.5°C and snow in Zürich"

    model.then(text_message("Still snowing."))
    await Runner.run(agent, "And now?", session=KVStoreSession("w", store))
    resumed_input = model.inputs[-1]
    assert resumed_input[: len(stored)] == stored  # the model sees history exactly as stored
    assert resumed_input[-1] == {"role": "user", "content": "And now?"}


async def test_run_config_session_settings_limit_the_history(store: Storage) -> None:
    session = KVStoreSession("s", store, session_settings=SessionSettings(limit=100))
    await session.add_items(said(*(f"turn {i}" for i in range(10))))
    model = ScriptedModel([text_message("Got it")])
    await Runner.run(
        Agent(name="a", model=model),
        "New question",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    assert contents(model.inputs[-1]) == ["turn 8", "turn 9", "New question"]


async def test_sessions_keep_runs_apart(store: Storage) -> None:
    model = ScriptedModel([text_message("I like cats")], [text_message("I like dogs")])
    agent = Agent(name="a", model=model)
    await Runner.run(agent, "I like cats", session=KVStoreSession("cats", store))
    await Runner.run(agent, "I like dogs", session=KVStoreSession("dogs", store))
    model.then(text_message("You said cats"))
    await Runner.run(agent, "What do I like?", session=KVStoreSession("cats", store))
    assert "dogs" not in str(model.inputs[-1])
    assert "I like cats" in str(model.inputs[-1])
