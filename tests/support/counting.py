"""A driver wrapper that counts round trips, to check that each public call makes one."""

from __future__ import annotations

from collections.abc import Sequence

from kvstore.drivers.base import Arg, Command, Driver, Reply, Script


class CountingDriver(Driver):
    """Passes every request to ``inner`` and counts them, and the bytes of their replies;
    never closes ``inner``."""

    __slots__ = ("inner", "reply_bytes", "round_trips")

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.round_trips = 0
        #: The bytes of every string in every reply so far: what the calls read.
        self.reply_bytes = 0

    @property  # type: ignore[override]
    def binary_safe(self) -> bool:
        return self.inner.binary_safe

    @property
    def default_buckets(self) -> int:
        return self.inner.default_buckets

    @property  # type: ignore[override]
    def max_request_bytes(self) -> int | None:
        return self.inner.max_request_bytes

    def count(self) -> None:
        """Count one round trip (a subclass may refuse it instead)."""
        self.round_trips += 1

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.count()
        replies = await self.inner.execute(commands, atomic=atomic, idempotent=idempotent)
        self.reply_bytes += _size(replies)
        return replies

    async def execute_steps(
        self, steps: Sequence[Sequence[Command]], *, idempotent: bool = False
    ) -> list[list[Reply]]:
        self.count()
        replies = await self.inner.execute_steps(steps, idempotent=idempotent)
        self.reply_bytes += _size(replies)
        return replies

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        self.count()
        reply = await self.inner.run(script, keys, args, idempotent=idempotent)
        self.reply_bytes += _size(reply)
        return reply


def _size(reply: object) -> int:
    """The bytes of the strings in a reply, nested lists included."""
    if isinstance(reply, bytes):
        return len(reply)
    if isinstance(reply, list):
        return sum(_size(item) for item in reply)
    return 0
