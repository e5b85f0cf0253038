"""The OpenAI Agents SDK's ``Session``, kept in kvstore: :class:`KVStoreSession`.

A session is a thread of ``store.memory`` whose id is the session id, owned by the resource
``resource_id`` (default ``"openai-agents"``), so ``kvstore threads openai-agents`` and
``kvstore messages SESSION_ID`` show agent sessions like any other conversation. Each item
is one message:

* ``content`` is the item itself, exactly as the SDK gave it (a JSON object: messages, tool
  calls and their outputs, reasoning items, images, whatever the Responses API carries), so
  every item comes back unchanged;
* ``role`` is for viewers: the item's own role (``developer`` shown as ``system``), ``tool``
  for a tool's output (``*_output`` items), ``assistant`` for anything the model produced;
* ``type`` is ``"openai-agents-item"``, which marks the messages written by a session.

Messages that other code saves in the same thread come back as easy input messages,
``{"role": ..., "content": ...}``.

Items are ordered like the thread's messages: by the time :meth:`KVStoreSession.add_items`
stamps them (one stamp per call, never earlier than this process's previous stamp), and
items of one call in the order given. Sessions written from several machines need their
clocks in sync, as for any kvstore thread.

Costs (each a single round trip, one request on Upstash): ``add_items`` one script (a
session's first ``add_items`` creates the thread: two more); ``get_items(limit)`` one script
for up to 1,000 items, however long the session; ``pop_item`` one script
(:meth:`~kvstore.domains.memory.MemoryStore.pop_message`, atomic: concurrent callers never
get the same item); ``clear_session`` one script (it deletes the thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, cast

from kvstore._extras import require
from kvstore.integrations import _thread
from kvstore.records import Message, Role, Thread, new_id
from kvstore.storage import Storage

require("agents", "openai-agents")

from agents.memory.session_settings import (  # noqa: E402
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)

if TYPE_CHECKING:
    from types import TracebackType

    from agents.items import TResponseInputItem

__all__ = ["DEFAULT_RESOURCE_ID", "ITEM_TYPE", "KVStoreSession"]

#: The resource that owns session threads unless a session is given another.
DEFAULT_RESOURCE_ID = "openai-agents"
#: The ``type`` of the messages that hold session items.
ITEM_TYPE = "openai-agents-item"


def _role(item: Mapping[str, Any]) -> Role:
    role = item.get("role")
    if role in ("user", "assistant", "system"):
        return cast("Role", role)
    if role == "developer":
        return "system"
    kind = item.get("type")
    if isinstance(kind, str) and kind.endswith("_output"):
        return "tool"
    return "assistant"


def _item(message: Message) -> TResponseInputItem:
    if message.type == ITEM_TYPE:
        return cast("TResponseInputItem", message.content)
    return cast("TResponseInputItem", {"role": message.role, "content": message.content})


class KVStoreSession:
    """An OpenAI Agents SDK session kept in a kvstore :class:`~kvstore.Storage`.

    Implements the SDK's ``Session`` protocol; pass it to ``Runner.run(..., session=...)``::

        store = Storage.from_url("redis://localhost:6379/0")
        session = KVStoreSession("user-42", store)
        result = await Runner.run(agent, "Hello", session=session)

    Args:
        session_id: The session, which is also the id of its thread.
        store: Where the session lives. It stays the caller's to close, unless
            ``owns_store`` is true (as with :meth:`from_url`).
        resource_id: The resource that owns the session's thread.
        session_settings: The SDK's settings; ``limit`` is the default of
            :meth:`get_items`. Default: ``SessionSettings()``.
        owns_store: Close ``store`` in :meth:`close`.
    """

    session_id: str
    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        store: Storage,
        *,
        resource_id: str = DEFAULT_RESOURCE_ID,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        owns_store: bool = False,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        if not isinstance(resource_id, str) or not resource_id:
            raise ValueError("resource_id must be a non-empty string")
        if not isinstance(store, Storage):
            raise TypeError("store must be a kvstore Storage")
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self.resource_id = resource_id
        self._store = store
        self._owns_store = owns_store
        self._closed = False

    @classmethod
    def from_url(
        cls,
        session_id: str,
        url: str,
        *,
        namespace: str = "kv",
        resource_id: str = DEFAULT_RESOURCE_ID,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        **options: Any,
    ) -> KVStoreSession:
        """A session on a store of its own, made from ``url`` (any kvstore URL:
        ``memory:///path.aof``, ``redis://``, ``redis+cluster://``, ``upstash://``);
        :meth:`close` closes that store."""
        store = Storage.from_url(url, namespace=namespace, **options)
        return cls(
            session_id,
            store,
            resource_id=resource_id,
            session_settings=session_settings,
            owns_store=True,
        )

    @property
    def store(self) -> Storage:
        """The store the session lives in."""
        return self._store

    @property
    def thread_id(self) -> str:
        """The id of the session's thread in ``store.memory`` (the session id)."""
        return self.session_id

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("KVStoreSession is closed")

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first.

        Args:
            limit: Return only the newest ``limit`` items (still oldest first); ``None``
                uses ``session_settings.limit``, and when that is ``None`` too, every
                item. A limit of 0 or less returns no item.
        """
        self._check_open()
        wanted = resolve_session_limit(limit, self.session_settings)
        messages = await _thread.newest(self._store.memory, self.session_id, wanted)
        return [_item(m) for m in messages]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items to the session, in the order given (one round trip)."""
        self._check_open()
        if not items:
            return
        stamp = _thread.stamp()
        messages = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise TypeError(f"items[{i}] must be a mapping, got {type(item).__name__}")
            messages.append(
                Message(
                    id=new_id(),
                    thread_id=self.session_id,
                    role=_role(item),
                    content=item,
                    resource_id=self.resource_id,
                    type=ITEM_TYPE,
                    created_at=stamp,
                )
            )
        thread = Thread(
            id=self.session_id, resource_id=self.resource_id, metadata={"source": "openai-agents"}
        )
        await _thread.append(self._store.memory, thread, messages)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove the newest item and return it (None when the session is empty).

        Atomic: concurrent callers, in any process, never get the same item.
        """
        self._check_open()
        message = await self._store.memory.pop_message(self.session_id)
        return None if message is None else _item(message)

    async def clear_session(self) -> None:
        """Remove every item of the session (its thread is deleted)."""
        self._check_open()
        await self._store.memory.delete_thread(self.session_id)

    async def close(self) -> None:
        """Close the store if the session owns it; the session is unusable afterwards.

        With a store passed in without ``owns_store``, this does nothing.
        """
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
        return f"KVStoreSession({self.session_id!r}, {self._store!r})"
