"""Running a store's async calls on the right event loop, for the LangGraph adapters.

A store's driver is bound to the event loop it is used on. :class:`LoopBridge` runs an
adapter's calls there: from async code on that loop or another one, and from blocking code
(through a :class:`~kvstore.SyncStorage`'s portal, on the loop the store was used on from
another thread, or, in a program without asyncio, on a loop of the bridge's own in a
daemon thread).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from kvstore.storage import Storage
from kvstore.sync import SyncStorage

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.from_thread import BlockingPortal

__all__ = ["LoopBridge"]

R = TypeVar("R")


class LoopBridge:
    """Where an adapter's calls on a store run.

    On a :class:`~kvstore.SyncStorage`, every call goes through its portal (async calls
    from another loop too). On a :class:`~kvstore.Storage`, async calls run on the loop
    they are made on, which the bridge remembers (with the loop it was made on, if any),
    and blocking calls run on that loop from another thread; with no such loop running and
    no loop on the calling thread (a program without asyncio), on a loop of the bridge's
    own in a daemon thread, which every later call uses, async ones from other loops too,
    until :meth:`close`.

    Args:
        store: The store the calls are on.
        name: The adapter's name, for error messages and the own loop's thread.
        hint: The async calls to use instead, named in the error a blocking call on an
            event loop's thread raises.
    """

    def __init__(self, store: Storage | SyncStorage, *, name: str, hint: str) -> None:
        self._portal: BlockingPortal | None
        if isinstance(store, SyncStorage):
            self._portal = store.portal
            self._storage = store.storage
            self._loop: asyncio.AbstractEventLoop | None = self._portal.call(_running_loop)
        elif isinstance(store, Storage):
            self._portal = None
            self._storage = store
            self._loop = _current_loop()
        else:
            raise TypeError("store must be a kvstore Storage or SyncStorage")
        self._name = name
        self._hint = hint
        # The loop of our own that blocking calls run on when no other loop is known.
        self._own_loop: asyncio.AbstractEventLoop | None = None

    @property
    def storage(self) -> Storage:
        """The async store (a SyncStorage's :attr:`~kvstore.SyncStorage.storage`)."""
        return self._storage

    @property
    def loop_running(self) -> bool:
        """Whether the loop the store was last used on (or the bridge's own) runs."""
        return self._loop is not None and self._loop.is_running()

    async def call(self, fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` (a call on the store) on the loop the store
        lives on: the running one, unless the store has a portal or the bridge a loop of
        its own."""
        running = asyncio.get_running_loop()
        if self._portal is None and self._own_loop is None:
            self._loop = running
            return await fn(*args, **kwargs)
        if running is self._loop:
            return await fn(*args, **kwargs)
        if self._portal is not None:
            future = self._portal.start_task_soon(functools.partial(fn, *args, **kwargs))
            return await asyncio.wrap_future(future)
        assert self._own_loop is not None
        done = asyncio.run_coroutine_threadsafe(
            _awaited(lambda: fn(*args, **kwargs)), self._own_loop
        )
        return await asyncio.wrap_future(done)

    def block(self, fn: Callable[[], Awaitable[R]]) -> R:
        """Run ``fn()`` (an adapter's async method) to completion from blocking code.

        Raises:
            asyncio.InvalidStateError: Called on an event loop's thread (the store's
                loop, or any loop when the store has none running).
        """
        if self._portal is not None:
            return self._portal.call(fn)
        running = _current_loop()
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            if running is not None:
                raise asyncio.InvalidStateError(
                    f"blocking {self._name} methods cannot run on an event loop's thread: "
                    f"use the async methods ({self._hint})"
                )
            loop = self._start_own_loop()
        if running is loop:
            raise asyncio.InvalidStateError(
                f"blocking {self._name} methods cannot run on the event loop thread: use "
                f"the async methods ({self._hint})"
            )
        return asyncio.run_coroutine_threadsafe(_awaited(fn), loop).result()

    def close(self) -> None:
        """Stop the bridge's own loop, if it started one (a later blocking call starts
        another)."""
        loop, self._own_loop = self._own_loop, None
        if loop is not None:
            self._loop = None
            loop.call_soon_threadsafe(loop.stop)

    def _start_own_loop(self) -> asyncio.AbstractEventLoop:
        """A loop in a daemon thread of the bridge's own, for a program without asyncio:
        every later call, blocking or async, runs on it."""
        if self._own_loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name=f"kvstore-{self._name}", daemon=True
            ).start()
            self._own_loop = self._loop = loop
        return self._own_loop


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def _awaited(fn: Callable[[], Awaitable[R]]) -> R:
    return await fn()
