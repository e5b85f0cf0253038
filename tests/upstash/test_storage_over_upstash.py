"""Storage over the local Upstash server: what the domains make of the driver's limits.

test_faults.py shows retries at driver level; here the same faults strike domain calls,
which decide what is idempotent. No test measures time: attempts are counted at the server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from kvstore import Message, Resource, Storage, Thread
from kvstore.drivers.upstash import UpstashDriver
from kvstore.errors import ConnectionFailedError, UnsupportedError
from kvstore.upstash_server import Fault, UpstashServer
from tests.upstash.conftest import FAST_RETRY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

TRANSPORT_FAULTS = [
    pytest.param(Fault.error(500), id="500"),
    pytest.param(Fault.error(503), id="503"),
    pytest.param(Fault.malformed(), id="malformed-json"),
    pytest.param(Fault.drop(), id="dropped-connection"),
]


def messages(thread_id: str, count: int) -> list[Message]:
    return [
        Message(
            id=f"{thread_id}-m{i}",
            thread_id=thread_id,
            role="user",
            content=f"message {i}",
            resource_id="alice",
            created_at=T0 + timedelta(seconds=i),
        )
        for i in range(count)
    ]


@pytest.fixture
async def store(any_server: UpstashServer) -> AsyncIterator[Storage]:
    driver = UpstashDriver(any_server.url, any_server.token, retry=FAST_RETRY)
    async with Storage(driver, namespace="faults", owns_driver=True) as store:
        await store.keys()  # the layout check, so that faults strike the calls under test
        yield store


# -- MessagePack needs a binary-safe driver ------------------------------------------------


async def test_msgpack_is_refused_on_upstash() -> None:
    async with UpstashDriver("http://127.0.0.1:9", "token") as driver:
        with pytest.raises(UnsupportedError, match="MessagePack"):
            Storage(driver, codec="msgpack")
        assert Storage(driver, codec="json").codec == "json"


async def test_msgpack_is_refused_for_an_upstash_url() -> None:
    with pytest.raises(UnsupportedError, match="MessagePack"):
        Storage.from_url("upstash+http://:token@127.0.0.1:9", codec="msgpack")


# -- reads are retried ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_a_read_under_a_transient_fault_is_retried_and_succeeds(
    any_server: UpstashServer, store: Storage, fault: Fault
) -> None:
    await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
    saved = await store.memory.save_messages(messages("t1", 3))
    any_server.faults.inject(fault)
    page = await store.memory.list_messages("t1")
    assert any_server.faults.struck == 1
    assert [m.id for m in page.items] == [m.id for m in saved]
    assert page.total == 3

    any_server.faults.inject(fault)
    thread = await store.memory.get_thread("t1")
    assert any_server.faults.struck == 2
    assert thread is not None


@pytest.mark.parametrize("applied", [False, True], ids=["before-apply", "after-apply"])
@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_a_store_s_first_call_under_a_transient_fault_is_retried(
    any_server: UpstashServer, fault: Fault, applied: bool
) -> None:
    # The first call of a store checks the layout (and records it in a new namespace) in a
    # request of its own, which is retried as reads are, even when it was applied.
    namespace = f"first-{fault.kind}-{fault.status}-{applied}"
    driver = UpstashDriver(any_server.url, any_server.token, retry=FAST_RETRY)
    async with Storage(driver, namespace=namespace, owns_driver=True) as store:
        any_server.faults.inject(Fault(fault.kind, applied, fault.status, fault.seconds))
        assert await store.memory.get_thread("t1") is None
        assert any_server.faults.struck == 1
        assert (await store.keys()).namespace == namespace
        await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
    async with Storage(UpstashDriver(any_server.url, any_server.token), namespace) as again:
        assert await again.memory.get_thread("t1") is not None
        await again.driver.aclose()


# -- writes are all or nothing, and saving again is safe ---------------------------------------


@pytest.mark.parametrize("applied", [False, True], ids=["before-apply", "after-apply"])
@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_a_write_under_a_fault_is_all_or_nothing(
    any_server: UpstashServer, store: Storage, fault: Fault, applied: bool
) -> None:
    await store.memory.save_thread(Thread(id="t1", resource_id="alice"))
    batch = messages("t1", 4)
    ids = [m.id for m in batch]
    any_server.faults.inject(Fault(fault.kind, applied, fault.status, fault.seconds))
    # Saving messages is one script that is not idempotent (it counts insertions), so the
    # driver does not retry it: the caller learns that it may or may not have been applied.
    with pytest.raises(ConnectionFailedError, match="may or may not have been applied"):
        await store.memory.save_messages(batch)
    assert any_server.faults.struck == 1

    page = await store.memory.list_messages("t1")
    stored = [m.id for m in page.items]
    assert stored == (ids if applied else [])  # every message or none, never some
    assert [m.id for m in await store.memory.get_messages(ids)] == stored

    # What a caller does after such a failure: save again. Each message is stored once.
    await store.memory.save_messages(batch)
    page = await store.memory.list_messages("t1")
    assert [m.id for m in page.items] == ids
    assert page.total == len(ids)


@pytest.mark.parametrize("fault", TRANSPORT_FAULTS)
async def test_an_idempotent_write_under_a_transient_fault_succeeds_once(
    any_server: UpstashServer, store: Storage, fault: Fault
) -> None:
    # The fault strikes after the server applied the write: the retry applies it again,
    # to the same effect.
    any_server.faults.inject(Fault(fault.kind, True, fault.status, fault.seconds))
    await store.memory.save_resource(Resource(id="alice", working_memory="likes tea"))
    assert any_server.faults.struck == 1
    resource = await store.memory.get_resource("alice")
    assert resource is not None
    assert resource.working_memory == "likes tea"
