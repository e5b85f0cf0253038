"""The layout record: written on a namespace's first use, checked on every Storage's first
call, before anything is read or written."""

from __future__ import annotations

import msgspec
import pytest

from kvstore import LayoutError, Storage, Thread
from kvstore.drivers import MemoryDriver
from kvstore.keys import LAYOUT_VERSION, Keys
from tests.support.counting import CountingDriver

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_new_namespace_records_its_layout_buckets_and_codec() -> None:
    driver = MemoryDriver()
    store = Storage(driver, namespace="app", buckets=4)
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    (raw,) = await driver.execute([("GET", Keys("app").layout)])
    assert msgspec.json.decode(raw) == {"layout": LAYOUT_VERSION, "buckets": 4, "codec": "json"}


async def test_a_store_takes_the_recorded_buckets_unless_told_otherwise() -> None:
    driver = MemoryDriver()
    await Storage(driver, namespace="app", buckets=4).memory.save_thread(
        Thread(id="t", resource_id="r")
    )
    reopened = Storage(driver, namespace="app")
    assert (await reopened.keys()).buckets == 4
    assert await reopened.memory.get_thread("t") is not None
    with pytest.raises(LayoutError) as caught:
        await Storage(driver, namespace="app", buckets=2).memory.get_thread("t")
    assert "4 buckets" in str(caught.value)
    assert caught.value.found["buckets"] == 4


async def test_another_codec_is_refused_before_anything_is_read() -> None:
    driver = MemoryDriver()
    await Storage(driver, namespace="app").memory.save_thread(Thread(id="t", resource_id="r"))
    with pytest.raises(LayoutError) as caught:
        await Storage(driver, namespace="app", codec="msgpack").memory.get_thread("t")
    assert "'json'" in str(caught.value)


@pytest.mark.parametrize("version", [1, 3, 99])
async def test_another_layout_version_is_named_in_the_error(version: int) -> None:
    driver = MemoryDriver()
    await driver.execute([("SET", Keys("app").layout, f'{{"layout": {version}}}')])
    with pytest.raises(LayoutError) as caught:
        await Storage(driver, namespace="app").memory.list_threads("r")
    assert f"key layout {version}" in str(caught.value)
    assert caught.value.found["layout"] == version


async def test_an_unreadable_record_is_a_layout_error() -> None:
    driver = MemoryDriver()
    await driver.execute([("SET", Keys("app").layout, "garbage")])
    with pytest.raises(LayoutError, match="unreadable layout record"):
        await Storage(driver, namespace="app").memory.get_thread("t")


async def test_layout_1_data_is_recognised_and_left_untouched() -> None:
    driver = MemoryDriver()
    # What a layout-1 store held: every key under the namespace's hash tag.
    await driver.execute(
        [
            ("ZADD", "{app}:threads", 1, "t1"),
            ("HSET", "{app}:thread:t1", "_d", '{"id": "t1"}'),
        ]
    )
    before = await driver.execute([("DBSIZE",)])
    with pytest.raises(LayoutError) as caught:
        await Storage(driver, namespace="app").memory.save_thread(Thread(id="t", resource_id="r"))
    assert caught.value.found == {"layout": 1}
    assert "key layout 1" in str(caught.value)
    # Nothing was written: not even the record of layout 2.
    assert await driver.execute([("DBSIZE",)]) == before
    assert await driver.execute([("EXISTS", Keys("app").layout)]) == [0]


async def test_the_check_costs_one_round_trip_once_per_store() -> None:
    counting = CountingDriver(MemoryDriver())
    store = Storage(counting, namespace="app")
    await store.memory.save_thread(Thread(id="t", resource_id="r"))
    assert counting.round_trips == 2  # the check, then the call
    await store.memory.get_thread("t")
    assert counting.round_trips == 3
    other = Storage(counting, namespace="app")
    await other.memory.get_thread("t")
    assert counting.round_trips == 5


async def test_namespaces_keep_their_own_records() -> None:
    driver = MemoryDriver()
    await Storage(driver, namespace="a", buckets=2).memory.save_thread(
        Thread(id="t", resource_id="r")
    )
    await Storage(driver, namespace="b", buckets=8).memory.save_thread(
        Thread(id="t", resource_id="r")
    )
    assert (await Storage(driver, namespace="a").keys()).buckets == 2
    assert (await Storage(driver, namespace="b").keys()).buckets == 8


@pytest.mark.parametrize("buckets", [0, 1025, True, "2"])
def test_bad_bucket_counts_are_refused_when_the_store_is_made(buckets: object) -> None:
    with pytest.raises(ValueError, match="buckets"):
        Storage(MemoryDriver(), buckets=buckets)  # type: ignore[arg-type]
