"""A local server that speaks the Upstash REST protocol, for development and tests.

No Upstash account needed: ``python -m kvstore.upstash_server`` serves the protocol on
``http://127.0.0.1:8079`` on top of an in-memory store (or a Redis, with ``--backing
redis://...``), and prints the ``UPSTASH_REDIS_REST_URL``/``UPSTASH_REDIS_REST_TOKEN`` pair
that :class:`~kvstore.drivers.upstash.UpstashDriver` and the upstash-redis SDK connect with.

In tests, run it in-process on an ephemeral port::

    with UpstashServer() as server:
        async with UpstashDriver(server.url, server.token) as driver:
            ...
        server.stats.usage().total_requests   # what the server was asked to do
        server.faults.inject(Fault.error(503))  # make the next request fail

Needs the ``server`` extra: ``pip install "kvstore[server]"``.
"""

from __future__ import annotations

from kvstore._extras import require

require("starlette", "server")
require("uvicorn", "server")

from kvstore.upstash_server._app import STATS_PATH, create_app  # noqa: E402
from kvstore.upstash_server._cli import main  # noqa: E402
from kvstore.upstash_server._faults import Fault, FaultPlan  # noqa: E402
from kvstore.upstash_server._server import (  # noqa: E402
    DEFAULT_MAX_REQUEST_SIZE,
    DEFAULT_PORT,
    UpstashServer,
)
from kvstore.upstash_server._stats import ServerStats, Usage  # noqa: E402

__all__ = [
    "DEFAULT_MAX_REQUEST_SIZE",
    "DEFAULT_PORT",
    "STATS_PATH",
    "Fault",
    "FaultPlan",
    "ServerStats",
    "UpstashServer",
    "Usage",
    "create_app",
    "main",
]
