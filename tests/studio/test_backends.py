"""The studio on every kind of backend, end to end in the browser: over a real Redis
(this suite's own database) and over Upstash through the local Upstash-protocol server."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from kvstore import Storage
from kvstore.demo import run_demo
from kvstore.studio import StudioServer
from tests.conftest import flush_db, redis_url_for_db
from tests.studio.conftest import STUDIO_DB, run_async

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

NAMESPACE = "studio-e2e"


def demo_into(url: str) -> None:
    async def play() -> None:
        async with Storage.from_url(url, namespace=NAMESPACE) as store:
            await run_demo(store, io.StringIO())

    run_async(play)


def click_through(page: Page, studio: StudioServer) -> None:
    """Overview → resource → thread → tool call; runs → run; scores; traces → waterfall."""
    page.goto(studio.url)
    expect(page.locator('[data-kind="traces"] .n')).to_have_text("3")
    page.locator("a.resource-link", has_text=re.compile("^alice$")).click()
    page.locator("a.thread-link", has_text="Weather").click()
    expect(page.locator("details.tool-call .tool-name").first).to_have_text("get_weather")
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.locator("table.runs tbody tr")).to_have_count(3)
    page.locator("a.run-link", has_text="trip-alice-lisbon").click()
    expect(page.locator(".run-version")).to_have_text("5")
    page.get_by_role("link", name="Scores", exact=True).click()
    expect(page.locator("svg.score-chart circle.point")).to_have_count(20)
    page.get_by_role("link", name="Traces", exact=True).click()
    page.locator("a.trace-link", has_text="travel-agent.generate").click()
    expect(page.locator(".wf-row")).to_have_count(9)
    expect(page.locator(".wf-row.error")).to_have_count(2)
    response = page.goto(studio.url + "thread?id=missing")
    assert response is not None
    assert response.status == 404


@pytest.fixture
def studio_redis_url(redis_server_url: str) -> Iterator[str]:
    url = redis_url_for_db(STUDIO_DB)
    flush_db(url)
    yield url
    flush_db(url)


@pytest.mark.redis
def test_the_studio_over_redis(page: Page, studio_redis_url: str) -> None:
    demo_into(studio_redis_url)
    with StudioServer(studio_redis_url, namespace=NAMESPACE) as studio:
        click_through(page, studio)


def test_the_studio_over_upstash(page: Page) -> None:
    from kvstore.upstash_server import UpstashServer

    with UpstashServer() as server:
        demo_into(server.driver_url)
        with StudioServer(server.driver_url, namespace=NAMESPACE) as studio:
            click_through(page, studio)
            # The page names the store without its token.
            expect(page.locator(".store")).not_to_contain_text(server.token)
