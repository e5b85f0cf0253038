"""The transfer library on the memory driver: checksums, resumption, idempotence, and the
export format's errors. (Every backend pair is in test_pairs.py.)"""

from __future__ import annotations

import errno
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from kvstore import ConnectionFailedError, Message, PersistenceError, Storage, Thread
from kvstore.drivers import MemoryDriver
from kvstore.drivers.base import Driver
from kvstore.transfer import (
    Checkpoint,
    Digest,
    DumpError,
    DumpReader,
    count_records,
    digest_records,
    export_jsonl,
    migrate,
    verify,
)
from kvstore.transfer._digest import Digests, canonical
from kvstore.transfer._migrate import STATE_VERSION
from tests.support.counting import CountingDriver
from tests.transfer.dataset import at, fill, snapshot

pytestmark = pytest.mark.anyio


class FailingDriver(CountingDriver):
    """Fails with ConnectionFailedError from its ``fail_at``-th round trip on."""

    def __init__(self, inner: Driver, fail_at: int) -> None:
        super().__init__(inner)
        self.fail_at = fail_at

    def count(self) -> None:
        if self.round_trips + 1 >= self.fail_at:
            raise ConnectionFailedError("injected: the destination went away")
        super().count()


@pytest.fixture
async def source() -> Storage:
    store = Storage()
    await fill(store, messages_per_thread=25)
    return store


def checkpoint(tmp_path: Path, src: str = "src://a", dst: str = "dst://b") -> Checkpoint:
    return Checkpoint(tmp_path / "state" / "migrate.json", src, dst, "kv")


# -- checksums -------------------------------------------------------------------------------


def test_a_checksum_ignores_order_and_notices_any_change() -> None:
    records = [{"id": i, "v": [i, "x"]} for i in range(20)]

    def digest(items: list[object]) -> Digest:
        d = Digest()
        for item in items:
            d.add(canonical(item))
        return d

    assert digest(records) == digest(records[::-1])
    assert digest(records) != digest(records[:-1])
    assert digest(records) != digest([*records[:-1], {"id": 19, "v": [19, "y"]}])
    assert digest(records).checksum == digest(records[::-1]).checksum
    assert len(digest(records).checksum) == 64


def test_canonical_encoding_sorts_dict_keys() -> None:
    assert canonical({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'


def test_message_checksums_see_the_order_within_a_thread() -> None:
    def digest(order: list[str]) -> Digest:
        digests = Digests(["messages"])
        for id_ in order:
            digests.add(
                "messages",
                Message(id=id_, thread_id="t", role="user", content="same", created_at=at(0)),
            )
        return digests.by_kind["messages"]

    assert digest(["a", "b", "c"]) != digest(["b", "a", "c"])
    assert digest(["a", "b", "c"]) == digest(["a", "b", "c"])


# -- migrate ---------------------------------------------------------------------------------


async def test_migrating_again_leaves_the_destination_equal(
    source: Storage, tmp_path: Path
) -> None:
    destination = Storage()
    first = await migrate(source, destination, checkpoint=checkpoint(tmp_path), batch=8)
    before = await snapshot(destination)
    second = await migrate(source, destination, checkpoint=checkpoint(tmp_path), batch=13)
    assert first == second == await count_records(source)
    assert await snapshot(destination) == before == await snapshot(source)
    assert all(check.ok for check in await verify(source, destination))


async def test_an_interrupted_migration_resumes_where_it_stopped(
    source: Storage, tmp_path: Path
) -> None:
    data = MemoryDriver()
    # The whole migration, for reference: how many round trips it takes to the destination.
    full = CountingDriver(MemoryDriver())
    await migrate(source, Storage(full), batch=10)

    state = checkpoint(tmp_path)
    broken = FailingDriver(data, fail_at=full.round_trips // 2)
    with pytest.raises(ConnectionFailedError):
        await migrate(source, Storage(broken), checkpoint=state, batch=10)
    saved = state.load()
    assert saved is not None
    assert saved.done  # some kinds were finished...
    assert saved.kind is not None  # ...and one was under way
    assert saved.copied[saved.kind] > 0 or saved.position is None

    resumed = CountingDriver(data)
    progress: dict[str, int] = {}
    copied = await migrate(
        source,
        Storage(resumed),
        checkpoint=state,
        batch=10,
        on_progress=progress.__setitem__,
    )
    # It did not start over, yet it reports the whole migration.
    assert resumed.round_trips < full.round_trips - broken.round_trips // 2
    assert copied == progress == await count_records(source)
    assert state.load() is None  # finished: the progress is forgotten
    assert not state.path.exists()
    assert await snapshot(Storage(data)) == await snapshot(source)


async def test_a_migration_cancelled_mid_kind_resumes_from_its_checkpoint(
    source: Storage, tmp_path: Path
) -> None:
    class StopError(Exception):
        pass

    def stop_in_messages(kind: str, copied: int) -> None:
        if kind == "messages" and copied >= 40:
            raise StopError

    destination = Storage()
    state = checkpoint(tmp_path)
    with pytest.raises(StopError):
        await migrate(source, destination, checkpoint=state, batch=10, on_progress=stop_in_messages)
    saved = state.load()
    assert saved is not None
    assert (saved.kind, saved.done) == ("messages", ["resources", "threads"])
    assert saved.position is not None
    assert saved.copied["messages"] >= 40
    await migrate(source, destination, checkpoint=state, batch=10)
    assert await snapshot(destination) == await snapshot(source)


def test_checkpoints_of_different_migrations_share_a_file(tmp_path: Path) -> None:
    one, two = checkpoint(tmp_path, "a", "b"), checkpoint(tmp_path, "a", "c")
    assert one.key != two.key
    one.save(one.new_state())
    state = two.new_state()
    state.done = ["resources"]
    two.save(state)
    loaded = two.load()
    assert loaded is not None
    assert loaded.done == ["resources"]
    assert (loaded.source, loaded.destination, loaded.namespace) == ("a", "c", "kv")
    one.clear()
    assert one.load() is None
    assert two.load() is not None
    two.clear()
    assert not two.path.exists()


def test_a_checkpoint_keeps_no_password(tmp_path: Path) -> None:
    state = Checkpoint(
        tmp_path / "s.json", "redis://:secret@h/0", "memory://", "kv", source="redis://:***@h/0"
    )
    state.save(state.new_state())
    assert b"secret" not in state.path.read_bytes()


def test_an_unreadable_checkpoint_file_is_a_value_error(tmp_path: Path) -> None:
    state = checkpoint(tmp_path)
    state.path.parent.mkdir(parents=True)
    state.path.write_text("not json")
    with pytest.raises(ValueError, match="cannot read the migration state file"):
        state.load()


async def test_a_state_saved_with_layout_1_positions_is_refused_then_replaced(
    source: Storage, tmp_path: Path
) -> None:
    state = checkpoint(tmp_path)
    state.path.parent.mkdir(parents=True)
    old = state.new_state()
    old.done, old.kind, old.position = ["resources"], "threads", ["20"]  # a layout-1 cursor
    # What a kvstore of layout 1 wrote: no version, and this migration among others.
    state.path.write_bytes(
        msgspec.json.encode({"migrations": {state.key: old, "other": state.new_state()}})
    )
    with pytest.raises(ValueError, match=r"another kvstore version.*cannot be resumed"):
        state.load()
    with pytest.raises(ValueError, match="cannot be resumed"):
        await migrate(source, Storage(), checkpoint=state)
    # Another migration's entry of that file is not this one's business: it reads as absent.
    assert Checkpoint(state.path, "x", "y", "kv").load() is None
    # Starting over (the CLI's --restart) forgets it; a new state replaces the old file.
    state.clear()
    assert state.load() is None
    saved = state.new_state()
    saved.done = ["resources"]
    state.save(saved)
    data = json.loads(state.path.read_text())
    assert data["version"] == STATE_VERSION == 2
    assert set(data["migrations"]) == {state.key}
    assert state.load() == saved


def full_disk(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_file_out_of_reach_is_a_persistence_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").touch()
    for path in (tmp_path, tmp_path / "file" / "s.json"):  # a directory; under a file
        with pytest.raises(PersistenceError, match="cannot read the migration state file") as e:
            Checkpoint(path, "a", "b", "kv").load()
        assert e.value.path == str(path)
        assert isinstance(e.value.__cause__, OSError)
    state = checkpoint(tmp_path)
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(PersistenceError, match="write the migration state file: No space"):
        state.save(state.new_state())
    assert list(state.path.parent.iterdir()) == []  # the temporary file was removed


async def test_a_checkpoint_that_cannot_be_saved_stops_the_migration(
    source: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(PersistenceError, match=r"migrate\.json: cannot write"):
        await migrate(source, Storage(), checkpoint=checkpoint(tmp_path))


async def test_a_tampered_position_is_refused(source: Storage, tmp_path: Path) -> None:
    state = checkpoint(tmp_path)
    saved = state.new_state()
    saved.done = ["resources", "threads"]
    saved.kind, saved.position = "messages", ["x", "not an index", None]
    state.save(saved)
    with pytest.raises(ValueError, match="not a position"):
        await migrate(source, Storage(), checkpoint=state)


@pytest.mark.parametrize("change", ["retitle a thread", "delete a message"])
async def test_verify_names_the_kind_that_differs(source: Storage, change: str) -> None:
    destination = Storage()
    await migrate(source, destination)
    assert all(check.ok for check in await verify(source, destination))
    if change == "retitle a thread":
        await destination.memory.update_thread("thread-a:b", title="changed")
        kinds, kind, count = ["threads"], "threads", 0
    else:  # which touches its thread too
        assert await destination.memory.delete_messages(["thread-a:b/m3"]) == 1
        kinds, kind, count = ["threads", "messages"], "messages", -1
    checks = await verify(source, destination)
    assert [check.kind for check in checks if not check.ok] == kinds
    [check] = [check for check in checks if check.kind == kind]
    assert check.destination.count == check.source.count + count
    assert check.destination.checksum != check.source.checksum


# -- export and import -----------------------------------------------------------------------


async def export(store: Storage) -> bytes:
    out = io.BytesIO()
    await export_jsonl(store, out, chunk=9)
    return out.getvalue()


async def test_an_export_imports_into_any_namespace_and_twice_is_once(source: Storage) -> None:
    dump = await export(source)
    target = Storage(namespace="elsewhere")
    reader = DumpReader(io.BytesIO(dump))
    assert (reader.header.format, reader.header.version) == ("kvstore-export", 1)
    assert reader.header.namespace == "kv"
    counts = await reader.import_into(target)
    assert counts == await count_records(source)
    again = await DumpReader(io.BytesIO(dump)).import_into(target, batch=3)
    assert again == counts
    assert await snapshot(target) == await snapshot(source)
    assert await digest_records(target) == await digest_records(source)


async def test_exports_of_equal_stores_are_equal_but_for_the_header(source: Storage) -> None:
    copy = Storage()
    await migrate(source, copy)
    one, two = await export(source), await export(copy)
    assert one.split(b"\n")[1:] == two.split(b"\n")[1:]
    assert one.count(b"\n") == sum((await count_records(source)).values()) + 2


async def test_a_msgpack_store_exports_the_same_records(source: Storage) -> None:
    packed = Storage(codec="msgpack")
    await migrate(source, packed)
    assert (await export(packed)).split(b"\n")[1:] == (await export(source)).split(b"\n")[1:]


def lines(dump: bytes) -> list[bytes]:
    return dump.splitlines(keepends=True)


async def import_lines(dump_lines: list[bytes], store: Storage | None = None) -> Storage:
    store = store or Storage()
    await DumpReader(dump_lines).import_into(store, batch=4)
    return store


async def test_a_bad_line_is_named_and_nothing_after_it_is_written(source: Storage) -> None:
    dump = lines(await export(source))
    bad = 30
    assert b'"kind":"message"' in dump[bad - 1]
    broken = [*dump[: bad - 1], b'{"kind": "message", "record": {"id": "x"\n', *dump[bad:]]
    store = Storage()
    with pytest.raises(DumpError) as caught:
        await import_lines(broken, store)
    assert caught.value.line == bad
    assert str(caught.value).startswith(f"line {bad}: ")
    imported = sum((await count_records(store)).values())
    assert imported == bad - 2  # every record before the bad line (line 1 is the header)


MESSAGE = b'{"kind":"message","record":{"id":"m","thread_id":"t"}}'
THREAD = b'{"kind":"thread","record":{"id":"t","resource_id":"r"}}'


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        (MESSAGE[:-2] + b',"role":"robot","content":1}}', "role"),
        (b'{"kind":"thread","record":{"id":"","resource_id":"r"}}', "id"),
        (THREAD[:-2] + b',"created_at":"2025-01-01T00:00:00"}}', "created_at"),
        (b'{"kind":"spaceship","record":{}}', "spaceship"),
        (b"[1, 2]", "Expected"),
        (b"not json", "malformed"),
    ],
)
async def test_records_are_validated_on_import(
    source: Storage, record: bytes, complaint: str
) -> None:
    dump = lines(await export(source))
    with pytest.raises(DumpError) as caught:
        await import_lines([*dump[:3], record + b"\n", *dump[3:]])
    assert caught.value.line == 4
    assert complaint in caught.value.message


async def test_a_message_whose_thread_is_missing_names_its_line() -> None:
    store = Storage()
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    await store.memory.save_messages(
        [Message(id=f"m{i}", thread_id="t", role="user", content=i) for i in range(3)]
    )
    dump = lines(await export(store))
    without_thread = [line for line in dump if b'"kind":"thread"' not in line]
    target = Storage()
    with pytest.raises(DumpError) as caught:
        await import_lines(without_thread, target)
    assert caught.value.line == 2
    assert "no thread 't'" in caught.value.message
    assert await target.memory.get_messages(["m0"]) == []


async def test_a_truncated_or_altered_export_is_refused(source: Storage) -> None:
    dump = lines(await export(source))
    with pytest.raises(DumpError, match="truncated"):
        await import_lines(dump[:-1])
    altered = [line.replace(b"Take a jacket.", b"Take a coat.") for line in dump]
    with pytest.raises(DumpError, match="messages do not match"):
        await import_lines(altered)
    with pytest.raises(DumpError, match="counts"):
        await import_lines([*dump[:-1], dump[-2], dump[-1]])
    with pytest.raises(DumpError, match="after the end line") as caught:
        await import_lines([*dump, dump[1]])
    assert caught.value.line == len(dump) + 1


@pytest.mark.parametrize(
    ("first", "complaint"),
    [
        (None, "empty"),
        (b'{"kind": "thread"}\n', "not a kvstore export header"),
        (b'{"format":"other","version":1,"kvstore":"0","namespace":"kv"}\n', "format is 'other'"),
        (b'{"format":"kvstore-export","version":2,"kvstore":"9","namespace":"kv"}\n', "version 2"),
    ],
)
def test_the_header_is_checked(first: bytes | None, complaint: str) -> None:
    with pytest.raises(DumpError, match=complaint) as caught:
        DumpReader([] if first is None else [first])
    assert caught.value.line == 1


async def test_blank_lines_are_ignored(source: Storage) -> None:
    dump = lines(await export(source))
    spaced = [line for pair in zip(dump, [b"\n"] * len(dump), strict=True) for line in pair]
    store = await import_lines(spaced)
    assert await snapshot(store) == await snapshot(source)


async def test_the_header_is_json_with_the_documented_fields(source: Storage) -> None:
    documented = (
        b'{"format":"kvstore-export","version":1,"kvstore":"0.1.0","namespace":"kv",'
        b'"codec":"json","exported_at":"2026-03-14T09:00:00Z"}'
    )
    header = DumpReader([documented]).header
    assert (header.namespace, header.codec) == ("kv", "json")
    assert header.exported_at == datetime(2026, 3, 14, 9, tzinfo=UTC)
    written = msgspec.json.decode(lines(await export(source))[0])
    assert set(written) == set(msgspec.json.decode(documented))
    assert (written["format"], written["version"]) == ("kvstore-export", 1)
