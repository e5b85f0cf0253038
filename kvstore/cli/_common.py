"""What every command shares: the store options, opening a store, errors, consoles."""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import anyio
import click
from rich.console import Console

from kvstore._local import URL_ENV, default_url, describe_url
from kvstore.storage import Storage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = [
    "NAMESPACE_ENV",
    "CLIError",
    "err",
    "fail",
    "namespace_option",
    "one_line",
    "open_store",
    "out",
    "resolve_url",
    "run",
    "store_options",
    "url_option",
]

P = ParamSpec("P")
T = TypeVar("T")

NAMESPACE_ENV = "KVSTORE_NAMESPACE"

#: Command output (tables, records).
out = Console(highlight=False, soft_wrap=False)
#: Notes, progress bars and summaries, so that stdout stays data. Not wrapped: stderr is
#: often a log or a pipe, where rich assumes 80 columns and would cut a note's path in two.
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CLIError(Exception):
    """A failure to report in one line on stderr, without a traceback.

    Attributes:
        exit_code: The process's exit status.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def url_option(name: str = "--url", *, help_: str | None = None) -> Callable[[T], T]:
    """The option naming a store: ``$KVSTORE_URL`` by default, else the local file."""
    return click.option(  # type: ignore[return-value]
        name,
        "url",
        envvar=URL_ENV,
        default=None,
        metavar="URL",
        help=help_
        or f"The store: memory://<file>, redis://..., redis+cluster://..., upstash://... "
        f"[default: ${URL_ENV}, else the local file memory://.kvstore/kvstore.aof]",
    )


def namespace_option(default: str | None = "kv") -> Callable[[T], T]:
    """The ``--namespace`` option (``$KVSTORE_NAMESPACE``)."""
    return click.option(  # type: ignore[return-value]
        "--namespace",
        "-n",
        envvar=NAMESPACE_ENV,
        default=default,
        show_default=default is not None,
        help=f"The namespace (prefix of every key) [env: {NAMESPACE_ENV}].",
    )


def store_options(command: Callable[P, T]) -> Callable[P, T]:
    """Add ``--url`` and ``--namespace`` to a command."""
    return url_option()(namespace_option()(command))


def resolve_url(url: str | None) -> str:
    """``url``, or the default one, which is then named on stderr."""
    if url:
        return url
    url = default_url()
    err.print(f"kvstore: using {describe_url(url)}", markup=False)
    return url


@contextlib.asynccontextmanager
async def open_store(url: str, namespace: str) -> AsyncIterator[Storage]:
    """A store on ``url``, closed on exit; a bad URL or namespace is a :class:`CLIError`."""
    try:
        store = Storage.from_url(url, namespace=namespace)
    except (ValueError, ImportError) as exc:
        raise CLIError(str(exc)) from None
    async with store:
        yield store


def run(function: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run an async function to completion on asyncio (the Redis driver's event loop)."""
    return anyio.run(functools.partial(function, *args, **kwargs))


def one_line(message: str) -> str:
    """``message`` on one line: a newline in an id must not split an error in two."""
    return " ".join(message.split("\n")).strip()


def fail(message: str) -> None:
    """Write an error line to stderr."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
