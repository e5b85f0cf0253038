"""kvstore studio: a local web page to look at what agents stored.

``kvstore studio`` (or ``python -m kvstore.studio``) serves it on http://127.0.0.1:8484
over any store URL: the overview (counts and the newest resources), resources with their
threads and working memory, threads as chats (tool calls, reasoning, both Mastra v2 and
OpenAI shapes), workflow runs with their snapshot trees, scores with their reasons and a
chart per scorer, and traces as waterfalls that refresh while a trace is being written.

It reads through the public API only, page by page, and never writes. It binds 127.0.0.1
by default; any other address needs a token. Needs the ``studio`` extra
(``pip install "kvstore[studio]"``): Starlette, uvicorn and Jinja2. The page's script and
stylesheet ship in the package: nothing is fetched from the network, nothing is built.

In Python::

    from kvstore.studio import StudioServer

    with StudioServer("redis://127.0.0.1:6379/0") as studio:
        print(studio.url)
"""

from __future__ import annotations

from kvstore._extras import require

require("starlette", "studio")
require("uvicorn", "studio")
require("jinja2", "studio")

from kvstore.studio._app import COOKIE, CSP, create_app  # noqa: E402
from kvstore.studio._cli import main  # noqa: E402
from kvstore.studio._server import DEFAULT_PORT, StudioServer, is_loopback  # noqa: E402

__all__ = ["COOKIE", "CSP", "DEFAULT_PORT", "StudioServer", "create_app", "is_loopback", "main"]
