"""MessageHistory: pydantic-ai message history on every backend.

"Lossless" means: what :meth:`MessageHistory.load` returns is what pydantic-ai's own
``ModelMessagesTypeAdapter`` reads back from the JSON it writes, and it writes the very same
JSON again. Every part kind of the installed pydantic-ai is covered (a test fails when a new
version adds one that the history below lacks).
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from pydantic_ai import Agent
from pydantic_ai import messages as pm
from pydantic_ai.models.test import TestModel

from kvstore import Message, Storage, Thread
from kvstore.integrations.pydantic_ai import DEFAULT_RESOURCE_ID, MESSAGE_TYPE, MessageHistory
from tests.integrations.conftest import Backend

pytestmark = pytest.mark.anyio

Adapter = pm.ModelMessagesTypeAdapter
T = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n\x00\x01\xff not utf-8 \x00\xfe"


def _history() -> list[pm.ModelMessage]:
    """A conversation holding every part kind, with binary content and odd text."""
    first = pm.ModelRequest(
        parts=[
            pm.SystemPromptPart(content="Be terse.", timestamp=T),
            pm.UserPromptPart(
                content=[
                    'Describe these, please: ☃ "quoted" \\ \u0000',
                    pm.ImageUrl(url="https://example.com/cat.png"),
                    pm.BinaryContent(data=PNG, media_type="image/png"),
                    pm.AudioUrl(url="https://example.com/a.mp3"),
                    pm.DocumentUrl(url="https://example.com/d.pdf"),
                    pm.VideoUrl(url="https://example.com/v.mp4"),
                    pm.CachePoint(),
                ],
                timestamp=T,
            ),
            pm.SpeechPart(
                speaker="user",
                transcript="hello there",
                audio=pm.BinaryContent(data=b"RIFF\x00\xff", media_type="audio/wav"),
            ),
        ],
        timestamp=T,
        instructions="Answer in French.",
        run_id="run-1",
        metadata={"tenant": "acme", "n": [1, 2.5, None]},
    )
    answer = pm.ModelResponse(
        parts=[
            pm.ThinkingPart(content="They want a description.", signature="sig==", id="th_1"),
            pm.TextPart(content="Un chat. 😺"),
            pm.ToolCallPart(tool_name="get_weather", args={"city": "Zürich"}, tool_call_id="c1"),
            pm.ToolCallPart(tool_name="raw", args='{"a": 1}', tool_call_id="c2"),
            pm.NativeToolCallPart(
                tool_name="web_search", args={"q": "cats"}, tool_call_id="b1", provider_name="x"
            ),
            pm.NativeToolReturnPart(
                tool_name="web_search",
                content={"results": [{"url": "https://e.com", "score": 0.875}]},
                tool_call_id="b1",
                provider_name="x",
                timestamp=T,
            ),
            pm.FilePart(content=pm.BinaryContent(data=PNG, media_type="image/png")),
            pm.SpeechPart(speaker="assistant", transcript="bye"),
            pm.CompactionPart(content="summary so far", provider_name="x"),
        ],
        model_name="test-model",
        timestamp=T,
        provider_response_id="resp_1",
        finish_reason="tool_call",
    )
    results = pm.ModelRequest(
        parts=[
            pm.ToolReturnPart(
                tool_name="get_weather", content={"temp": 3.5}, tool_call_id="c1", timestamp=T
            ),
            pm.RetryFeedbackPart(
                content="raw: expected an object",
                retry=pm.RetryInfo(cause="validation_error", attempt=1, max_retries=3),
                timestamp=T,
            ),
            pm.ToolAvailabilityDeltaPart(),
            pm.CapabilityLoadDeltaPart(loaded=["search"]),
            pm.CompactionPart(content="compacted"),
        ],
        timestamp=T,
    )
    # Parts pydantic-ai records for itself, written as it writes them to JSON.
    (internal,) = Adapter.validate_python(
        [
            {
                "kind": "request",
                "parts": [
                    {"part_kind": "instruction-delta", "id": "agent", "content": "Be kind."},
                    {"part_kind": "instruction-baseline", "instructions": []},
                    {"part_kind": "model-settings-delta", "settings": {"temperature": 0.5}},
                    {
                        "part_kind": "retry-prompt",
                        "content": "try again",
                        "tool_name": "raw",
                        "tool_call_id": "c2",
                        "timestamp": T.isoformat(),
                    },
                ],
            }
        ]
    )
    done = pm.ModelResponse(parts=[pm.TextPart(content="")], timestamp=T)
    return [first, answer, results, internal, done]


def _part_kinds(alias: Any) -> set[str]:
    """Every ``part_kind`` of the part classes in one of pydantic-ai's part unions."""
    kinds = set()
    for member in typing.get_args(typing.get_args(alias)[0]):
        cls = typing.get_args(member)[0]
        cls = typing.get_args(cls)[0] if typing.get_args(cls) else cls
        for f in dataclasses.fields(cls):
            if f.name == "part_kind":
                kinds.add(f.default)
    return kinds


def _stored_kinds(messages: list[pm.ModelMessage]) -> set[str]:
    return {p.part_kind for m in messages for p in m.parts}


def _normalised(messages: list[pm.ModelMessage]) -> list[pm.ModelMessage]:
    """What pydantic-ai itself reads back from the JSON it writes for ``messages``."""
    return Adapter.validate_json(Adapter.dump_json(messages))


def test_the_history_covers_every_part_kind() -> None:
    history = _history()
    # retry-prompt is legacy: pydantic-ai turns it into tool-return or retry-feedback parts.
    wanted = (_part_kinds(pm.ModelRequestPart) | _part_kinds(pm.ModelResponsePart)) - {
        "retry-prompt"
    }
    assert wanted <= _stored_kinds(history)


async def test_every_part_round_trips_losslessly(store: Storage) -> None:
    history = _history()
    saved = MessageHistory(store, "t1")
    await saved.append(history)
    loaded = await MessageHistory(store, "t1").load()
    assert loaded == _normalised(history)
    assert Adapter.dump_json(loaded) == Adapter.dump_json(history)
    # And again: loading and saving what was loaded changes nothing.
    await MessageHistory(store, "t2").append(loaded)
    assert Adapter.dump_json(await MessageHistory(store, "t2").load()) == Adapter.dump_json(history)


async def test_append_adds_after_what_is_stored(store: Storage) -> None:
    history = _history()
    kept = MessageHistory(store, "t1")
    await kept.append(history[:2])
    await kept.append([])
    await kept.append(history[2:])
    assert Adapter.dump_json(await kept.load()) == Adapter.dump_json(history)
    assert Adapter.dump_json(await kept.load(last=2)) == Adapter.dump_json(history[-2:])
    assert await kept.load(last=0) == []


async def test_a_history_is_a_thread_with_one_message_per_model_message(store: Storage) -> None:
    await MessageHistory(store, "t1").append(_history())
    thread = await store.memory.get_thread("t1")
    assert thread is not None
    assert thread.resource_id == DEFAULT_RESOURCE_ID
    messages = (await store.memory.list_messages("t1")).items
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert {m.type for m in messages} == {MESSAGE_TYPE}
    # The content is the adapter's JSON for the message, readable by any viewer.
    assert messages[1].content["kind"] == "response"
    assert messages[1].content["parts"][1]["part_kind"] == "text"
    assert messages[1].content["parts"][1]["content"] == "Un chat. 😺"
    system = pm.ModelRequest(parts=[pm.SystemPromptPart(content="x")])
    await MessageHistory(store, "t1").append([system])
    assert (await store.memory.list_messages("t1", last=1)).items[0].role == "system"


async def test_clear_replace_and_an_empty_history(store: Storage) -> None:
    kept = MessageHistory(store, "t1", resource_id="alice")
    assert await kept.load() == []
    history = _history()
    await kept.append(history)
    await kept.replace(history[-1:])
    assert Adapter.dump_json(await kept.load()) == Adapter.dump_json(history[-1:])
    page = await store.memory.list_threads("alice")
    assert [t.id for t in page.items] == ["t1"]
    await kept.clear()
    assert await kept.load() == []
    assert await store.memory.get_thread("t1") is None


async def test_text_messages_saved_by_other_code_load_as_prompts(store: Storage) -> None:
    await store.memory.save_thread(Thread(id="t", resource_id="alice"))
    await store.memory.save_messages(
        [
            Message(id="m1", thread_id="t", role="system", content="Be brief.", created_at=T),
            Message(id="m2", thread_id="t", role="user", content="Hi", created_at=T),
            Message(id="m3", thread_id="t", role="assistant", content="Hello", created_at=T),
            Message(id="m4", thread_id="t", role="user", content={"format": 2}, created_at=T),
        ]
    )
    loaded = await MessageHistory(store, "t").load()
    assert [type(m).__name__ for m in loaded] == ["ModelRequest", "ModelRequest", "ModelResponse"]
    assert isinstance(loaded[0].parts[0], pm.SystemPromptPart)
    assert isinstance(loaded[1].parts[0], pm.UserPromptPart)
    assert loaded[1].parts[0].content == "Hi"
    assert isinstance(loaded[2].parts[0], pm.TextPart)
    assert loaded[2].parts[0].content == "Hello"


async def test_bad_arguments_are_refused(store: Storage) -> None:
    with pytest.raises(TypeError, match="Storage"):
        MessageHistory(cast("Any", None), "t")
    with pytest.raises(ValueError, match="thread_id"):
        MessageHistory(store, "")
    with pytest.raises(ValueError, match="resource_id"):
        MessageHistory(store, "t", resource_id="")
    with pytest.raises(TypeError, match="sequence"):
        await MessageHistory(store, "t").append(cast("Any", _history()[0]))


async def test_from_url_owns_its_store(backend: Backend) -> None:
    url = "memory://" if backend.url is None else backend.url
    async with MessageHistory.from_url(url, "t1") as history:
        await history.append(_history()[:1])
    with pytest.raises(RuntimeError, match="closed"):
        await history.load()
    if backend.url is not None:  # another client, as another process, reads it back
        async with MessageHistory.from_url(backend.url, "t1") as again:
            assert Adapter.dump_json(await again.load()) == Adapter.dump_json(_history()[:1])


# -- a run that continues from history loaded from kvstore ----------------------------------


def _agent() -> tuple[Agent[None, str], list[str]]:
    calls: list[str] = []
    agent = Agent(TestModel(), system_prompt="Be brief.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"snow in {city}"

    return agent, calls


async def test_a_run_continues_from_history_loaded_from_kvstore(backend: Backend) -> None:
    agent, calls = _agent()
    async with backend.store() as store:
        history = MessageHistory(store, "chat")
        first = await agent.run("What is the weather?", message_history=await history.load())
        await history.append(first.new_messages())
        assert calls == ["a"]  # TestModel calls every tool once
        stored = first.all_messages()
        if backend.url is None:
            loaded = await MessageHistory(store, "chat").load()
    if backend.url is not None:  # resume from a new client, as a new process would
        async with MessageHistory.from_url(backend.url, "chat") as resumed:
            loaded = await resumed.load()
            second = await agent.run("And tomorrow?", message_history=loaded)
            await resumed.append(second.new_messages())
            everything = await resumed.load()
    else:
        second = await agent.run("And tomorrow?", message_history=loaded)
        async with backend.store() as store:
            await MessageHistory(store, "chat").append(second.new_messages())
            everything = await MessageHistory(store, "chat").load()
    assert Adapter.dump_json(loaded) == Adapter.dump_json(stored)
    kinds = [[p.part_kind for p in m.parts] for m in loaded]
    assert kinds == [["system-prompt", "user-prompt"], ["tool-call"], ["tool-return"], ["text"]]
    # The second run started from the loaded history and added its own turn after it.
    continued = second.all_messages()
    assert continued[: len(loaded)] == loaded
    new = second.new_messages()
    assert isinstance(new[0], pm.ModelRequest)
    assert [p.part_kind for p in new[0].parts] == ["user-prompt"]  # no second system prompt
    assert second.output
    assert Adapter.dump_json(everything) == Adapter.dump_json(continued)
