"""The studio over HTTP, without a browser: every page, the safety rules, errors, and the
work each page does (round trips and Redis commands, never timings)."""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from benchmarks.studio import PAGES, fill_large
from kvstore import Message, Storage, Thread
from kvstore.drivers import MemoryDriver
from kvstore.studio import COOKIE, CSP, StudioServer, create_app
from kvstore.transfer import digest_records
from tests.studio.conftest import XSS, XSS_ID
from tests.support.counting import CountingDriver

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from starlette.applications import Starlette

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client(app: Starlette, host: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


@pytest.fixture
async def http(story: MemoryDriver) -> AsyncIterator[httpx.AsyncClient]:
    async with client(create_app(Storage(story))) as c:
        yield c


async def trace_ids(store: Storage) -> list[str]:
    return [t.trace_id for t in (await store.traces.list_traces(per_page=100)).items]


async def every_page(store: Storage) -> list[str]:
    """An address of every kind of page, for the story's store."""
    travel = (await store.traces.list_traces(name="travel-agent.generate")).items[0].trace_id
    return [
        "/",
        "/?page=1",
        "/go?q=alice-weather",
        "/resource?id=alice",
        "/resource?id=bob&page=0",
        "/thread?id=alice-weather",
        "/thread?id=alice-travel&page=1&per_page=2",
        "/runs",
        "/runs?workflow=trip-booking&status=suspended&resource=bob",
        "/run?workflow=trip-booking&id=trip-alice-lisbon",
        "/run?id=trip-bob-paris",
        "/run.json?workflow=trip-booking&id=trip-alice-lisbon",
        "/scores",
        "/scores?scorer=answer-relevancy&source=live&entity_type=agent&entity_id=weather-agent",
        "/scores?run=call-03",
        "/scores?scorer=answer-relevancy&since=2026-03-14T00:00&until=1h",
        "/scores?min=0.5&max=1&source=live",
        "/score?id=demo-relevancy-03",
        "/traces",
        "/traces?name=weather-agent.generate&attr=user.id%3Dalice&since=2026-03-14T00:00",
        f"/trace?id={travel}",
        f"/trace?id={travel}&span=nope",
        "/static/studio.css",
        "/static/studio.js",
        "/static/favicon.svg",
    ]


# -- what the pages show ------------------------------------------------------------------------


async def test_every_page_answers_with_the_safety_headers(
    http: httpx.AsyncClient, story: MemoryDriver
) -> None:
    for path in await every_page(Storage(story)):
        response = await http.get(path)
        assert response.status_code in (200, 303), (path, response.text[:500])
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert re.fullmatch(r"app;dur=\d+\.\d\d", response.headers["server-timing"])
        if response.headers.get("content-type", "").startswith("text/html"):
            assert "<script>" not in response.text  # no inline script, ever
            assert " style=" not in response.text  # no inline style (the CSP forbids it)
            assert response.headers["cache-control"] == "no-store"


async def test_the_csp_allows_only_the_studios_own_files() -> None:
    assert "script-src 'self'" in CSP
    assert "default-src 'none'" in CSP
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval" not in CSP


async def test_the_scores_page_filters_by_time_and_score(
    http: httpx.AsyncClient, story: MemoryDriver
) -> None:
    evals = Storage(story).evals
    every = await evals.list_scores(per_page=1000)
    middle = sorted(s.score for s in every.items)[len(every.items) // 2]
    moment = sorted(s.created_at for s in every.items)[len(every.items) // 2]
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({"min": repr(middle)}, {"min_score": middle}),
        ({"max": repr(middle), "source": "live"}, {"max_score": middle, "source": "live"}),
        ({"until": moment.isoformat()}, {"to_date": moment}),
    ]
    totals = set()
    for query, filters in cases:
        expected = await evals.list_scores(**filters)
        totals.add(expected.total)
        response = await http.get("/scores", params=query)
        assert response.status_code == 200, response.text
        assert f'<span class="count">{expected.total} ' in response.text, query
    assert 0 not in totals
    assert every.total not in totals


async def test_the_overview_counts_each_kind(http: httpx.AsyncClient) -> None:
    text = (await http.get("/")).text
    counts = dict(
        re.findall(r'data-kind="(\w+)">\s*(?:<a[^>]*>)?\s*<span class="n">([\d,]+)</span>', text)
    )
    assert counts == {"resources": "3", "threads": "4", "runs": "4", "scores": "21", "traces": "4"}


async def test_go_opens_whatever_has_the_id(http: httpx.AsyncClient, story: MemoryDriver) -> None:
    travel = (await trace_ids(Storage(story)))[0]
    expected = {
        "alice-weather": "/thread?id=alice-weather",
        travel: f"/trace?id={travel}",
        "trip-bob-paris": "/run?workflow=trip-booking&id=trip-bob-paris",
        "demo-relevancy-03": "/score?id=demo-relevancy-03",
        "alice": "/resource?id=alice",
    }
    for query, target in expected.items():
        response = await http.get("/go", params={"q": query})
        assert (response.status_code, response.headers["location"]) == (303, target)


async def test_a_resource_without_a_record_still_shows_its_threads() -> None:
    store = Storage()
    await store.memory.save_thread(Thread(id="t", resource_id="no-record", title="Lonely"))
    async with client(create_app(store)) as http:
        page = await http.get("/resource", params={"id": "no-record"})
    assert page.status_code == 200
    assert "No resource record" in page.text
    assert "Lonely" in page.text


async def test_thread_pages_go_back_from_the_newest_messages() -> None:
    store = Storage()
    await store.memory.save_thread(Thread(id="long", resource_id="r"))
    await store.memory.save_messages(
        Message(id=f"m{i:03}", thread_id="long", role="user", content=f"message number {i}")
        for i in range(23)
    )
    async with client(create_app(store)) as http:
        seen = []
        for back in range(4):
            text = (await http.get(f"/thread?id=long&per_page=5&page={back}")).text
            seen.append(re.findall(r"message number (\d+)", text))
    assert seen == [
        ["18", "19", "20", "21", "22"],
        ["13", "14", "15", "16", "17"],
        ["8", "9", "10", "11", "12"],
        ["3", "4", "5", "6", "7"],
    ]
    # The oldest page holds what is left, and links no further.
    async with client(create_app(store)) as http:
        last = (await http.get("/thread?id=long&per_page=5&page=4")).text
    assert re.findall(r"message number (\d+)", last) == ["0", "1", "2"]
    assert 'rel="next"' not in last


async def test_every_stored_string_is_escaped(http: httpx.AsyncClient) -> None:
    pages = [
        "/",
        f"/resource?id={httpx.QueryParams({'x': XSS_ID})['x']}",
        "/thread?id=xss",
        "/runs",
        "/scores",
        "/score?id=xss-score",
        "/traces",
        "/trace?id=xss-trace",
    ]
    store_pages = [
        await http.get("/resource", params={"id": XSS_ID}),
        await http.get("/run", params={"workflow": XSS, "id": XSS_ID}),
        *[await http.get(p) for p in pages],
    ]
    for response in store_pages:
        assert response.status_code == 200, response.request.url
        assert "<script>window.__pwned" not in response.text
        assert "<img src=x" not in response.text
        assert 'evil"><script>' not in response.text
    thread = (await http.get("/thread?id=xss")).text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in thread
    # A step result is listed with the steps, escaped too.
    run = (await http.get("/run", params={"workflow": XSS, "id": XSS_ID})).text
    assert 'class="list steps"' in run


# -- the safety rules ---------------------------------------------------------------------------


async def test_no_route_changes_the_store(story: MemoryDriver) -> None:
    store = Storage(story)
    before = await digest_records(store)
    async with client(create_app(store)) as http:
        for path in await every_page(store):
            await http.get(path)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/", "/thread?id=alice-weather", "/run?id=trip-bob-paris", "/go?q=x"):
                response = await http.request(method, path)
                assert response.status_code == 405, (method, path)
                assert "read-only" in response.text
    assert await digest_records(store) == before


async def test_a_token_is_needed_on_every_request_when_set() -> None:
    app = create_app(Storage(), token="s3cret-token")
    async with client(app, host="studio.example") as http:
        for path in ("/", "/static/studio.css", "/thread?id=x", "/nothing"):
            refused = await http.get(path)
            assert refused.status_code == 401
            assert "s3cret" not in refused.text
        wrong = await http.get("/", params={"token": "guess"})
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers
        bearer = await http.get("/", headers={"Authorization": "Bearer s3cret-token"})
        assert bearer.status_code == 200
        # A first visit with ?token= sets the cookie and takes the token out of the address.
        first = await http.get("/runs", params={"status": "failed", "token": "s3cret-token"})
        assert first.status_code == 303
        assert first.headers["location"] == "/runs?status=failed"
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=s3cret-token;")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        http.cookies.set(COOKIE, "s3cret-token")
        assert (await http.get("/runs?status=failed")).status_code == 200
        http.cookies.set(COOKIE, "nope")
        assert (await http.get("/")).status_code == 401


async def test_the_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Storage(), token="s3cret-token")
    with caplog.at_level("DEBUG"):
        async with client(app) as http:
            await http.get("/", params={"token": "s3cret-token"})
            await http.get("/", params={"token": "wrong-s3cret"})
            await http.get("/", headers={"Authorization": "Bearer s3cret-token"})
    # The studio's and the server's loggers (the client's own log has the address it sent).
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert served  # the studio logs requests: by path only
    assert not any("s3cret" in r.getMessage() for r in served)


async def test_without_a_token_only_loopback_host_names_are_served() -> None:
    app = create_app(Storage())
    for host in ("127.0.0.1", "localhost", "[::1]", "127.0.0.1:8484", "[::1]:8484", "LOCALHOST"):
        async with client(app, host=host) as http:
            assert (await http.get("/")).status_code == 200, host
    for host in ("attacker.example", "127.0.0.1.attacker.example", "[::2]"):  # DNS rebinding
        async with client(app, host=host) as http:
            refused = await http.get("/")
            assert refused.status_code == 400, host
            assert refused.headers["content-security-policy"] == CSP


def test_any_other_address_needs_a_token() -> None:
    for host in ("0.0.0.0", "192.0.2.7", "::"):
        with pytest.raises(ValueError, match="token"):
            StudioServer(Storage(), host=host)
    StudioServer(Storage(), host="0.0.0.0", token="t")  # with a token it may


# -- errors are pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/thread?id=nope", "No thread &#39;nope&#39;"),
        ("/trace?id=nope", "No trace &#39;nope&#39;"),
        ("/run?id=nope", "No run &#39;nope&#39;"),
        ("/score?id=nope", "No score &#39;nope&#39;"),
        ("/resource?id=nope", "No resource &#39;nope&#39;"),
        ("/go?q=nope", "Nothing has the id"),
        ("/no/such/page", "no page at"),
        ("/static/nothing.js", "no page at"),
    ],
)
async def test_unknown_ids_and_addresses_are_404_pages(
    http: httpx.AsyncClient, path: str, text: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text
    assert text in response.text
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/thread", "lacks its &#39;id&#39;"),
        ("/runs?page=-1", "&#39;page&#39; must be from 0"),
        ("/thread?id=x&per_page=lots", "whole number"),
        ("/scores?run=r&scorer=s", "run_id"),
        ("/scores?entity_type=agent", "both its type and its id"),
        ("/scores?source=later", "live"),
        ("/scores?min=high", "must be a number"),
        ("/scores?min=0&since=2h", "min_score"),
        ("/traces?since=yesterday", "neither an ISO 8601 time nor an age"),
        ("/traces?attr=nokey", "key=value"),
    ],
)
async def test_bad_filters_are_400_pages(http: httpx.AsyncClient, path: str, text: str) -> None:
    response = await http.get(path)
    assert response.status_code == 400
    assert text in response.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_store_that_cannot_be_reached_gets_a_page_not_a_traceback() -> None:
    port = free_port()  # nothing listens there
    app = create_app(f"redis://:hunter2@127.0.0.1:{port}/0")
    async with app.router.lifespan_context(app), client(app) as http:
        for path in ("/", "/thread?id=t", "/traces"):
            response = await http.get(path)
            assert response.status_code == 503
            assert "The store cannot be reached" in response.text
            assert f"127.0.0.1:{port}" in response.text
            assert "hunter2" not in response.text  # the password is hidden
            assert "Traceback" not in response.text


async def test_a_store_that_cannot_be_opened_gets_a_page(tmp_path: Path) -> None:
    file = tmp_path / "held.aof"
    app = create_app(f"memory://{file}")
    async with app.router.lifespan_context(app), client(app) as http:
        async with MemoryDriver(file):  # another owner holds the file
            response = await http.get("/")
        assert response.status_code == 503
        assert "The store cannot be opened" in response.text
        # Once the file is free, the next request opens it.
        assert (await http.get("/")).status_code == 200


class _ExplodingDriver(CountingDriver):
    def count(self) -> None:
        raise RuntimeError("boom: a bug, not a store error")


async def test_a_crash_is_a_500_page_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Storage(_ExplodingDriver(MemoryDriver())))
    async with client(app) as http:
        response = await http.get("/thread?id=t")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "boom" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["content-security-policy"] == CSP
    assert any(r.exc_info for r in caplog.records if r.name == "kvstore.studio")


# -- each page reads only what it shows ---------------------------------------------------------


async def test_each_page_makes_a_fixed_number_of_round_trips(story: MemoryDriver) -> None:
    """The same round trips on a small store and on one with many more records."""
    costs = []
    for size in (200, 4_000):  # page 1 of the thread reads one page of 50 in both
        driver = MemoryDriver()
        await fill_large(Storage(driver), messages=size, runs=size // 10, traces=size // 10)
        counting = CountingDriver(driver)
        app = create_app(Storage(counting))
        rows = []
        async with client(app) as http:
            for path in PAGES:
                before = counting.round_trips
                response = await http.get(path)
                assert response.status_code == 200, (path, response.text[:300])
                rows.append(counting.round_trips - before)
        costs.append(rows)
    assert costs[0] == costs[1]
    assert max(costs[0]) <= 6
