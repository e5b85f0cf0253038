"""The contract of ``store.memory.list_resources``, on every backend.

``list_resources(page=0, per_page=20) -> Page[Resource]``: the namespace's resources,
newest ``updated_at`` first (ties: by id), with an exact ``total`` and ``has_more``, in one
round trip whose cost depends on the page only.

"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kvstore import Resource, Storage, ValidationError
from tests.support.counting import CountingDriver

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def resource(id_: str, seconds: float) -> Resource:
    """A resource created and last updated at ``seconds``."""
    return Resource(
        id=id_, working_memory=f"notes of {id_}", created_at=at(seconds), updated_at=at(seconds)
    )


class ResourceListingSuite:
    async def test_list_resources_of_an_empty_namespace(self, store: Storage) -> None:
        page = await store.memory.list_resources()
        assert (page.items, page.total, page.page, page.per_page, page.has_more) == (
            [],
            0,
            0,
            20,
            False,
        )

    async def test_list_resources_pages_newest_first_with_exact_totals(
        self, store: Storage
    ) -> None:
        # Saved out of time order: the listing orders by time, not by arrival.
        for id_, seconds in [("c", 30), ("a", 10), ("e", 50), ("b", 20), ("d", 40)]:
            await store.memory.save_resource(resource(id_, seconds))
        pages = [await store.memory.list_resources(page=p, per_page=2) for p in range(4)]
        assert [[r.id for r in p.items] for p in pages] == [["e", "d"], ["c", "b"], ["a"], []]
        assert [p.total for p in pages] == [5, 5, 5, 5]
        assert [p.has_more for p in pages] == [True, True, False, False]
        assert [(p.page, p.per_page) for p in pages] == [(0, 2), (1, 2), (2, 2), (3, 2)]
        # The records come back whole.
        assert pages[0].items[0] == resource("e", 50)

    async def test_list_resources_orders_by_last_update_then_id(self, store: Storage) -> None:
        for id_, seconds in [("old", 10), ("mid", 20), ("new", 30)]:
            await store.memory.save_resource(resource(id_, seconds))
        await store.memory.update_resource("old", working_memory="touched just now")
        # Equal updated_at: by id.
        for id_ in ("tie-b", "tie-a"):
            await store.memory.save_resource(
                Resource(id=id_, created_at=at(id_ == "tie-a"), updated_at=at(25))
            )
        page = await store.memory.list_resources()
        assert [r.id for r in page.items] == ["old", "new", "tie-a", "tie-b", "mid"]

    async def test_list_resources_is_one_round_trip(self, store: Storage) -> None:
        for i in range(30):
            await store.memory.save_resource(resource(f"r{i:02}", i))
        counting = CountingDriver(store.driver)
        storage = Storage(counting, namespace=store.namespace)
        await storage.keys()  # the layout check, once per Storage
        counting.round_trips = 0
        memory = storage.memory
        page = await memory.list_resources(page=1, per_page=7)
        assert counting.round_trips == 1
        assert [r.id for r in page.items] == [f"r{i:02}" for i in range(22, 15, -1)]
        assert (page.total, page.has_more) == (30, True)

    async def test_list_resources_refuses_bad_paging(self, store: Storage) -> None:
        with pytest.raises(ValidationError) as page_error:
            await store.memory.list_resources(page=-1)
        assert page_error.value.field == "page"
        for per_page in (0, 1001):
            with pytest.raises(ValidationError) as size_error:
                await store.memory.list_resources(per_page=per_page)
            assert size_error.value.field == "per_page"
