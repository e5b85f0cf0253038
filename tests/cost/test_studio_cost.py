"""The studio's pages on a real server: the Redis commands each page costs (counting those
inside scripts) are the same on a small store and on a store 20 times larger."""

from __future__ import annotations

import httpx
import pytest

from benchmarks.studio import PAGES, fill_large
from kvstore import Storage
from tests.conftest import flush_db
from tests.cost.conftest import CountCommands

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_each_page_costs_the_same_whatever_is_stored(
    private_redis_url: str, count_commands: CountCommands
) -> None:
    from kvstore.studio import create_app

    flush_db(private_redis_url)
    costs = []
    # Both sizes fill every page, filtered ones included: 25 rows, 50 messages, a chart of
    # 200 scores.
    for namespace, size in (("small", 5_000), ("large", 25_000)):
        async with Storage.from_url(private_redis_url, namespace=namespace) as store:
            await fill_large(store, messages=size, runs=size // 10, traces=size // 10)
            app = create_app(store)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as http:
                for path in PAGES:  # load the scripts first
                    await http.get(path)
                costs.append({path: await count_commands(http.get(path)) for path in PAGES})
    flush_db(private_redis_url)
    assert costs[0] == costs[1]
    # Each page reads its page (25 rows, 50 messages, a chart of up to 200 scores), no more.
    assert max(costs[0].values()) <= 2 * 200 + 60
