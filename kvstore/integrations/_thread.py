"""What the integrations that keep a conversation as a thread share.

Only the public API of :class:`~kvstore.domains.memory.MemoryStore` is used here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvstore.errors import NotFoundError
from kvstore.records import Message, Thread, utc_now

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from kvstore.domains.memory import MemoryStore

__all__ = ["PAGE", "append", "newest", "stamp"]

#: The most messages one ``list_messages`` call returns.
PAGE = 1000
# append() retries this often when the thread disappears (it was cleared) meanwhile.
_ATTEMPTS = 3

_last_stamp: datetime | None = None


def stamp() -> datetime:
    """Now, but never earlier than the previous stamp of this process.

    Messages are ordered by ``created_at``, so a clock that steps back must not put new
    messages before older ones; equal stamps keep the order in which they were saved.
    """
    global _last_stamp  # noqa: PLW0603 - one clock for every conversation of the process
    now = utc_now()
    if _last_stamp is not None and now < _last_stamp:
        now = _last_stamp
    _last_stamp = now
    return now


async def append(memory: MemoryStore, thread: Thread, messages: Sequence[Message]) -> None:
    """Save ``messages`` into ``thread``, creating the thread first if it does not exist.

    One round trip once the thread exists (the first call makes two more).
    """
    for attempt in range(_ATTEMPTS):
        try:
            await memory.save_messages(messages)
            return
        except NotFoundError:
            if attempt == _ATTEMPTS - 1:
                raise
        await memory.save_thread(thread)


async def newest(memory: MemoryStore, thread_id: str, limit: int | None) -> list[Message]:
    """The newest ``limit`` messages of a thread (every message for None), oldest first.

    One round trip up to :data:`PAGE` messages, then one more per page.
    """
    if limit is not None and limit <= 0:
        return []
    first = PAGE if limit is None else min(limit, PAGE)
    page = await memory.list_messages(thread_id, last=first)
    if not page.has_more or (limit is not None and limit <= PAGE):
        return page.items
    start = 0 if limit is None else max(0, page.total - limit)
    number, skip = divmod(start, PAGE)
    found: list[Message] = []
    while True:
        chunk = await memory.list_messages(thread_id, page=number, per_page=PAGE)
        found += chunk.items
        if not chunk.has_more:
            break
        number += 1
    kept = found[skip:]
    return kept if limit is None else kept[-limit:]
