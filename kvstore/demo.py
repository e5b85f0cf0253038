"""An agent-like session on kvstore, for newcomers: ``python -m kvstore demo``.

Two users talk to an agent over several threads; the agent calls a tool, keeps working
memory about each user, and later recalls the last turns with context around an earlier
message. Everything it stores and reads is printed.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from kvstore._local import URL_ENV, default_url, describe_url
from kvstore.records import Include, Message, Thread
from kvstore.storage import Storage

if TYPE_CHECKING:
    from kvstore.records import Page

__all__ = ["content_text", "main", "run_demo"]

_START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return _START + timedelta(minutes=minutes)


def content_text(content: Any) -> str:
    """A one-line rendering of any message content shape (text, Mastra v2, OpenAI)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and content.get("format") == 2:
        parts = []
        for part in content.get("parts", []):
            if part.get("type") == "text":
                parts.append(part["text"])
            elif part.get("type") == "tool-invocation":
                call = part["toolInvocation"]
                parts.append(f"[tool {call['toolName']}({call['args']}) -> {call.get('result')}]")
            elif part.get("type") == "reasoning":
                parts.append(f"[thinking: {part.get('reasoning', '')}]")
        return " ".join(parts)
    if isinstance(content, dict) and content.get("tool_calls"):
        calls = ", ".join(
            f"{c['function']['name']}({c['function']['arguments']})" for c in content["tool_calls"]
        )
        return f"[calls {calls}]"
    if isinstance(content, dict) and content.get("role") == "tool":
        return f"[result of {content.get('tool_call_id')}: {content.get('content')}]"
    return repr(content)


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def section(self, title: str) -> None:
        print(f"\n== {title} ==", file=self.out)

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def messages(self, page: Page[Message]) -> None:
        for m in page.items:
            stamp = m.created_at.strftime("%H:%M")
            self.line(f"  {stamp} [{m.thread_id}] {m.role:>9}: {content_text(m.content)}")
        self.line(f"  ({len(page.items)} shown, {page.total} in range, more: {page.has_more})")


def _conversation(thread_id: str, resource_id: str, start: float) -> list[Message]:
    """A weather conversation with one tool call, in OpenAI's and Mastra's shapes."""
    return [
        Message(
            id=f"{thread_id}-1",
            thread_id=thread_id,
            resource_id=resource_id,
            role="user",
            content="What's the weather in Zürich? I'm cycling to work.",
            created_at=_at(start),
        ),
        Message(
            id=f"{thread_id}-2",
            thread_id=thread_id,
            resource_id=resource_id,
            role="assistant",
            type="openai",
            content={
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
                    }
                ],
            },
            created_at=_at(start + 0.1),
        ),
        Message(
            id=f"{thread_id}-3",
            thread_id=thread_id,
            resource_id=resource_id,
            role="tool",
            type="openai",
            content={
                "role": "tool",
                "tool_call_id": "call_1",
                "content": '{"temp_c": 3, "rain": 0.8}',
            },
            created_at=_at(start + 0.2),
        ),
        Message(
            id=f"{thread_id}-4",
            thread_id=thread_id,
            resource_id=resource_id,
            role="assistant",
            content={
                "format": 2,
                "parts": [
                    {"type": "reasoning", "reasoning": "3°C and rain: suggest a rain jacket."},
                    {
                        "type": "tool-invocation",
                        "toolInvocation": {
                            "state": "result",
                            "toolCallId": "call_1",
                            "toolName": "get_weather",
                            "args": {"city": "Zürich"},
                            "result": {"temp_c": 3, "rain": 0.8},
                        },
                    },
                    {"type": "text", "text": "3°C with a good chance of rain: take a rain jacket."},
                ],
            },
            created_at=_at(start + 0.3),
        ),
    ]


async def run_demo(store: Storage, out: TextIO = sys.stdout) -> None:
    """Play the demo session against ``store`` and print what happens to ``out``."""
    p = _Printer(out)
    memory = store.memory
    p.line(f"kvstore demo on {store!r}")

    p.section("Threads for two resources")
    threads = [
        Thread(id="alice-weather", resource_id="alice", title="Weather", created_at=_at(0)),
        Thread(id="alice-travel", resource_id="alice", title="Trip to Lisbon", created_at=_at(5)),
        Thread(id="alice-recipes", resource_id="alice", title="Soup recipes", created_at=_at(10)),
        Thread(id="bob-weather", resource_id="bob", title="Weather", created_at=_at(2)),
    ]
    for thread in threads:
        saved = await memory.save_thread(thread)
        p.line(f"  saved thread {saved.id!r} of {saved.resource_id!r}: {saved.title}")

    p.section("A conversation with a tool call")
    conversation = _conversation("alice-weather", "alice", 1)
    await memory.save_messages(conversation)
    await memory.save_messages(_conversation("bob-weather", "bob", 3))
    chat = [
        ("user", "Book me a train to Lisbon next Friday."),
        ("assistant", "Done: the 08:12 from Zürich HB, seat 42, window."),
        ("user", "And a vegetarian restaurant near the hotel?"),
        ("assistant", "Try 'Ao 26 Vegan Food Project', 5 minutes' walk away."),
    ]
    await memory.save_messages(
        Message(
            id=f"alice-travel-{i}",
            thread_id="alice-travel",
            resource_id="alice",
            role=role,  # type: ignore[arg-type]
            content=text,
            created_at=_at(6 + i),
        )
        for i, (role, text) in enumerate(chat)
    )
    p.line(f"  saved {len(conversation)} + {len(conversation)} + {len(chat)} messages")

    p.section("Working memory")
    await memory.update_resource(
        "alice", working_memory="# Alice\n- cycles to work\n- vegetarian", metadata={"tz": "CET"}
    )
    resource = await memory.update_resource("alice", metadata={"language": "de"})
    p.line(f"  alice: {resource.working_memory!r}")
    p.line(f"  alice metadata (merged): {resource.metadata}")

    p.section("Alice's threads, most recently active first")
    listing = await memory.list_threads("alice", order_by="updated_at")
    for thread in listing.items:
        p.line(f"  {thread.id:<14} {thread.title!r:<18} updated {thread.updated_at:%H:%M:%S}")
    p.line(f"  ({listing.total} threads)")

    p.section("Recall: the last 2 messages of the travel thread")
    p.messages(await memory.list_messages("alice-travel", last=2))

    p.section("Recall with context: last 2, plus the tool call before the weather answer")
    p.messages(
        await memory.list_messages(
            "alice-travel",
            last=2,
            include=[Include(message_id="alice-weather-4", before=2)],
        )
    )

    p.section("Tidy up: Alice deletes the recipes thread")
    await memory.delete_thread("alice-recipes")
    p.line(f"  alice now has {(await memory.list_threads('alice')).total} threads")


async def _main(url: str) -> None:
    async with Storage.from_url(url) as store:
        await run_demo(store)


def main() -> None:
    """Run the demo on ``$KVSTORE_URL``, by default the local file (see :mod:`kvstore._local`).

    The command line's ``kvstore demo`` does the same with richer output around it.
    """
    url = os.environ.get(URL_ENV) or default_url()
    print(f"kvstore demo: using {describe_url(url)}", file=sys.stderr)
    anyio.run(_main, url)
