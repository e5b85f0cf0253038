"""Bounded retries with backoff for requests the caller marked idempotent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import anyio

from kvstore.errors import ConnectionFailedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how patiently, to retry an idempotent request after a transport failure.

    Delays grow exponentially from ``base_delay`` up to ``max_delay``, with full jitter so
    that many clients recovering together do not retry in lockstep. Sleeping goes through
    anyio, so retries work under asyncio and trio alike.

    Attributes:
        attempts: Total tries, the first included (1 means no retry).
        base_delay: Seconds before the first retry.
        max_delay: Upper bound of any single delay, in seconds.
    """

    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 1.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (counted from 1)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))

    async def call(self, attempt: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``attempt``; retry it on :class:`ConnectionFailedError` when ``idempotent``."""
        tries = self.attempts if idempotent else 1
        for retry in range(1, tries):
            try:
                return await attempt()
            except ConnectionFailedError:
                await anyio.sleep(self.delay(retry))
        return await attempt()
