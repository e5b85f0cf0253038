"""Moving data: ``export``, ``import``, ``migrate``, ``verify``."""

from __future__ import annotations

import contextlib
import sys
from typing import IO, TYPE_CHECKING

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kvstore._local import describe_url
from kvstore.cli._common import (
    CLIError,
    err,
    namespace_option,
    open_store,
    out,
    resolve_url,
    run,
    store_options,
    url_option,
)
from kvstore.cli._render import checks_table, counts_table, show
from kvstore.transfer import (
    KIND_NAMES,
    Checkpoint,
    DumpReader,
    count_records,
    export_jsonl,
    migrate,
    verify,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kvstore.transfer import KindCheck, MigrationState

__all__ = ["COMMANDS"]

#: Where migrations keep their progress unless told otherwise.
DEFAULT_STATE = ".kvstore/migrate-state.json"
_batch_option = click.option(
    "--batch",
    default=200,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Records per round trip.",
)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )


@contextlib.contextmanager
def _opened(path: str, mode: str, stdio: IO[bytes]) -> Iterator[IO[bytes]]:
    """``path`` opened in binary ``mode``, or ``stdio`` for ``-``; an OSError is a CLIError."""
    if path == "-":
        yield stdio
        return
    try:
        f = open(path, mode)  # noqa: SIM115 - closed below, after the errors are translated
    except OSError as exc:
        raise CLIError(f"cannot open {path}: {exc.strerror or exc}") from None
    with f:
        yield f


@click.command("export")
@store_options
@click.option(
    "--output", "-o", default="-", metavar="FILE", help="Where to write [default: stdout]."
)
@_batch_option
def export_command(*, url: str | None, namespace: str, output: str, batch: int) -> None:
    """Write every record of a namespace as JSON lines (kvstore's export format)."""
    store_url = resolve_url(url)

    async def main() -> None:
        with _opened(output, "wb", sys.stdout.buffer) as f:
            async with open_store(store_url, namespace) as store:
                totals = await count_records(store)
                with _progress() as bar:
                    tasks = {k: bar.add_task(k, total=totals[k]) for k in KIND_NAMES}
                    digests = await export_jsonl(
                        store,
                        f,
                        chunk=batch,
                        on_progress=lambda kind, n: bar.update(tasks[kind], completed=n),
                    )
            f.flush()
        counts = ", ".join(f"{d.count:,} {k}" for k, d in digests.by_kind.items())
        err.print(f"exported {counts} from namespace {namespace!r}", markup=False)

    run(main)


@click.command("import")
@url_option()
@namespace_option(default=None)
@click.option(
    "--input", "-i", "input_", default="-", metavar="FILE", help="What to read [default: stdin]."
)
@_batch_option
def import_command(*, url: str | None, namespace: str | None, input_: str, batch: int) -> None:
    """Write the records of an export to a store (by default into the namespace it came from).

    Every line is decoded and validated; the import stops at the first bad line, naming it,
    with every record before it written. Importing a file twice changes nothing more.
    """
    store_url = resolve_url(url)

    if input_ == "-" and sys.stdin.isatty():
        err.print("kvstore: reading an export from the terminal (use -i FILE or < FILE)")

    async def main() -> None:
        with _opened(input_, "rb", sys.stdin.buffer) as f:
            reader = DumpReader(f)
            target = namespace or reader.header.namespace
            async with open_store(store_url, target) as store:
                counts = await reader.import_into(store, batch=batch)
        show(out, f"imported into namespace {target!r}", counts_table(["records"], _rows(counts)))

    run(main)


def _rows(*columns: dict[str, int]) -> dict[str, list[int]]:
    return {kind: [column.get(kind, 0) for column in columns] for kind in KIND_NAMES}


def _remaining(source: dict[str, int], state: MigrationState | None) -> dict[str, int]:
    """What a migration would still copy, given its saved progress."""
    if state is None:
        return source
    return {
        kind: 0
        if kind in state.done
        else max(0, total - state.copied.get(kind, 0))
        if kind == state.kind
        else total
        for kind, total in source.items()
    }


def _report(checks: list[KindCheck]) -> None:
    show(out, "verification", checks_table(checks))
    different = [check.kind for check in checks if not check.ok]
    if different:
        raise CLIError(f"the destination differs from the source in: {', '.join(different)}")


@click.command("migrate")
@click.argument("source")
@click.argument("destination")
@namespace_option()
@click.option("--dry-run", is_flag=True, help="Count what would be copied; copy nothing.")
@_batch_option
@click.option(
    "--state",
    default=DEFAULT_STATE,
    show_default=True,
    metavar="FILE",
    help="Where progress is kept, to resume an interrupted migration.",
)
@click.option("--restart", is_flag=True, help="Forget saved progress and copy from the start.")
@click.option("--no-verify", is_flag=True, help="Skip comparing counts and checksums after.")
def migrate_command(
    *,
    source: str,
    destination: str,
    namespace: str,
    dry_run: bool,
    batch: int,
    state: str,
    restart: bool,
    no_verify: bool,
) -> None:
    """Copy every record of a namespace from SOURCE to DESTINATION (two store URLs).

    Resumable: an interrupted migration, run again, continues where it stopped.
    Idempotent: records are written by id, so running it again leaves the destination equal.
    At the end, counts and checksums of every kind are compared on both sides.
    """
    if source == destination:
        raise CLIError("the source and the destination are the same store")
    checkpoint = Checkpoint(
        state,
        source,
        destination,
        namespace,
        source=describe_url(source),
        destination=describe_url(destination),
    )

    async def main() -> None:
        try:
            # With --restart the saved state is not read: it may be of another version.
            saved = None if restart else checkpoint.load()
        except ValueError as exc:
            raise CLIError(f"{exc} (use --restart to start over)") from None
        async with open_store(source, namespace) as src, open_store(destination, namespace) as dst:
            totals = await count_records(src)
            if dry_run:
                present = await count_records(dst)
                rows = _rows(totals, present, _remaining(totals, None if restart else saved))
                columns = ["in source", "in destination", "to copy"]
                show(out, "migration plan (dry run)", counts_table(columns, rows))
                if saved is not None and not restart:
                    done = ", ".join(saved.done) or "nothing"
                    err.print(f"resuming a migration: done {done}", markup=False)
                return
            if restart:
                checkpoint.clear()
            elif saved is not None:
                err.print(f"resuming: {', '.join(saved.done) or 'no kind'} done", markup=False)
            with _progress() as bar:
                tasks = {k: bar.add_task(k, total=totals[k]) for k in KIND_NAMES}
                copied = await migrate(
                    src,
                    dst,
                    checkpoint=checkpoint,
                    batch=batch,
                    on_progress=lambda kind, n: bar.update(tasks[kind], completed=n),
                )
            summary = ", ".join(f"{n:,} {k}" for k, n in copied.items())
            err.print(f"copied {summary}", markup=False)
            if not no_verify:
                _report(await verify(src, dst, batch=batch))

    try:
        run(main)
    except KeyboardInterrupt:
        raise CLIError("interrupted; run the same command again to resume", exit_code=130) from None


@click.command("verify")
@click.argument("source")
@click.argument("destination")
@namespace_option()
@_batch_option
def verify_command(*, source: str, destination: str, namespace: str, batch: int) -> None:
    """Compare the counts and checksums of every kind in two stores (URLs)."""

    async def main() -> None:
        async with open_store(source, namespace) as src, open_store(destination, namespace) as dst:
            _report(await verify(src, dst, batch=batch))

    run(main)


COMMANDS = [export_command, import_command, migrate_command, verify_command]
