"""pydantic-ai message history kept in kvstore: :class:`MessageHistory`.

A history is a thread of ``store.memory`` (owned by ``resource_id``, default
``"pydantic-ai"``), one kvstore message per ``ModelMessage``:

* ``content`` is the message as pydantic-ai's ``ModelMessagesTypeAdapter`` writes it to JSON
  (a JSON object: its parts, timestamps, usage; bytes as base64), so loading gives back
  exactly what the adapter would: every part type (system and user prompts with images,
  audio, documents and binary content, tool calls and returns, retries, thinking, files,
  speech, compaction...) round-trips losslessly;
* ``role`` is for viewers: ``assistant`` for a model response; for a request, ``user`` when it
  carries a user prompt, else ``tool`` when it carries tool results or retries, else
  ``system`` when it carries system prompts or instructions, else ``user``;
* ``type`` is ``"pydantic-ai-message"``.

Messages that other code saves in the thread load as a user prompt (roles ``user`` and
``tool``), a system prompt (``system``) or a text response (``assistant``) when their
content is a string; others are skipped.

Typical use, with ``result.new_messages()`` appended after each run::

    history = MessageHistory(store, "thread-1")
    result = await agent.run("And tomorrow?", message_history=await history.load())
    await history.append(result.new_messages())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import msgspec

from kvstore._extras import require
from kvstore.integrations import _thread
from kvstore.records import Message, Role, Thread, new_id
from kvstore.storage import Storage

require("pydantic_ai", "pydantic-ai")

from pydantic_ai.messages import (  # noqa: E402
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["DEFAULT_RESOURCE_ID", "MESSAGE_TYPE", "MessageHistory"]

#: The resource that owns history threads unless a history is given another.
DEFAULT_RESOURCE_ID = "pydantic-ai"
#: The ``type`` of the kvstore messages that hold pydantic-ai messages.
MESSAGE_TYPE = "pydantic-ai-message"

_TOOL_PARTS = frozenset({"tool-return", "retry-prompt", "retry-feedback"})
_SYSTEM_PARTS = frozenset({"system-prompt", "instruction-delta", "instruction-baseline"})


def _role(message: ModelMessage) -> Role:
    if isinstance(message, ModelResponse):
        return "assistant"
    kinds = {getattr(part, "part_kind", None) for part in message.parts}
    if "user-prompt" in kinds:
        return "user"
    if kinds & _TOOL_PARTS:
        return "tool"
    if kinds & _SYSTEM_PARTS:
        return "system"
    return "user"


def _as_json(message: Message) -> Any:
    """The adapter's JSON form of a stored message, or None to skip it."""
    if message.type == MESSAGE_TYPE:
        return message.content
    text = message.content
    if not isinstance(text, str):
        return None
    if message.role == "assistant":
        return {"kind": "response", "parts": [{"part_kind": "text", "content": text}]}
    kind = "system-prompt" if message.role == "system" else "user-prompt"
    return {"kind": "request", "parts": [{"part_kind": kind, "content": text}]}


class MessageHistory:
    """A pydantic-ai conversation's messages, kept as a thread of a kvstore store.

    Args:
        store: Where the history lives. It stays the caller's to close, unless
            ``owns_store`` is true (as with :meth:`from_url`).
        thread_id: The thread that holds the history.
        resource_id: The resource that owns the thread.
        owns_store: Close ``store`` in :meth:`close`.
    """

    __slots__ = ("_closed", "_owns_store", "_store", "resource_id", "thread_id")

    def __init__(
        self,
        store: Storage,
        thread_id: str,
        *,
        resource_id: str = DEFAULT_RESOURCE_ID,
        owns_store: bool = False,
    ) -> None:
        if not isinstance(store, Storage):
            raise TypeError("store must be a kvstore Storage")
        if not isinstance(thread_id, str) or not thread_id:
            raise ValueError("thread_id must be a non-empty string")
        if not isinstance(resource_id, str) or not resource_id:
            raise ValueError("resource_id must be a non-empty string")
        self.thread_id = thread_id
        self.resource_id = resource_id
        self._store = store
        self._owns_store = owns_store
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        thread_id: str,
        *,
        namespace: str = "kv",
        resource_id: str = DEFAULT_RESOURCE_ID,
        **options: Any,
    ) -> MessageHistory:
        """A history on a store of its own, made from ``url`` (any kvstore URL);
        :meth:`close` closes that store."""
        store = Storage.from_url(url, namespace=namespace, **options)
        return cls(store, thread_id, resource_id=resource_id, owns_store=True)

    @property
    def store(self) -> Storage:
        """The store the history lives in."""
        return self._store

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MessageHistory is closed")

    async def load(self, *, last: int | None = None) -> list[ModelMessage]:
        """The history's messages, oldest first, ready for ``message_history=``.

        Args:
            last: Only the newest ``last`` messages (a count of 0 or less gives none).
                Mind that a model wants each tool result after the call that asked for it.

        One round trip for up to 1,000 messages, however long the history is.
        """
        self._check_open()
        found = await _thread.newest(self._store.memory, self.thread_id, last)
        values = [value for m in found if (value := _as_json(m)) is not None]
        if not values:
            return []
        return ModelMessagesTypeAdapter.validate_json(msgspec.json.encode(values))

    async def append(self, messages: Sequence[ModelMessage]) -> None:
        """Add messages after the ones stored, in the order given (one round trip).

        Pass ``result.new_messages()`` after each run.
        """
        self._check_open()
        if isinstance(messages, ModelRequest | ModelResponse) or not isinstance(messages, Sequence):
            raise TypeError("messages must be a sequence of ModelMessage")
        if not messages:
            return
        values = msgspec.json.decode(ModelMessagesTypeAdapter.dump_json(list(messages)))
        stamp = _thread.stamp()
        records = [
            Message(
                id=new_id(),
                thread_id=self.thread_id,
                role=_role(message),
                content=value,
                resource_id=self.resource_id,
                type=MESSAGE_TYPE,
                created_at=stamp,
            )
            for message, value in zip(messages, values, strict=True)
        ]
        thread = Thread(
            id=self.thread_id, resource_id=self.resource_id, metadata={"source": "pydantic-ai"}
        )
        await _thread.append(self._store.memory, thread, records)

    async def replace(self, messages: Sequence[ModelMessage]) -> None:
        """Make ``messages`` the whole history (after summarising it, say).

        Two steps, :meth:`clear` then :meth:`append`: a reader in between sees an empty
        history.
        """
        await self.clear()
        await self.append(messages)

    async def clear(self) -> None:
        """Delete the history (its thread and every message)."""
        self._check_open()
        await self._store.memory.delete_thread(self.thread_id)

    async def close(self) -> None:
        """Close the store if the history owns it; the history is unusable afterwards."""
        if not self._owns_store:
            return
        self._closed = True
        await self._store.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"MessageHistory({self._store!r}, {self.thread_id!r})"
