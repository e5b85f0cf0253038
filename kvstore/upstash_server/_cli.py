"""The command line: ``python -m kvstore.upstash_server [options]``."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import TYPE_CHECKING

from kvstore.upstash_server._server import DEFAULT_MAX_REQUEST_SIZE, DEFAULT_PORT, UpstashServer

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

TOKEN_ENV = "UPSTASH_REDIS_REST_TOKEN"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the local Upstash-protocol server until interrupted; return the exit status.

    Args:
        argv: The arguments, without the program name (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m kvstore.upstash_server",
        description="Serve the Upstash REST protocol locally, on kvstore's memory "
        "store or a Redis server, for development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"bearer token clients must send (default: ${TOKEN_ENV}, else a random one)",
    )
    parser.add_argument(
        "--backing",
        default="memory",
        help="'memory' (default) or a storage URL such as redis://127.0.0.1:6379/0",
    )
    parser.add_argument(
        "--max-request-size",
        type=int,
        default=DEFAULT_MAX_REQUEST_SIZE,
        metavar="BYTES",
        help="larger request bodies get HTTP 413 (%(default)s)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (%(default)s)")
    options = parser.parse_args(argv)

    server = UpstashServer(
        backing=options.backing,
        token=options.token,
        host=options.host,
        port=options.port,
        max_request_size=options.max_request_size,
        log_level=options.log_level,
    )

    def announce() -> None:
        print(f"{UpstashServer.__name__} listening; connect with:", flush=True)
        print(f"  export UPSTASH_REDIS_REST_URL={server.url}", flush=True)
        if options.token is None:
            # Generated here, so the user has no other way to learn it.
            print(f"  export {TOKEN_ENV}={server.token}", flush=True)
        else:
            print(f"  export {TOKEN_ENV}=<the token you gave>", flush=True)
        if not _is_loopback(options.host):
            print("warning: listening beyond loopback without TLS", file=sys.stderr, flush=True)

    try:
        server.run(on_started=announce)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
