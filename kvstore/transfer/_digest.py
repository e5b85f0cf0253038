"""Checksums of a kind's records that are computed streaming, in any order.

A checksum should say "these two stores hold the same records" without holding every
record (or every id, to sort them) in memory. So each record is hashed on its own, over a
canonical encoding (JSON with dict keys sorted, struct fields in declaration order, times
in UTC), and the digests are added modulo 2**256: the sum is the same whatever order the
records come in, and changes when any record is added, lost or altered. It guards against
accidents, not against someone crafting records to collide.

Messages are the one kind whose order matters beyond their fields (messages with equal
timestamps keep the order they were saved in), so each message is hashed together with its
position in its thread.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

__all__ = ["Digest", "Digests", "canonical"]

_MODULUS = 2**256
_canonical = msgspec.json.Encoder(order="deterministic")


def canonical(value: Any) -> bytes:
    """``value`` in the canonical JSON encoding that checksums hash."""
    return _canonical.encode(value)


class Digest:
    """The count and checksum of some records.

    Attributes:
        count: How many records were added.
    """

    __slots__ = ("_sum", "count")

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0

    def add(self, encoded: bytes) -> None:
        """Count one record, given in its canonical encoding."""
        self.count += 1
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(encoded).digest(), "big")) % (
            _MODULUS
        )

    @property
    def checksum(self) -> str:
        """The checksum: 64 hex digits."""
        return f"{self._sum:064x}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.count, self._sum) == (other.count, other._sum)

    def __hash__(self) -> int:
        return hash((self.count, self._sum))

    def __repr__(self) -> str:
        return f"Digest(count={self.count}, checksum={self.checksum[:16]}...)"


class Digests:
    """One :class:`Digest` per kind, fed records in walk order.

    Messages must arrive thread by thread, each thread's in its order (as the walks and
    exports give them), since a message's position in its thread is part of its hash.
    """

    __slots__ = ("_position", "_thread", "by_kind")

    def __init__(self, kinds: list[str]) -> None:
        self.by_kind = {kind: Digest() for kind in kinds}
        self._thread: str | None = None
        self._position = 0

    def add(self, kind: str, record: Any) -> None:
        """Count ``record`` of ``kind`` (a plural kind name: ``"messages"``)."""
        if kind == "messages":
            if record.thread_id == self._thread:
                self._position += 1
            else:
                self._thread, self._position = record.thread_id, 0
            self.by_kind[kind].add(canonical([self._position, record]))
        else:
            self.by_kind[kind].add(canonical(record))
