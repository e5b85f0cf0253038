"""The studio in a real browser (headless Chromium through Playwright): click through every
view and check what a person sees, not pixels."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from kvstore import Span, SpanStatus, Storage, SyncStorage
from kvstore.drivers import MemoryDriver
from kvstore.studio import StudioServer
from tests.studio.conftest import XSS, XSS_ID

if TYPE_CHECKING:
    from playwright.sync_api import Page


def reader(driver: MemoryDriver) -> SyncStorage:
    """Another view of the same data, to compare the pages with (never closes ``driver``)."""
    return SyncStorage(driver, owns_driver=False)


def test_resource_thread_and_a_tool_call(page: Page, studio: StudioServer) -> None:
    page.goto(studio.url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.locator("a.resource-link", has_text=re.compile(r"^alice$")).click()
    expect(page.get_by_role("heading", name="Resource alice")).to_be_visible()
    expect(page.locator(".working-memory")).to_contain_text("cycles to work")
    page.locator("a.thread-link", has_text="Weather").click()
    expect(page).to_have_url(re.compile(r"/thread\?id=alice-weather$"))

    messages = page.locator("ol.chat > li.msg")
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_contain_text("What's the weather in Zürich?")
    # OpenAI: the call with its arguments, then the tool's answer naming the call.
    call = messages.nth(1).locator("details.tool-call")
    expect(call.locator(".tool-name")).to_have_text("get_weather")
    expect(call.locator(".tool-args")).to_contain_text('city: "Zürich"')
    expect(messages.nth(1).locator(".shape")).to_have_text("OpenAI")
    result = messages.nth(2).locator("details.tool-result-part")
    expect(result).to_contain_text("Result of get_weather")
    expect(result).to_contain_text("temp_c: 3")
    # Mastra v2: reasoning folded until opened, the tool call with its result, the text.
    mastra = messages.nth(3)
    expect(mastra.locator(".shape")).to_have_text("Mastra v2")
    reasoning = mastra.locator("details.reasoning")
    expect(reasoning.get_by_text("suggest a rain jacket")).to_be_hidden()
    reasoning.locator("summary").click()
    expect(reasoning.get_by_text("suggest a rain jacket")).to_be_visible()
    expect(mastra.locator(".tool-result")).to_contain_text("rain: 0.8")
    expect(mastra.locator(".part.text")).to_have_text(
        "3°C with a good chance of rain: take a rain jacket."
    )
    # Folding a tool call hides its arguments.
    mastra.locator("details.tool-call > summary").click()
    expect(mastra.locator(".tool-args")).to_be_hidden()


def test_paging_back_through_a_long_thread(page: Page, studio: StudioServer) -> None:
    page.goto(f"{studio.url}thread?id=alice-travel&per_page=3")
    expect(page.locator("li.msg")).to_have_count(3)
    expect(page.locator("li.msg").first).to_contain_text("Done: the 08:12")
    page.locator("a[rel=next]").first.click()
    expect(page.locator("li.msg")).to_have_count(1)
    expect(page.locator("li.msg")).to_contain_text("Book me a train to Lisbon")
    page.locator("a[rel=prev]").first.click()
    expect(page.locator("li.msg")).to_have_count(3)


def test_a_runs_snapshot_tree(page: Page, studio: StudioServer) -> None:
    page.goto(studio.url)
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_label("status").fill("suspended")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(1)
    rows.locator("a.run-link").click()
    expect(page.get_by_role("heading", name=re.compile("Run trip-bob-paris"))).to_be_visible()
    expect(page.locator(".run-status")).to_have_text("suspended")
    expect(page.locator(".run-version")).to_have_text("1")
    expect(page.locator("tr.step-suspended")).to_contain_text("approve")

    tree = page.locator(".snapshot .json-tree")
    price = tree.get_by_text("189.5")
    expect(price).to_be_hidden()  # nested below the first level: folded
    context = tree.locator("summary", has=page.locator(".jk", has_text=re.compile("^context$")))
    context.click()
    search = tree.locator("summary", has=page.locator(".jk", has_text="search-trains"))
    search.click()
    expect(tree.get_by_text('"success"').first).to_be_visible()
    page.get_by_role("button", name="Expand all").click()
    expect(price).to_be_visible()
    page.get_by_role("button", name="Collapse all").click()
    expect(price).to_be_hidden()


def test_a_scorers_chart(page: Page, studio: StudioServer, story: MemoryDriver) -> None:
    with reader(story) as store:
        stored = {
            s.id: s.score
            for s in store.evals.list_scores(scorer_id="answer-relevancy", per_page=100).items
        }
    page.goto(f"{studio.url}scores")
    expect(page.locator("svg.score-chart g.series")).to_have_count(3)  # the XSS scorer too
    page.locator(".legend a", has_text="answer-relevancy").click()
    expect(page).to_have_url(re.compile(r"scorer=answer-relevancy"))
    series = page.locator("svg.score-chart g.series")
    expect(series).to_have_count(1)
    points = series.locator("circle.point")
    expect(points).to_have_count(10)
    shown = {
        p.get_attribute("data-id"): float(p.get_attribute("data-score") or "nan")
        for p in points.all()
    }
    assert shown == stored
    # Higher scores sit higher; time runs left to right.
    boxes = [(p.bounding_box(), float(p.get_attribute("data-score") or 0)) for p in points.all()]
    assert all(box is not None for box, _ in boxes)
    by_score = sorted(boxes, key=lambda b: b[1])
    ys = [box["y"] for box, _ in by_score if box]
    assert ys == sorted(ys, reverse=True)
    xs = [box["x"] for box, _ in boxes if box]
    assert xs == sorted(xs)
    # The low score explains itself.
    page.locator('circle.point[data-score="0.2"]').click()
    expect(page.locator(".reason")).to_contain_text("gives advice but not the temperature")
    expect(page.locator(".score-input")).to_contain_text("What's the weather in Zürich?")
    expect(page.locator(".score-output")).to_contain_text("Take a rain jacket.")


def test_a_traces_waterfall_matches_its_spans(
    page: Page, studio: StudioServer, story: MemoryDriver
) -> None:
    with reader(story) as store:
        (summary,) = store.traces.list_traces(name="travel-agent.generate").items
        spans = {s.span_id: s for s in store.traces.get_trace(summary.trace_id)}
    start = min(s.start_time for s in spans.values())
    end = max(s.end_time or s.start_time for s in spans.values())
    total = (end - start) / timedelta(microseconds=1)

    page.goto(f"{studio.url}traces")
    page.get_by_label("root span name").fill("travel-agent.generate")
    page.get_by_role("button", name="Filter").click()
    page.locator("a.trace-link").click()
    rows = page.locator(".wf-row")
    expect(rows).to_have_count(len(spans))

    track_box = rows.first.locator("svg.wf-track").bounding_box()
    assert track_box is not None
    for row in rows.all():
        span = spans[row.get_attribute("data-span-id") or ""]
        assert span.end_time is not None
        offset = (span.start_time - start) / timedelta(microseconds=1)
        took = (span.end_time - span.start_time) / timedelta(microseconds=1)
        assert row.get_attribute("data-start-us") == str(int(offset))
        assert row.get_attribute("data-duration-us") == str(int(took))
        bar = row.locator("rect.bar").bounding_box()
        assert bar is not None
        # Where a person sees the bar: placed and sized by the span's start and duration.
        assert bar["x"] - track_box["x"] == pytest.approx(
            offset / total * track_box["width"], abs=1.5
        )
        assert bar["width"] == pytest.approx(
            max(took / total * track_box["width"], 0.0015 * track_box["width"]), abs=1.5
        )
        # Nested by parent, errors marked.
        depth = 0
        parent = span.parent_span_id
        while parent is not None:
            depth, parent = depth + 1, spans[parent].parent_span_id
        assert row.get_attribute("data-depth") == str(depth)
        marked = row.locator(".err-mark")
        if span.status.code == "error":
            expect(marked).to_be_visible()
            assert "error" in (row.get_attribute("class") or "")
        else:
            expect(marked).to_have_count(0)
    # Children are listed under their parent.
    order = [row.get_attribute("data-span-id") for row in rows.all()]
    for span in spans.values():
        if span.parent_span_id is not None:
            assert order.index(span.parent_span_id) < order.index(span.span_id)
    expect(page.locator(".trace-errors")).to_have_text("2 errors")

    # A click shows the span's attributes and events.
    failed = next(s for s in spans.values() if s.name == "tool.book_train" and s.events)
    expect(page.locator(".span-detail:visible")).to_have_count(0)
    page.locator(f'.wf-row[data-span-id="{failed.span_id}"]').click()
    detail = page.locator(".span-detail:visible")
    expect(detail).to_have_count(1)
    expect(detail.locator("h2")).to_contain_text("tool.book_train")
    expect(detail.locator("table.attrs").first).to_contain_text('{"seat": "41"}')
    expect(detail.locator(".events")).to_contain_text("exception")
    expect(detail.locator(".events")).to_contain_text("seat 41 is taken")
    expect(detail.locator(".status-message")).to_have_text("SeatUnavailable: seat 41 is taken")
    expect(page).to_have_url(re.compile(f"span={failed.span_id}"))
    # Another click, another span.
    root = next(s for s in spans.values() if s.parent_span_id is None)
    page.locator(f'.wf-row[data-span-id="{root.span_id}"]').click()
    expect(page.locator(".span-detail:visible h2")).to_have_text(root.name)


def test_stored_markup_shows_as_text(page: Page, studio: StudioServer) -> None:
    from urllib.parse import quote

    addresses = [
        "",
        "thread?id=xss",
        f"resource?id={quote(XSS_ID)}",
        f"run?workflow={quote(XSS)}&id={quote(XSS_ID)}",
        "runs",
        "scores",
        "score?id=xss-score",
        "traces",
        "trace?id=xss-trace&span=root",
    ]
    for address in addresses:
        page.goto(studio.url + address)
        expect(page.locator("main")).to_be_visible()
        assert page.evaluate("window.__pwned") is None, address
        expect(page.locator("img")).to_have_count(0)
        scripts = page.locator("script")
        expect(scripts).to_have_count(1)  # the studio's own
        assert scripts.get_attribute("src") == "/static/studio.js"
    page.goto(studio.url + "thread?id=xss")
    expect(page.locator("li.msg").first.locator(".part.text")).to_have_text(XSS)
    expect(page.locator("h1")).to_contain_text(XSS)
    page.goto(studio.url + "trace?id=xss-trace&span=root")
    expect(page.locator(".span-detail:visible .status-message")).to_have_text(XSS)


def test_unknown_ids_and_addresses_are_404_pages(page: Page, studio: StudioServer) -> None:
    cases = {
        "thread?id=no-such-thread": "No thread 'no-such-thread'.",
        "trace?id=no-such-trace": "No trace 'no-such-trace'.",
        "run?id=no-such-run": "No run 'no-such-run'.",
        "score?id=no-such-score": "No score 'no-such-score'.",
        "elsewhere": "The studio has no page at '/elsewhere'.",
    }
    for address, message in cases.items():
        response = page.goto(studio.url + address)
        assert response is not None
        assert response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.locator(".message")).to_have_text(message)
    # The id box finds nothing too, and says so.
    page.goto(studio.url)
    page.get_by_label("Open an id").fill("nothing-has-this-id")
    page.get_by_label("Open an id").press("Enter")
    expect(page.locator(".message")).to_contain_text("Nothing has the id 'nothing-has-this-id'")
    # ... and opens what it finds.
    page.get_by_label("Open an id").fill("trip-alice-lisbon")
    page.get_by_label("Open an id").press("Enter")
    expect(page.locator(".run-status")).to_have_text("success")


def test_a_store_that_cannot_be_reached_says_so(page: Page) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with StudioServer(f"redis://127.0.0.1:{port}/0") as studio:
        response = page.goto(studio.url + "traces")
        assert response is not None
        assert response.status == 503
        expect(page.get_by_role("heading", name="The store cannot be reached")).to_be_visible()
        expect(page.locator(".message")).to_contain_text(f"127.0.0.1:{port}")
        expect(page.locator("body")).not_to_contain_text("Traceback")


def test_a_trace_being_written_refreshes_by_itself(page: Page) -> None:
    driver = MemoryDriver()
    now = datetime.now(UTC)

    def span(span_id: str, parent: str | None, ms: int, **kw: object) -> Span:
        return Span(
            trace_id="live",
            span_id=span_id,
            parent_span_id=parent,
            name=f"step {span_id}",
            start_time=now + timedelta(milliseconds=ms),
            end_time=now + timedelta(milliseconds=ms + 40),
            **kw,  # type: ignore[arg-type]
        )

    with reader(driver) as store, StudioServer(Storage(driver)) as studio:
        # An exporter sends children first: the root is not stored yet.
        store.traces.save_spans([span("a", "root", 10), span("b", "a", 20)])
        page.goto(f"{studio.url}trace?id=live")
        expect(page.locator(".badge.live")).to_be_visible()
        expect(page.locator(".wf-row")).to_have_count(2)
        page.locator('.wf-row[data-span-id="b"]').click()
        store.traces.save_spans([span("c", "root", 60, status=SpanStatus(code="error"))])
        expect(page.locator(".wf-row")).to_have_count(3, timeout=15_000)
        expect(page.locator(".wf-row.error")).to_have_count(1)
        # The span the person had open stays open across refreshes.
        expect(page.locator(".span-detail:visible h2")).to_have_text("step b")
        root = Span(
            trace_id="live",
            span_id="root",
            name="request",
            start_time=now,
            end_time=now + timedelta(milliseconds=120),
        )
        store.traces.save_spans([root])
        expect(page.locator(".wf-row")).to_have_count(4, timeout=15_000)
        expect(page.locator(".badge.live")).to_have_count(0, timeout=15_000)
        expect(page.locator('.wf-row[data-span-id="root"]')).to_have_attribute("data-depth", "0")


def test_a_token_in_the_browser(page: Page, story: MemoryDriver) -> None:
    with StudioServer(Storage(story), token="open-sesame") as studio:
        refused = page.goto(studio.url)
        assert refused is not None
        assert refused.status == 401
        expect(page.get_by_role("heading", name="Token needed")).to_be_visible()
        page.goto(studio.url_with_token())
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        assert "token" not in page.url  # taken out of the address (and the history)
        page.get_by_role("link", name="Traces", exact=True).click()
        expect(page.locator("table.traces tbody tr").first).to_be_visible()
        expect(page.locator("link[rel=stylesheet]")).to_have_count(1)
        # The stylesheet came through too (the cookie goes with every request).
        color = page.evaluate("getComputedStyle(document.querySelector('.top')).display")
        assert color == "flex"
