"""A driver wrapper that counts round trips, to check that each public call makes one."""

from __future__ import annotations

from collections.abc import Sequence

from kvstore.drivers.base import Arg, Command, Driver, Reply, Script


class CountingDriver(Driver):
    """Passes every request to ``inner`` and counts them; never closes ``inner``."""

    __slots__ = ("inner", "round_trips")

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.round_trips = 0

    @property  # type: ignore[override]
    def binary_safe(self) -> bool:
        return self.inner.binary_safe

    @property
    def default_buckets(self) -> int:
        return self.inner.default_buckets

    def count(self) -> None:
        """Count one round trip (a subclass may refuse it instead)."""
        self.round_trips += 1

    async def execute(
        self, commands: Sequence[Command], *, atomic: bool = False, idempotent: bool = False
    ) -> list[Reply]:
        self.count()
        return await self.inner.execute(commands, atomic=atomic, idempotent=idempotent)

    async def execute_steps(
        self, steps: Sequence[Sequence[Command]], *, idempotent: bool = False
    ) -> list[list[Reply]]:
        self.count()
        return await self.inner.execute_steps(steps, idempotent=idempotent)

    async def run(
        self,
        script: Script,
        keys: Sequence[Arg],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool = False,
    ) -> Reply:
        self.count()
        return await self.inner.run(script, keys, args, idempotent=idempotent)
