"""Export and import, and migrate, between every pair of backends: nothing lost or altered.

Each pair is checked three ways: the per-kind checksums agree, every record is equal
(sorted by id; each thread's messages in order), and the listings, which read the
indexes the restore rebuilt, return the same pages.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable

import pytest

from kvstore.transfer import DumpReader, digest_records, export_jsonl, migrate, verify
from tests.transfer.conftest import BACKENDS, Backend
from tests.transfer.dataset import fill, snapshot

pytestmark = pytest.mark.anyio

PAIRS = [
    pytest.param(
        src,
        dst,
        id=f"{src}-to-{dst}",
        marks=[
            *([pytest.mark.redis] if {"redis", "cluster", "upstash_redis"} & {src, dst} else []),
            *([pytest.mark.cluster] if "cluster" in {src, dst} else []),
        ],
    )
    for src, dst in itertools.permutations(BACKENDS, 2)
]


@pytest.mark.parametrize(("source", "destination"), PAIRS)
async def test_export_then_import(
    source: str, destination: str, backend_named: Callable[[str], Backend], namespace: str
) -> None:
    src, dst = backend_named(source), backend_named(destination)
    async with src.open(namespace) as store:
        await fill(store)
    dump = io.BytesIO()
    async with src.open(namespace) as store:
        exported = await export_jsonl(store, dump, chunk=7)  # small chunks: many pages
        expected = await snapshot(store)
    reader = DumpReader(io.BytesIO(dump.getvalue()))
    assert reader.header.namespace == namespace
    async with dst.open(namespace) as store:
        counts = await reader.import_into(store, batch=5)
        assert counts == {k: d.count for k, d in exported.by_kind.items()}
        assert await digest_records(store) == exported.by_kind
        assert await snapshot(store) == expected


@pytest.mark.parametrize(("source", "destination"), PAIRS)
async def test_migrate(
    source: str, destination: str, backend_named: Callable[[str], Backend], namespace: str
) -> None:
    src, dst = backend_named(source), backend_named(destination)
    async with src.open(namespace) as store:
        await fill(store)
    async with src.open(namespace) as from_, dst.open(namespace) as to:
        copied = await migrate(from_, to, batch=6)
        checks = await verify(from_, to)
        assert all(check.ok for check in checks), checks
        assert copied == {check.kind: check.source.count for check in checks}
        assert await snapshot(to) == await snapshot(from_)
