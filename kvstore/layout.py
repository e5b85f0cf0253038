"""The store's layout: recorded in the store, checked once before first use.

Every namespace records, in one string key (:attr:`kvstore.keys.Keys.layout`), the key
layout its data was written with, how many buckets it spreads over and its codec::

    {"layout": 2, "buckets": 16, "codec": "json"}

The first call of a :class:`~kvstore.storage.Storage` reads that record (writing it if the
namespace is new) in one round trip, before anything else is read or written. A store
written with another layout, or with other buckets or another codec than the ones asked
for, raises :class:`~kvstore.errors.LayoutError` naming what it found: data is never
misread, and never mixed with data of another layout. A namespace that holds keys of
layout 1 (which recorded nothing) is recognised by its index keys.

A store made without an explicit ``buckets`` takes the recorded one, or the driver's
default for a new namespace. Moving a namespace to another layout or bucket count is what
``kvstore migrate`` does (export, then import into a fresh namespace or database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from kvstore.errors import LayoutError
from kvstore.keys import LAYOUT_VERSION, Keys

if TYPE_CHECKING:
    from kvstore.codec import FormatName
    from kvstore.drivers.base import Driver

__all__ = ["LayoutRecord", "StoreLayout"]


class LayoutRecord(msgspec.Struct, kw_only=True, frozen=True):
    """What a namespace records about its data."""

    layout: int
    buckets: int = 1
    codec: str = "json"


_decode = msgspec.json.Decoder(LayoutRecord).decode


def _decode_or_none(raw: object) -> LayoutRecord | None:
    try:
        return _decode(raw)  # type: ignore[arg-type]
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return None


def _layout1_keys(namespace: str) -> list[str]:
    """Index keys that every namespace with layout-1 data had (all in one slot)."""
    root = "{" + namespace + "}:"
    return [root + name for name in ("threads", "resources", "workflow_runs:all", "spans")]


class StoreLayout:
    """Opens a namespace once: checks or records its layout, then gives its :class:`Keys`.

    Args:
        driver: The backend.
        namespace: The namespace.
        buckets: The buckets asked for, or None to take what the store records (or the
            driver's default for a new namespace).
        codec: The codec records are encoded with.
    """

    __slots__ = ("_buckets", "_codec", "_driver", "_keys", "namespace")

    def __init__(
        self, driver: Driver, namespace: str, buckets: int | None, codec: FormatName
    ) -> None:
        # Check the arguments now, not at the first call.
        Keys(namespace, 1 if buckets is None else buckets)
        self._driver = driver
        self.namespace = namespace
        self._buckets = buckets
        self._codec = codec
        self._keys: Keys | None = None

    @property
    def opened(self) -> Keys | None:
        """The keys once the layout was checked; None before."""
        return self._keys

    async def keys(self) -> Keys:
        """The namespace's keys, checking the stored layout on the first call.

        Raises:
            LayoutError: the namespace holds data of another layout, bucket count or codec.
        """
        if self._keys is None:
            self._keys = await self._open()
        return self._keys

    async def _open(self) -> Keys:
        buckets = self._driver.default_buckets if self._buckets is None else self._buckets
        mine = LayoutRecord(layout=LAYOUT_VERSION, buckets=buckets, codec=self._codec)
        probe = Keys(self.namespace, 1)
        old = _layout1_keys(self.namespace)
        # Idempotent: run again after a lost reply, SET NX GET finds the record the first
        # run wrote, which is this store's own, and EXISTS writes nothing. So the first call
        # of a store is retried on a transient fault, as its reads are.
        stored, layout1 = await self._driver.execute(
            [
                ("SET", probe.layout, msgspec.json.encode(mine), "NX", "GET"),
                ("EXISTS", *old),
            ],
            idempotent=True,
        )
        if layout1:
            if stored is None or _decode_or_none(stored) == mine:
                # This call (or its first attempt, whose reply was lost) recorded layout 2
                # over layout-1 data: take the record back.
                await self._driver.execute([("DEL", probe.layout)])
            raise LayoutError(
                f"namespace {self.namespace!r} holds data of key layout 1; this kvstore "
                f"reads layout {LAYOUT_VERSION} only: export it with the kvstore that "
                "wrote it and import it here (see the README's migration section)",
                found={"layout": 1},
            )
        if stored is None:
            return Keys(self.namespace, buckets)
        try:
            found = _decode(stored)  # type: ignore[arg-type]
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise LayoutError(
                f"namespace {self.namespace!r} has an unreadable layout record at {probe.layout!r}",
                found={"raw": repr(stored)[:200]},
            ) from None
        recorded = msgspec.structs.asdict(found)
        if found.layout != LAYOUT_VERSION:
            raise LayoutError(
                f"namespace {self.namespace!r} holds data of key layout {found.layout}; this "
                f"kvstore reads layout {LAYOUT_VERSION} only",
                found=recorded,
            )
        if self._buckets is not None and found.buckets != self._buckets:
            raise LayoutError(
                f"namespace {self.namespace!r} spreads over {found.buckets} buckets, not "
                f"{self._buckets}: leave buckets unset to use the store's, or migrate",
                found=recorded,
            )
        if found.codec != self._codec:
            raise LayoutError(
                f"namespace {self.namespace!r} is encoded with {found.codec!r}, not "
                f"{self._codec!r}: open it with codec={found.codec!r}",
                found=recorded,
            )
        return Keys(self.namespace, found.buckets)
