"""The ``kvstore`` group, its own commands (``demo``, ``serve-upstash``), and error handling."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

import kvstore
from kvstore._local import URL_ENV
from kvstore.cli import _inspect, _transfer
from kvstore.cli._common import CLIError, err, fail, open_store, resolve_url, run, store_options
from kvstore.demo import run_demo
from kvstore.errors import KVStoreError
from kvstore.transfer import DumpError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(kvstore.__version__, prog_name="kvstore")
def cli() -> None:
    """kvstore: the storage layer for AI agents, from the command line.

    Inspect what agents stored, export and import it, and migrate between backends
    (a local file, Redis, Redis Cluster, Upstash).
    """


@cli.command()
@store_options
def demo(*, url: str | None, namespace: str) -> None:
    """Play an agent-like session (threads, a tool call, working memory) and print it."""
    store_url = resolve_url(url)

    async def main() -> None:
        async with open_store(store_url, namespace) as store:
            await run_demo(store, sys.stdout)
        if store_url.rstrip("/") != "memory:":  # nothing to look at in a store that is gone
            err.print(
                "\nLook around: kvstore studio (a web page) | kvstore threads alice | "
                "kvstore messages alice-travel --last 5",
                markup=False,
            )

    run(main)


@cli.command("serve-upstash")
@click.option(
    "--backend",
    metavar="URL",
    envvar=URL_ENV,
    default=None,
    help=f"Where the server keeps data: a store URL "
    f"[default: ${URL_ENV}, else the local file memory://.kvstore/kvstore.aof]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8079, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="UPSTASH_REDIS_REST_TOKEN",
    default=None,
    help="Bearer token clients must send [default: $UPSTASH_REDIS_REST_TOKEN, else random].",
)
def serve_upstash(*, backend: str | None, host: str, port: int, token: str | None) -> int:
    """Serve the Upstash REST protocol locally (for development and tests)."""
    try:
        from kvstore.upstash_server import main as serve
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    args = ["--host", host, "--port", str(port), "--backing", resolve_url(backend)]
    if token:
        args += ["--token", token]
    return serve(args)


@cli.command()
@store_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8484, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="KVSTORE_STUDIO_TOKEN",
    default=None,
    help="Every request must carry it; needed to listen beyond loopback "
    "[env: KVSTORE_STUDIO_TOKEN].",
)
def studio(*, url: str | None, namespace: str, host: str, port: int, token: str | None) -> int:
    """Serve a read-only web page over the store: threads, runs, scores, trace waterfalls."""
    try:
        from kvstore.studio import _cli
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    return _cli.serve(resolve_url(url), namespace=namespace, host=host, port=port, token=token)


for _command in (*_inspect.COMMANDS, *_transfer.COMMANDS):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv``; return the exit status (see :mod:`kvstore.cli`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="kvstore", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "kvstore"
        fail(f"{exc.format_message()} (see '{where} --help')")
        return 2
    except click.ClickException as exc:
        fail(exc.format_message())
        return exc.exit_code
    except click.Abort:
        fail("interrupted")
        return 130
    except CLIError as exc:
        fail(str(exc))
        return exc.exit_code
    except (KVStoreError, DumpError) as exc:
        # Failures of the store or of the input, not of kvstore: no traceback.
        fail(str(exc))
        return 1
    return result if isinstance(result, int) else 0
