"""The studio's command line: ``python -m kvstore.studio`` and ``kvstore studio``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from kvstore._local import URL_ENV, default_url, describe_url
from kvstore.studio._server import DEFAULT_PORT, StudioServer

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TOKEN_ENV", "main", "serve"]

TOKEN_ENV = "KVSTORE_STUDIO_TOKEN"
_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "upstash",
    "upstash+http",
    "upstash+https",
)


def serve(
    url: str,
    *,
    namespace: str = "kv",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> int:
    """Serve the studio until interrupted; return the exit status.

    Problems are one line on stderr: a non-loopback address without a token, an unknown
    URL scheme, a port in use. A store that cannot be reached is not one: the pages say so.
    """
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        shown = scheme if "://" in url else url[:20]
        print(f"error: not a store URL: {shown!r}", file=sys.stderr)
        return 1
    try:
        server = StudioServer(url, namespace=namespace, host=host, port=port, token=token)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def announce() -> None:
        print(f"kvstore studio: {describe_url(url)}, namespace {namespace!r}", flush=True)
        if token:
            print(f"  open {server.url}?token=<your token> once (then a cookie keeps it)")
        else:
            print(f"  open {server.url}", flush=True)
        print("  read-only; Ctrl+C stops it", flush=True)

    try:
        server.run(on_started=announce)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kvstore.studio [--url URL] [-n NS] [--host H] [--port P] [--token T]``."""
    parser = argparse.ArgumentParser(
        prog="python -m kvstore.studio",
        description="Serve kvstore studio: a read-only web page over a store.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or None,
        help=f"the store (default: ${URL_ENV}, else the local file {default_url()})",
    )
    parser.add_argument("-n", "--namespace", default=os.environ.get("KVSTORE_NAMESPACE") or "kv")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"every request must carry it; needed beyond loopback (default: ${TOKEN_ENV})",
    )
    options = parser.parse_args(argv)
    url = options.url
    if not url:
        url = default_url()
        print(f"kvstore: using {describe_url(url)}", file=sys.stderr)
    return serve(
        url, namespace=options.namespace, host=options.host, port=options.port, token=options.token
    )
