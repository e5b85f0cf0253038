"""Fixtures of the studio's tests: stores with the demo's story and hostile strings, the
studio served in-process, and headless Chromium (Debian's package) through Playwright.

Without ``/usr/bin/chromium`` (or ``$CHROMIUM``) the browser tests skip, unless
``KVSTORE_REQUIRE_BROWSER=1`` or ``KVSTORE_REQUIRE_REDIS=1`` is set (as CI does): then
they fail. ``.ci/run`` installs the package when it is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from kvstore import Message, Resource, Score, Span, SpanEvent, SpanStatus, Storage, Thread
from kvstore.demo import run_demo
from kvstore.drivers import MemoryDriver

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from playwright.sync_api import Browser, Page

    from kvstore.studio import StudioServer

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = "1" in (
    os.environ.get("KVSTORE_REQUIRE_BROWSER"),
    os.environ.get("KVSTORE_REQUIRE_REDIS"),
)
# This suite's own database on the server behind REDIS_URL (see tests/conftest.py).
STUDIO_DB = 14

#: Hostile strings stored everywhere a string can go: each must show as text.
XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
XSS_ID = 'evil"><script>window.__pwned = 3</script>'
T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


async def fill_hostile(store: Storage) -> None:
    """Records whose every string field holds markup."""
    await store.memory.save_resource(Resource(id=XSS_ID, working_memory=XSS, metadata={XSS: XSS}))
    await store.memory.save_thread(
        Thread(id="xss", resource_id=XSS_ID, title=XSS, metadata={XSS: XSS}, created_at=T0)
    )
    await store.memory.save_messages(
        [
            Message(id="xss-1", thread_id="xss", role="user", content=XSS, created_at=T0),
            Message(
                id="xss-2",
                thread_id="xss",
                role="assistant",
                content={
                    "format": 2,
                    "parts": [
                        {"type": "reasoning", "reasoning": XSS},
                        {
                            "type": "tool-invocation",
                            "toolInvocation": {
                                "state": "result",
                                "toolCallId": XSS,
                                "toolName": XSS,
                                "args": {XSS: XSS},
                                "result": XSS,
                            },
                        },
                    ],
                },
                metadata={XSS: XSS},
                created_at=T0 + timedelta(seconds=1),
            ),
        ]
    )
    await store.workflows.persist_snapshot(
        XSS, XSS_ID, {XSS: [XSS]}, resource_id=XSS_ID, status=XSS
    )
    await store.workflows.update_step_result(XSS, XSS_ID, XSS, {"status": XSS, "error": XSS})
    await store.evals.save_score(
        Score(id="xss-score", scorer_id=XSS, score=0.5, reason=XSS, input=XSS, output={XSS: XSS})
    )
    await store.traces.save_spans(
        [
            Span(
                trace_id="xss-trace",
                span_id="root",
                name=XSS,
                start_time=T0,
                end_time=T0 + timedelta(seconds=1),
                attributes={XSS: XSS},
                events=[SpanEvent(name=XSS, timestamp=T0, attributes={XSS: XSS})],
                status=SpanStatus(code="error", message=XSS),
            )
        ]
    )


def story_driver() -> MemoryDriver:
    """A memory driver holding the demo's story and the hostile records."""
    driver = MemoryDriver()

    async def fill() -> None:
        store = Storage(driver)
        await run_demo(store, io.StringIO())
        await fill_hostile(store)

    run_async(fill)
    return driver


def run_async(function: Callable[[], Awaitable[Any]]) -> Any:
    """``anyio.run(function)`` on a thread of its own (Playwright's sync API keeps an event
    loop on the test's thread); its result, or its exception raised here."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = anyio.run(function)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture(scope="session")
def story() -> MemoryDriver:
    """The demo's story and the hostile records, shared read-only by the session."""
    return story_driver()


@pytest.fixture(scope="session")
def studio(story: MemoryDriver) -> Iterator[StudioServer]:
    """The studio on :func:`story`, on a free loopback port."""
    from kvstore.studio import StudioServer

    with StudioServer(Storage(story)) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, for one test module: Playwright's sync API runs an event loop on this
    thread while it is open, and async tests elsewhere need the thread's loop free."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that fails the test on any script error or CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: Any) -> None:
        # An error page's own status is reported too ("Failed to load resource"): the tests
        # check those pages themselves. Anything else (a CSP refusal) is a problem.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console error: {message.text}")

    tab.on("console", console)
    yield tab
    context.close()
    assert problems == []
