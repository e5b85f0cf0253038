"""Move a namespace's records between stores: export, import, migrate, verify.

Library code, usable without the command line (which is a thin layer over it):

* :func:`export_jsonl` writes every record of a namespace to a file in kvstore's
  versioned JSON Lines format (see :mod:`kvstore.transfer._jsonl` for the format), and
  :class:`DumpReader` imports one, decoding and validating every line;
* :func:`migrate` copies every record from one store to another, resumable with a
  :class:`Checkpoint` and idempotent, and :func:`verify` compares the two by counts and
  checksums per kind;
* :func:`count_records` counts each kind from the indexes, without reading the records.

Every walk reads the namespace's global indexes page by page (never ``SCAN``), so memory
use depends on the batch size, not on how much is stored. The kinds, in the order they
move: ``resources``, ``threads``, ``messages``, ``runs``, ``scores``, ``spans``,
``store_items`` (the LangGraph long-term store's items).

Example::

    async with Storage.from_url(src_url) as src, Storage.from_url(dst_url) as dst:
        await migrate(src, dst, checkpoint=Checkpoint(".kvstore/migrate-state.json",
                                                      src_url, dst_url, "kv"))
        assert all(check.ok for check in await verify(src, dst))
"""

from __future__ import annotations

from kvstore.transfer._digest import Digest
from kvstore.transfer._jsonl import (
    FORMAT_NAME,
    FORMAT_VERSION,
    DumpError,
    DumpHeader,
    DumpReader,
    export_jsonl,
)
from kvstore.transfer._kinds import KINDS
from kvstore.transfer._migrate import (
    Checkpoint,
    KindCheck,
    MigrationState,
    count_records,
    digest_records,
    migrate,
    verify,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KIND_NAMES",
    "Checkpoint",
    "Digest",
    "DumpError",
    "DumpHeader",
    "DumpReader",
    "KindCheck",
    "MigrationState",
    "count_records",
    "digest_records",
    "export_jsonl",
    "migrate",
    "verify",
]

#: The kinds of record transfers move, in the order they move them.
KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
