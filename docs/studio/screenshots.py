"""Screenshots of kvstore studio's main views, for the README.

    .venv/bin/python docs/studio/screenshots.py [--out docs/studio]

Does what ``kvstore demo && kvstore studio`` does, in a scratch directory: the demo into
the default local file, the studio over it on a free loopback port. Then it photographs
each view with headless Chromium through Playwright: Debian's ``chromium`` package
(``apt-get install -y chromium``), or the browser named by ``$CHROMIUM``. Nothing is
fetched from the network.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import anyio
from playwright.sync_api import Page, sync_playwright

from kvstore import Storage
from kvstore._local import default_url
from kvstore.demo import run_demo
from kvstore.studio import StudioServer

HERE = Path(__file__).parent
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


def _demo(url: str) -> str:
    """Play the demo into ``url``; return the id of the trace with a failed tool call."""

    async def play() -> str:
        async with Storage.from_url(url) as store:
            await run_demo(store, io.StringIO())
            listing = await store.traces.list_traces(name="travel-agent.generate")
            return listing.items[0].trace_id

    return anyio.run(play)


def shoot(out: Path) -> list[Path]:
    """Save the PNGs in ``out``; return their paths."""
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    # What `kvstore demo && kvstore studio` does, in a scratch directory.
    os.chdir(tempfile.mkdtemp(prefix="kvstore-studio-"))
    url = default_url()
    travel = _demo(url)
    saved: list[Path] = []
    with StudioServer(url) as studio, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
        base = studio.url.rstrip("/")

        def snap(name: str, path: str, prepare: object = None, *, full: bool = True) -> None:
            page.goto(base + path)
            if callable(prepare):
                prepare(page)
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=full)
            saved.append(target)

        def open_reasoning(p: Page) -> None:
            for summary in p.locator("details.reasoning > summary").all():
                summary.click()

        def expand_tree(p: Page) -> None:
            p.get_by_role("button", name="Expand all").click()

        def click_failed_span(p: Page) -> None:
            p.locator(".wf-row.error").first.click()

        snap("overview", "/")
        snap("thread", "/thread?id=alice-weather", open_reasoning)
        snap("run", "/run?workflow=trip-booking&id=trip-bob-paris", expand_tree)
        snap("scores", "/scores")
        snap("score", "/score?id=demo-relevancy-03")
        snap("trace", f"/trace?id={quote(travel)}", click_failed_span)
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go (%(default)s)")
    for path in shoot(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
