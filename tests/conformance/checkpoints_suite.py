"""The checkpoint domain's conformance suite: ``store.checkpoints`` through its public API.

Collected through the backend classes in ``test_backends.py``; nothing here knows which
backend runs it.
"""

from __future__ import annotations

import pytest

from kvstore import Storage, ValidationError
from kvstore.records import CheckpointWrite, StoredCheckpoint, Typed

BINARY: Typed = ("msgpack", bytes(range(256)) + b"\x00\xff\xfe")
IDS = ["t", "a:b", "{tag}", "new\nline", "ünï ✓", "nul\x00in", "\x01x", "x" * 300]


def value(n: int) -> Typed:
    return ("json", b"%d" % n)


async def put(
    store: Storage,
    thread: str,
    cid: str,
    *,
    ns: str = "",
    parent: str | None = None,
    run: str | None = None,
    filters: dict[str, object] | None = None,
    versions: dict[str, str] | None = None,
    blobs: list[tuple[str, str, Typed]] | None = None,
) -> None:
    await store.checkpoints.put(
        thread,
        ns,
        cid,
        checkpoint=("json", b'{"id": "%s"}' % cid.encode()),
        metadata=BINARY,
        versions=versions or {},
        blobs=blobs or [],
        parent_id=parent,
        run_id=run,
        filters=filters,
    )


async def ids(store: Storage, thread: str, ns: str | None = None, **options: object) -> list[str]:
    page = await store.checkpoints.list(thread, ns, **options)  # type: ignore[arg-type]
    return [c.checkpoint_id for c in page.items]


async def all_threads(store: Storage) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        chunk = await store.checkpoints.threads(cursor=cursor, count=2)
        found += chunk.items
        if chunk.cursor is None:
            return sorted(found)
        cursor = chunk.cursor


class CheckpointsSuite:
    """Tests of ``store.checkpoints``; needs a ``store`` fixture (a :class:`Storage`)."""

    async def test_checkpoints_round_trip_with_values_and_writes(self, store: Storage) -> None:
        cps = store.checkpoints
        for thread in IDS:
            await put(
                store,
                thread,
                "c1",
                ns="child:\x00x",
                parent="c0",
                run="r\x00un",
                versions={"a": "1", "b\x00": "v.2"},
                blobs=[("a", "1", BINARY), ("b\x00", "v.2", value(2))],
            )
            await cps.put_writes(thread, "child:\x00x", "c1", "task", [(0, "ch", BINARY)])
        for thread in IDS:
            got = await cps.get(thread, "child:\x00x")
            assert got == StoredCheckpoint(
                thread_id=thread,
                namespace="child:\x00x",
                checkpoint_id="c1",
                parent_id="c0",
                checkpoint=("json", b'{"id": "c1"}'),
                metadata=BINARY,
                versions={"a": "1", "b\x00": "v.2"},
                values={"a": BINARY, "b\x00": value(2)},
                writes=[CheckpointWrite(task_id="task", channel="ch", value=BINARY, index=0)],
                run_id="r\x00un",
            )
            assert await cps.get(thread, "child:\x00x", "c1") == got
            assert await cps.get(thread) is None
            assert await cps.get(thread, "child:\x00x", "c2") is None
        assert await cps.get("missing") is None

    async def test_checkpoints_share_values_of_unchanged_channels(self, store: Storage) -> None:
        cps = store.checkpoints
        await put(
            store,
            "t",
            "c1",
            versions={"a": "1", "b": "1"},
            blobs=[("a", "1", value(1)), ("b", "1", value(10))],
        )
        await put(
            store,
            "t",
            "c2",
            parent="c1",
            versions={"a": "2", "b": "1"},
            blobs=[("a", "2", value(2))],
        )
        await put(store, "t", "c3", parent="c2", versions={"a": "2"})
        newest = await cps.get("t")
        assert newest is not None
        assert (newest.checkpoint_id, newest.values) == ("c3", {"a": value(2)})
        first = await cps.get("t", "", "c1")
        assert first is not None
        assert first.values == {"a": value(1), "b": value(10)}
        second = await cps.get("t", "", "c2")
        assert second is not None
        assert second.values == {"a": value(2), "b": value(10)}
        # A referenced version that was never stored has no value.
        await put(store, "t", "c4", versions={"z": "9"})
        fourth = await cps.get("t", "", "c4")
        assert fourth is not None
        assert (fourth.versions, fourth.values) == ({"z": "9"}, {})

    async def test_checkpoints_put_again_replaces(self, store: Storage) -> None:
        cps = store.checkpoints
        await put(
            store,
            "t",
            "c1",
            run="r1",
            filters={"source": "input"},
            versions={"a": "1"},
            blobs=[("a", "1", value(1))],
        )
        await cps.put_writes("t", "", "c1", "task", [(0, "ch", value(5))])
        await put(store, "t", "c1", run="r2", filters={"source": "loop"}, versions={"a": "1"})
        got = await cps.get("t")
        assert got is not None
        assert (got.run_id, got.values, len(got.writes)) == ("r2", {"a": value(1)}, 1)
        assert await ids(store, "t", filters={"source": "input"}) == []
        assert await ids(store, "t", filters={"source": "loop"}) == ["c1"]

    async def test_checkpoints_writes_keep_the_first_and_special_ones_replace(
        self, store: Storage
    ) -> None:
        cps = store.checkpoints
        await put(store, "t", "c1")
        await cps.put_writes("t", "", "c1", "t2", [(0, "x", value(1)), (1, "y", value(2))])
        await cps.put_writes("t", "", "c1", "t2", [(0, "x", value(9)), (-3, "i", value(3))])
        await cps.put_writes("t", "", "c1", "t1", [(0, "x", value(4))], task_path="~z")
        await cps.put_writes("t", "", "c1", "t2", [(-3, "i", value(7))])
        await cps.put_writes("t", "", "c1", "t0", [])
        got = await cps.get("t")
        assert got is not None
        # Ordered by task path, task id, index.
        assert [(w.task_path, w.task_id, w.index, w.channel, w.value) for w in got.writes] == [
            ("", "t2", -3, "i", value(7)),
            ("", "t2", 0, "x", value(1)),
            ("", "t2", 1, "y", value(2)),
            ("~z", "t1", 0, "x", value(4)),
        ]
        # Writes belong to their checkpoint and namespace.
        await put(store, "t", "c2", parent="c1")
        await put(store, "t", "c1", ns="child")
        for ns, cid in (("", "c2"), ("child", "c1")):
            other = await cps.get("t", ns, cid)
            assert other is not None
            assert other.writes == []

    async def test_checkpoints_list_newest_first_across_namespaces(self, store: Storage) -> None:
        for n in range(6):
            await put(store, "t", f"c{n}", ns=["", "child:1", "child:2"][n % 3])
        assert await ids(store, "t") == [f"c{n}" for n in reversed(range(6))]
        assert await ids(store, "t", "") == ["c3", "c0"]
        assert await ids(store, "t", "child:1", limit=1) == ["c4"]
        assert await ids(store, "t", before="c4") == ["c3", "c2", "c1", "c0"]
        assert await ids(store, "t", "", before="c3") == ["c0"]
        assert await ids(store, "t", checkpoint_id="c2") == ["c2"]
        assert await ids(store, "t", checkpoint_id="c2", before="c2") == []
        assert await ids(store, "t", "child:2", checkpoint_id="c5", before="c5") == []
        assert await ids(store, "t", "child:2", checkpoint_id="c5") == ["c5"]
        assert await ids(store, "t", "", checkpoint_id="c2") == []
        assert await ids(store, "missing") == []

    async def test_checkpoints_list_pages_with_a_cursor(self, store: Storage) -> None:
        for n in range(25):
            await put(store, "t", f"c{n:02d}", ns=str(n % 2))
        seen: list[str] = []
        cursor = None
        while True:
            page = await store.checkpoints.list("t", limit=7, cursor=cursor)
            seen += [c.checkpoint_id for c in page.items]
            if page.cursor is None:
                break
            cursor = page.cursor
        assert seen == [f"c{n:02d}" for n in reversed(range(25))]
        with pytest.raises(ValidationError):
            await store.checkpoints.list("t", cursor="not a cursor!")

    async def test_checkpoints_list_filters_by_metadata(self, store: Storage) -> None:
        long = "é" * 200
        for n in range(8):
            filters = {"source": "loop" if n % 2 else "input", "step": n, "odd": bool(n % 2)}
            filters.update({"long": long, "f": n / 2, "nested": {"no": "index"}})
            await put(store, "t", f"c{n}", ns="" if n < 4 else "x", filters=filters)
        assert await ids(store, "t", filters={"source": "input"}) == ["c6", "c4", "c2", "c0"]
        assert await ids(store, "t", "", filters={"source": "loop"}) == ["c3", "c1"]
        assert await ids(store, "t", filters={"step": 3.0}) == ["c3"]
        assert await ids(store, "t", filters={"odd": 1, "source": "loop", "f": 2.5}) == ["c5"]
        assert await ids(store, "t", filters={"odd": True, "source": "input"}) == []
        assert await ids(store, "t", filters={"long": long}, limit=2) == ["c7", "c6"]
        assert await ids(store, "t", filters={"long": long + "!"}) == []
        assert await ids(store, "t", before="c5", filters={"source": "loop"}) == ["c3", "c1"]
        with pytest.raises(ValidationError):
            await store.checkpoints.list("t", filters={"nested": {"no": "index"}})
        with pytest.raises(ValidationError):
            await store.checkpoints.list("t", filters={"none": None})

    async def test_checkpoints_delete_thread(self, store: Storage) -> None:
        cps = store.checkpoints
        for thread in ("t1", "t2"):
            for n in range(3):
                await put(
                    store,
                    thread,
                    f"c{n}",
                    ns=str(n),
                    run=f"r{n}",
                    versions={"a": "1"},
                    blobs=[("a", "1", value(n))],
                )
                await cps.put_writes(thread, str(n), f"c{n}", "task", [(0, "ch", value(n))])
        await cps.delete_thread("t1")
        await cps.delete_thread("missing")
        assert await ids(store, "t1") == []
        assert await cps.get("t1", "0") is None
        assert await ids(store, "t2") == ["c2", "c1", "c0"]
        assert await all_threads(store) == ["t2"]
        # The deleted thread's runs no longer lead anywhere; the other thread's still do.
        await cps.delete_runs(["r1"])
        assert await ids(store, "t2") == ["c2", "c0"]

    async def test_checkpoints_delete_runs_across_threads(self, store: Storage) -> None:
        cps = store.checkpoints
        threads = [f"thread-{i}" for i in range(12)]
        for thread in threads:
            for n in range(4):
                await put(
                    store,
                    thread,
                    f"c{n}",
                    ns="" if n < 2 else "sub",
                    run=f"run-{n % 2}",
                    versions={"a": str(n // 2)},
                    blobs=[("a", str(n // 2), value(n))] if n % 2 == 0 else [],
                )
            await cps.put_writes(thread, "", "c0", "task", [(0, "ch", value(0))])
        await cps.delete_runs([])
        await cps.delete_runs(["run-0", "missing"])
        for thread in threads:
            assert await ids(store, thread) == ["c3", "c1"]
            kept = await cps.get(thread, "", "c1")
            assert kept is not None
            assert kept.values == {"a": value(0)}  # the value c0 wrote, shared with c1
            assert await cps.get(thread, "", "c0") is None
        await cps.delete_runs(["run-1"])
        assert [await ids(store, t) for t in threads] == [[]] * len(threads)
        assert await all_threads(store) == []

    async def test_checkpoints_copy_a_thread(self, store: Storage) -> None:
        cps = store.checkpoints
        for n in range(130):
            ns = "" if n % 10 else "sub"
            await put(
                store,
                "src",
                f"c{n:03d}",
                ns=ns,
                run="r",
                filters={"step": n},
                versions={"a": str(n // 3)},
                blobs=[("a", str(n // 3), value(n))] if n % 3 == 0 else [],
            )
        await cps.put_writes("src", "", "c129", "task", [(0, "ch", BINARY)])
        await cps.copy_thread("src", "dst")
        await cps.copy_thread("missing", "dst2")
        source = await cps.list("src", limit=1000)
        target = await cps.list("dst", limit=1000)
        assert len(target.items) == 130
        assert [msgspec_replace(c, thread_id="src") for c in target.items] == source.items
        assert await ids(store, "dst", filters={"step": 7}) == ["c007"]
        assert await ids(store, "dst2") == []
        await cps.delete_runs(["r"])
        assert await ids(store, "src") == await ids(store, "dst") == []

    async def test_checkpoints_prune_keeps_the_newest_of_each_namespace(
        self, store: Storage
    ) -> None:
        cps = store.checkpoints
        for thread in ("t1", "t2", "t3"):
            for n in range(6):
                await put(
                    store,
                    thread,
                    f"c{n}",
                    ns=str(n % 2),
                    run="r",
                    versions={"a": "0"},
                    blobs=[("a", "0", value(n))] if n < 2 else [],
                )
            await cps.put_writes(thread, "1", "c5", "task", [(0, "ch", value(1))])
        await cps.prune([])
        await cps.prune(["t1", "t2", "missing"])
        for thread in ("t1", "t2"):
            assert await ids(store, thread) == ["c5", "c4"]
            kept = await cps.get(thread, "1")
            assert kept is not None
            assert (kept.values, len(kept.writes)) == ({"a": value(1)}, 1)
            other = await cps.get(thread, "0")
            assert other is not None
            assert other.values == {"a": value(0)}
        assert len(await ids(store, "t3")) == 6
        await cps.prune(["t3"], keep_latest=False)
        assert await ids(store, "t3") == []
        await cps.delete_runs(["r"])
        assert await ids(store, "t1") == []

    async def test_checkpoints_export_and_restore_exactly(self, store: Storage) -> None:
        cps = store.checkpoints
        for n in range(7):
            await put(
                store,
                "src\x00",
                f"c{n}",
                ns="" if n % 3 else "sub:\x01",
                run=f"run-{n % 2}",
                filters={"step": n, "source": ("input", "loop")[n % 2], "long": "é" * 150},
                versions={"a": str(n // 2)},
                blobs=[("a", str(n // 2), BINARY)] if n % 2 == 0 else [],
            )
            await cps.put_writes(
                "src\x00", "" if n % 3 else "sub:\x01", f"c{n}", "t", [(-1, "e", value(n))]
            )
        exported: list[StoredCheckpoint] = []
        cursor = None
        while True:
            chunk = await cps.export_checkpoints("src\x00", cursor=cursor, count=3)
            assert chunk.total == 7
            exported += chunk.items
            if chunk.cursor is None:
                break
            cursor = chunk.cursor
        assert [c.checkpoint_id for c in exported] == [f"c{n}" for n in range(7)]
        assert exported[1].tokens["step"] == "n:1"
        assert await cps.count_checkpoints(["src\x00", "missing"]) == [7, 0]
        copies = [msgspec_replace(c, thread_id="dst") for c in exported]
        assert await cps.restore_checkpoints(copies) == copies
        assert await cps.restore_checkpoints([]) == []
        source = await cps.list("src\x00")
        target = await cps.list("dst")
        assert [msgspec_replace(c, thread_id="src\x00") for c in target.items] == source.items
        assert await ids(store, "dst", filters={"source": "loop", "long": "é" * 150}) == [
            "c5",
            "c3",
            "c1",
        ]
        await cps.delete_runs(["run-0", "run-1"])
        assert await cps.count_checkpoints(["src\x00", "dst"]) == [0, 0]
        with pytest.raises(ValidationError):
            await cps.export_checkpoints("dst", cursor="?")
        with pytest.raises(ValidationError):
            await cps.restore_checkpoints([{"thread_id": "x"}])

    async def test_checkpoints_refuse_bad_input(self, store: Storage) -> None:
        cps = store.checkpoints
        with pytest.raises(ValidationError):
            await cps.get("")
        with pytest.raises(ValidationError):
            await cps.get("t", "\ud800")
        with pytest.raises(ValidationError):
            await cps.put("t", "", "c", checkpoint=("json", "text"), metadata=BINARY, versions={})  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await cps.put("t", "", "c", checkpoint=("a\x00b", b""), metadata=BINARY, versions={})
        with pytest.raises(ValidationError):
            await cps.put_writes("t", "", "c", "task", [(True, "ch", BINARY)])  # type: ignore[list-item]
        with pytest.raises(ValidationError):
            await cps.delete_runs("run")
        assert await ids(store, "t") == []


def msgspec_replace(item: StoredCheckpoint, **changes: object) -> StoredCheckpoint:
    import msgspec

    return msgspec.structs.replace(item, **changes)
