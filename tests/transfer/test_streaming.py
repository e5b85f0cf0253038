"""Migrations stream: the memory they use does not grow with the number of records.

Both stores are Redis databases, so the records live in the Redis server, and what this
process holds during a migration is only what the migration itself keeps.
"""

from __future__ import annotations

import tracemalloc

import pytest

from kvstore import Message, Storage, Thread
from kvstore.transfer import migrate
from tests.transfer.conftest import Backend
from tests.transfer.dataset import at

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

THREADS = 4


async def fill_messages(store: Storage, count: int) -> None:
    per_thread = count // THREADS
    for t in range(THREADS):
        await store.memory.save_thread(Thread(id=f"t{t}", resource_id="r"))
        for start in range(0, per_thread, 500):
            await store.memory.save_messages(
                Message(
                    id=f"t{t}-m{n}",
                    thread_id=f"t{t}",
                    role="user",
                    content=f"message {n} " + "lorem ipsum " * 15,
                    created_at=at(n),
                )
                for n in range(start, min(start + 500, per_thread))
            )


async def peak_of_migration(backend: Backend, namespace: str, count: int) -> int:
    """The peak of Python memory allocated while migrating ``count`` messages."""
    async with backend.open(f"{namespace}-src-{count}") as src:
        await fill_messages(src, count)
    async with (
        backend.open(f"{namespace}-src-{count}") as src,
        backend.open(f"{namespace}-dst-{count}") as dst,
    ):
        await dst.memory.get_thread("warm up the connection pool")
        tracemalloc.start()
        try:
            copied = await migrate(src, dst, batch=200)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert copied["messages"] == count
    return peak


async def test_memory_use_does_not_grow_with_the_number_of_messages(
    redis_backend: Backend, namespace: str
) -> None:
    small = await peak_of_migration(redis_backend, namespace, 500)
    large = await peak_of_migration(redis_backend, namespace, 4_000)
    # Eight times the messages; the same batches in flight. Allow for noise, not growth.
    assert large < small * 1.5, (small, large)
