"""SyncStorage: the same domains and methods as Storage, blocking."""

from __future__ import annotations

import inspect

import pytest

from kvstore import Message, NotFoundError, Storage, SyncStorage, Thread
from kvstore.drivers import MemoryDriver
from kvstore.sync import DOMAINS


def _public_coroutines(obj: object) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(obj)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }


def test_every_domain_and_method_is_there() -> None:
    with SyncStorage() as sync_store:
        async_store = sync_store.storage
        for domain in DOMAINS:
            async_methods = _public_coroutines(getattr(async_store, domain))
            assert async_methods
            blocking = getattr(sync_store, domain)
            assert set(dir(blocking)) >= async_methods
            for name in async_methods:
                assert callable(getattr(blocking, name))


def test_storage_domains_are_all_wrapped() -> None:
    store = Storage()
    attributes = {n for n in Storage.__slots__ if not n.startswith("_") and n != "namespace"}
    assert attributes == set(DOMAINS)
    del store


def test_namespace_keys_and_buckets_are_the_storage_s() -> None:
    with SyncStorage(namespace="sync-ns", buckets=4) as store:
        assert store.namespace == store.storage.namespace == "sync-ns"
        keys = store.keys()
        assert (keys.namespace, keys.buckets) == ("sync-ns", 4)
        store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        assert keys.bucket_of("t1") is keys.thread("t1").bucket


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_blocking_calls_round_trip(backend: str) -> None:
    with SyncStorage(backend=backend) as store:  # type: ignore[arg-type]
        store.memory.save_thread(Thread(id="t1", resource_id="alice"))
        store.memory.save_messages([Message(id="m1", thread_id="t1", role="user", content="hi")])
        page = store.memory.list_messages("t1")
        assert [m.content for m in page.items] == ["hi"]
        with pytest.raises(NotFoundError):
            store.memory.update_thread("nope", title="x")


def test_private_and_unknown_names_are_refused() -> None:
    with SyncStorage() as store:
        with pytest.raises(AttributeError):
            store.memory._driver  # noqa: B018
        with pytest.raises(AttributeError):
            store.memory.no_such_method  # noqa: B018


class _ClosingSpy(MemoryDriver):
    """Counts its closes."""

    closes = 0

    async def aclose(self) -> None:
        self.closes += 1
        await super().aclose()


def test_close_is_idempotent_and_closes_only_an_owned_driver() -> None:
    owned, borrowed = _ClosingSpy(), _ClosingSpy()
    store = SyncStorage(owned, owns_driver=True)
    store.close()
    store.close()
    assert owned.closes == 1
    with SyncStorage(borrowed) as store:
        store.memory.save_thread(Thread(id="t1", resource_id="alice"))
    assert borrowed.closes == 0
