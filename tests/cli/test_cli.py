"""The ``kvstore`` console script, run for real in subprocesses."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from kvstore import Storage, Thread
from kvstore.drivers import MemoryDriver
from kvstore.transfer import KIND_NAMES, Checkpoint, digest_records, migrate
from tests.conftest import flush_db, redis_url_for_db
from tests.transfer.conftest import TRANSFER_DB, TRANSFER_UPSTASH_DB
from tests.transfer.dataset import fill, snapshot

KVSTORE = Path(sys.executable).with_name("kvstore")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``KVSTORE_*`` variable, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KVSTORE_")} | extra


def kv(
    *args: str,
    cwd: Path,
    stdin: bytes | None = None,
    module: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the console script (or ``python -m kvstore``) and wait for it.

    ``env`` adds to (or overrides) the environment, which has no ``KVSTORE_*`` variable.
    """
    # rich wraps tables to the terminal, 80 columns without one
    environment = clean_env(COLUMNS="200") | (env or {})
    command = [sys.executable, "-m", "kvstore"] if module else [str(KVSTORE)]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=environment,
        timeout=120,
        check=False,
    )


def json_lines(output: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], code: int, text: str) -> None:
    """Exit ``code`` and one error line naming ``text`` (after the default store's note, if
    the command fell back to the default store)."""
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    lines = stderr.splitlines(keepends=True)
    if lines and lines[0].startswith("kvstore: using "):
        del lines[0]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert lines[0].endswith("\n"), stderr
    assert text in stderr
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def redis_urls(redis_server_url: str) -> Iterator[tuple[str, str]]:
    """A plain Redis URL and the URL of a local Upstash server on another Redis database."""
    from kvstore.upstash_server import UpstashServer

    plain, behind = redis_url_for_db(TRANSFER_DB), redis_url_for_db(TRANSFER_UPSTASH_DB)
    for url in (plain, behind):
        flush_db(url)
    with UpstashServer(backing=behind) as server:
        yield plain, server.driver_url
    for url in (plain, behind):
        flush_db(url)


def filled(url: str, namespace: str) -> None:
    async def main() -> None:
        async with Storage.from_url(url, namespace=namespace) as store:
            await fill(store)

    anyio.run(main)


def state_of(url: str, namespace: str) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with Storage.from_url(url, namespace=namespace) as store:
            return {"records": await snapshot(store), "digests": await digest_records(store)}

    return anyio.run(main)


# -- the demo ---------------------------------------------------------------------------------


def test_demo_runs_on_the_default_store_and_says_which(tmp_path: Path) -> None:
    result = kv("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"Recall with context" in result.stdout
    assert b"kvstore: using memory://" in result.stderr
    via_module = kv("demo", cwd=tmp_path, module=True)
    assert via_module.returncode == 0, via_module.stderr
    assert b"Recall with context" in via_module.stdout


def test_the_default_file_outlives_the_process(tmp_path: Path) -> None:
    assert kv("demo", cwd=tmp_path).returncode == 0
    # A narrow "terminal": stderr is a pipe here, and the note must not be cut in two.
    threads = kv("threads", "alice", "--json", cwd=tmp_path, env={"COLUMNS": "40"})
    assert threads.returncode == 0, threads.stderr
    assert json_lines(threads.stdout)  # what the demo saved, read by another process
    file = tmp_path / ".kvstore" / "kvstore.aof"
    assert threads.stderr.decode().splitlines() == [
        f"kvstore: using memory://.kvstore/kvstore.aof (the file {file})"
    ]


def test_kvstore_url_names_the_store(tmp_path: Path) -> None:
    env = {"KVSTORE_URL": "memory://elsewhere/data.aof"}
    demo = kv("demo", cwd=tmp_path, env=env)
    assert demo.returncode == 0, demo.stderr
    assert b"kvstore: using" not in demo.stderr  # named by the user: no note
    assert (tmp_path / "elsewhere" / "data.aof").is_file()
    assert not (tmp_path / ".kvstore").exists()
    threads = kv("threads", "alice", "--json", cwd=tmp_path, env=env)
    assert threads.returncode == 0, threads.stderr
    assert json_lines(threads.stdout)
    # --url wins over the variable.
    elsewhere = kv("threads", "alice", "--json", "--url", "memory://", cwd=tmp_path, env=env)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout == b""


# -- inspection -------------------------------------------------------------------------------


@pytest.mark.redis
def test_inspection_commands(tmp_path: Path, redis_urls: tuple[str, str]) -> None:
    url, _ = redis_urls
    filled(url, "inspect")
    store = ["--url", url, "--namespace", "inspect"]

    threads = kv("threads", "alice", "--json", *store, cwd=tmp_path)
    assert threads.returncode == 0, threads.stderr
    # Most recently active first: the first thread was renamed last.
    assert [t["id"] for t in json_lines(threads.stdout)] == ["thread-a:b", "thread-*"]

    every = kv("messages", "thread-a:b", "--all", "--json", *store, cwd=tmp_path)
    assert [m["id"] for m in json_lines(every.stdout)] == [
        f"thread-a:b/m{(n * 7) % 9}"
        for n in range(9)  # saving order, timestamps equal
    ]
    shown = kv("messages", "thread-a:b", "--last", "3", *store, cwd=tmp_path).stdout.decode()
    assert "(3 of 9 messages)" in shown
    assert "[thinking: cold]" in shown

    runs = json_lines(kv("runs", "--status", "success", "--json", *store, cwd=tmp_path).stdout)
    assert sorted(r["workflow_name"] for r in runs) == ["checkout", "wf:{x}"]
    scores = kv("scores", "--entity", "agent:a:b", "--json", *store, cwd=tmp_path)
    assert [s["entity_id"] for s in json_lines(scores.stdout)] == ["a:b", "a:b"]
    # Scores n/7 of n = 0..5, made n seconds after 09:00, relevance for even n.
    top = kv("scores", "--min", "0.4", "--max", "0.75", "--json", *store, cwd=tmp_path)
    assert [s["score"] for s in json_lines(top.stdout)] == [5 / 7, 4 / 7, 3 / 7]
    window = kv(
        "scores",
        *(
            "--scorer",
            "relevance",
            "--since",
            "2025-06-01T09:00:01",
            "--until",
            "2025-06-01T09:00:04",
        ),
        "--json",
        *store,
        cwd=tmp_path,
    )
    assert [s["score"] for s in json_lines(window.stdout)] == [4 / 7, 2 / 7]
    meta = kv("scores", "--meta", "k=3", "--json", *store, cwd=tmp_path)
    assert [s["metadata"] for s in json_lines(meta.stdout)] == [{"k": 3}]
    refused = kv("scores", "--min", "0", "--since", "1d", *store, cwd=tmp_path)
    assert refused.returncode != 0
    assert b"min_score" in refused.stderr
    stats = kv(
        "score-stats",
        *("toxicity", "--since", "2025-06-01T08:00", "--until", "2025-06-01T10:00"),
        *("--by", "day", "--json"),
        *store,
        cwd=tmp_path,
    )
    assert stats.returncode == 0, stats.stderr
    assert json_lines(stats.stdout) == [
        {
            "start": "2025-06-01T00:00:00Z",
            "count": 3,
            "mean": math.fsum([1 / 7, 3 / 7, 5 / 7]) / 3,
            "min": 1 / 7,
            "max": 5 / 7,
        }
    ]
    shown = kv(
        "score-stats",
        *("toxicity", "--since", "2025-06-01T00:00", "--until", "2025-06-01T23:59"),
        *store,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "toxicity by hour (1 of 24 hours with scores)" in shown.stdout.decode()

    since = kv("traces", "--since", "2025-06-01T09:03:21", "--json", *store, cwd=tmp_path)
    assert [t["trace_id"] for t in json_lines(since.stdout)] == ["trace-2", "trace-1"]
    # Only trace-1 has an error (in a child span); every root says ok and service svc.
    errors = kv("traces", "--error", "--json", *store, cwd=tmp_path)
    assert [(t["trace_id"], t["error_count"]) for t in json_lines(errors.stdout)] == [
        ("trace-1", 1)
    ]
    ok = kv(
        "traces", "--status", "ok", "--since", "2025-06-01T09:03:21", "--json", *store, cwd=tmp_path
    )
    assert [t["trace_id"] for t in json_lines(ok.stdout)] == ["trace-2", "trace-1"]
    service = kv("traces", "--service", "svc", "--json", *store, cwd=tmp_path)
    assert len(json_lines(service.stdout)) == 3
    both = kv("traces", "--error", "--name", "agent run", *store, cwd=tmp_path)
    assert_one_line_error(both, 1, "combine with the time window only")
    tree = kv("trace", "trace-1", *store, cwd=tmp_path)
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.decode().splitlines()
    root = next(i for i, line in enumerate(lines) if "agent run" in line)
    child = next(i for i, line in enumerate(lines) if "llm call" in line)
    assert root < child
    assert "error: timeout" in lines[child]


def test_runs_older_than_lists_then_deletes(tmp_path: Path) -> None:
    url = f"memory://{tmp_path}/runs.aof"
    filled(url, "kv")
    store = ["--url", url]
    # dataset: per workflow, runs created at T0, T0 + 1 s and T0 + 2 s (run-1 succeeded).
    older = ["--older-than", "2025-06-01T09:00:01"]
    listed = json_lines(kv("runs", *older, "--json", *store, cwd=tmp_path).stdout)
    assert sorted((r["workflow_name"], r["run_id"]) for r in listed) == [
        ("checkout", "shared\nid"),
        ("wf:{x}", "shared\nid"),
    ]
    assert all("snapshot" not in r for r in listed)  # summaries
    deleted = kv(
        "runs",
        "--older-than",
        "2025-06-01T09:00:02",
        "-w",
        "checkout",
        "--delete",
        *store,
        cwd=tmp_path,
    )
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 2 runs" in deleted.stdout.decode()
    left = json_lines(kv("runs", "--json", *store, cwd=tmp_path).stdout)
    assert sorted((r["workflow_name"], r["run_id"]) for r in left) == [
        ("checkout", "run-2"),
        ("wf:{x}", "run-1"),
        ("wf:{x}", "run-2"),
        ("wf:{x}", "shared\nid"),
    ]
    assert_one_line_error(kv("runs", "--delete", *store, cwd=tmp_path), 2, "--older-than")
    refused = kv("runs", "--older-than", "7d", "-r", "alice", "--delete", *store, cwd=tmp_path)
    assert_one_line_error(refused, 2, "not --resource")
    assert len(json_lines(kv("runs", "--json", *store, cwd=tmp_path).stdout)) == 4


# -- export, import, migrate ------------------------------------------------------------------


@pytest.mark.redis
def test_export_and_import_through_pipes(tmp_path: Path, redis_urls: tuple[str, str]) -> None:
    redis, upstash = redis_urls
    filled(redis, "piped")
    exported = kv("export", "--url", redis, "-n", "piped", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout.splitlines()[0])["format"] == "kvstore-export"
    imported = kv("import", "--url", upstash, cwd=tmp_path, stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    assert "imported into namespace 'piped'" in imported.stdout.decode()
    assert state_of(upstash, "piped") == state_of(redis, "piped")


@pytest.mark.redis
def test_migrate_dry_run_then_migrate_twice(tmp_path: Path, redis_urls: tuple[str, str]) -> None:
    redis, upstash = redis_urls
    filled(redis, "moved")
    args = [redis, upstash, "-n", "moved", "--state", str(tmp_path / "state.json")]
    plan = kv("migrate", *args, "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    text = plan.stdout.decode()
    assert "to copy" in text
    messages = next(line for line in text.splitlines() if "messages" in line)
    assert re.findall(r"\d+", messages) == ["54", "0", "54"]  # in source, destination, to copy
    assert state_of(upstash, "moved")["digests"]["messages"].count == 0
    for _ in range(2):  # idempotent: the second run changes nothing and verifies again
        moved = kv("migrate", *args, cwd=tmp_path)
        assert moved.returncode == 0, moved.stderr
        assert "verification" in moved.stdout.decode()
        assert "DIFFERENT" not in moved.stdout.decode()
        assert not (tmp_path / "state.json").exists()
    assert state_of(upstash, "moved") == state_of(redis, "moved")


# -- errors -----------------------------------------------------------------------------------

BAD_LINE = (
    b'{"format":"kvstore-export","version":1,"kvstore":"0.1.0","namespace":"kv"}\n'
    b'{"kind":"thread","record":{"id":"t","resource_id":"r"}}\n'
    b'{"kind":"message","record":{"id":"m","thread_id":"t","role":"robot","content":1}}\n'
)


def test_verify_reports_a_difference(tmp_path: Path) -> None:
    source, destination = f"memory://{tmp_path}/source.aof", f"memory://{tmp_path}/copy.aof"

    async def main() -> None:
        async with (
            Storage.from_url(source, namespace="verified") as src,
            Storage.from_url(destination, namespace="verified") as dst,
        ):
            await fill(src)
            await migrate(src, dst)
            await dst.memory.update_thread("thread-a:b", title="changed")

    anyio.run(main)
    result = kv("verify", source, destination, "-n", "verified", cwd=tmp_path)
    assert_one_line_error(result, 1, "the destination differs from the source in: threads")
    cells = [line.replace("│", " ").split() for line in result.stdout.decode().splitlines()]
    verdicts = {row[0]: row[-1] for row in cells if row and row[0] in KIND_NAMES}
    assert verdicts == {kind: "DIFFERENT" if kind == "threads" else "ok" for kind in KIND_NAMES}


@pytest.mark.parametrize(
    ("args", "stdin", "code", "text"),
    [
        (["threads", "alice", "--url", "bogus://x"], None, 1, "unsupported storage URL"),
        (["threads", "alice", "--url", "redis://127.0.0.1:1/0"], None, 1, "cannot reach Redis"),
        (["messages", "nope", "--url", "memory://"], None, 1, "no thread 'nope'"),
        (["import", "--url", "memory://", "-i", "missing.jsonl"], None, 1, "cannot open"),
        (["import", "--url", "memory://"], BAD_LINE, 1, "line 3: "),
        (["migrate", "memory://", "memory://"], None, 1, "the same store"),
        # Memory files that cannot be: an error of kvstore's naming the path, not an OSError.
        (
            ["threads", "a", "--url", "memory:///proc/nope/x.aof"],
            None,
            1,
            "/proc/nope/x.aof: cannot create its directory",
        ),
        (["threads", "a", "--url", "memory:///tmp"], None, 1, "/tmp: cannot open it"),
        (
            ["migrate", "memory://", "memory://x.aof", "--state", "/proc/x/s.json"],
            None,
            1,
            "/proc/x/s.json: cannot create the migration state file",
        ),
        (["traces", "--url", "memory://", "--since", "soon"], None, 2, "neither an ISO"),
        (["threads", "--metadata", "nokey"], None, 2, "expected KEY=VALUE"),
        (
            ["threads", "--url", "memory://", "--metadata", "k=[1]"],
            None,
            1,
            "metadata.k: only strings, numbers, booleans and None",
        ),
        (["frobnicate"], None, 2, "No such command"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else None,
)
def test_user_errors_are_one_line_without_a_traceback(
    tmp_path: Path, args: list[str], stdin: bytes | None, code: int, text: str
) -> None:
    assert_one_line_error(kv(*args, cwd=tmp_path, stdin=stdin), code, text)


def test_threads_filtered_by_metadata_across_the_namespace(tmp_path: Path) -> None:
    async def fill() -> None:
        async with Storage.from_url("memory://data.aof") as store:
            for i, (owner, project) in enumerate([("a", "p1"), ("b", "p1"), ("a", "p2")]):
                metadata = {"project": project, "n": i % 2}
                await store.memory.save_thread(
                    Thread(id=f"t{i}", resource_id=owner, metadata=metadata)
                )

    with contextlib.chdir(tmp_path):
        anyio.run(fill)
    store = ["--url", "memory://data.aof", "--json", "--order-by", "created"]

    def ids(*args: str) -> list[str]:
        result = kv("threads", *args, *store, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return [t["id"] for t in json_lines(result.stdout)]

    assert ids() == ["t2", "t1", "t0"]
    assert ids("--metadata", "project=p1") == ["t1", "t0"]
    assert ids("a", "--metadata", "project=p1") == ["t0"]
    assert ids("--metadata", "project=p1", "--metadata", "n=1") == ["t1"]
    assert ids("--metadata", "n=1") == ["t1"]
    assert ids("--metadata", 'n="1"') == []
    table = kv("threads", "--metadata", "project=p2", "--url", "memory://data.aof", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert b"every thread with {'project': 'p2'} (1 of 1)" in table.stdout


def test_a_state_file_of_layout_1_needs_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    source, destination = "memory://src.aof", "memory://dst.aof"
    key = Checkpoint(state, source, destination, "kv").key
    old = {"source": source, "destination": destination, "kind": "threads", "position": ["9"]}
    state.write_text(json.dumps({"migrations": {key: old}}))
    args = ["migrate", source, destination, "--state", str(state)]
    assert_one_line_error(kv(*args, cwd=tmp_path), 1, "use --restart to start over")
    restarted = kv(*args, "--restart", cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    assert not state.exists()


def test_a_file_in_the_way_of_the_default_store_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / ".kvstore").touch()  # where the default store's directory would go
    result = kv("threads", "alice", cwd=tmp_path)
    assert_one_line_error(result, 1, "kvstore.aof: cannot create its directory: File exists")


# -- the local Upstash server -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """Run ``kvstore serve-upstash`` (token ``secret-token``) until the block ends.

    Yields its port and a list that holds its stderr once it has stopped.
    """
    port = _free_port()
    server = subprocess.Popen(
        [str(KVSTORE), "serve-upstash", "--port", str(port), "--token", "secret-token", *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr: list[str] = []
    try:
        assert server.stdout is not None
        announced = server.stdout.readline().decode()  # printed once it accepts requests
        assert "listening" in announced, server.stderr.read() if server.stderr else ""
        assert f"127.0.0.1:{port}" in server.stdout.readline().decode()
        yield port, stderr
    finally:
        server.terminate()
        stderr.append(server.communicate(timeout=30)[1].decode())


def upstash_execute(port: int, commands: list[list[str]]) -> list[Any]:
    from kvstore.drivers.upstash import UpstashDriver

    async def main() -> list[Any]:
        async with UpstashDriver(f"http://127.0.0.1:{port}", "secret-token") as driver:
            return await driver.execute(commands)

    return anyio.run(main)


def test_serve_upstash_serves_the_protocol(tmp_path: Path) -> None:
    with serving(tmp_path, "--backend", "memory://") as (port, _):
        assert upstash_execute(port, [["SET", "k", "v"], ["GET", "k"]]) == [b"OK", b"v"]


@pytest.mark.parametrize("from_env", [True, False], ids=["KVSTORE_URL", "default"])
def test_serve_upstash_keeps_data_where_the_other_commands_do(
    tmp_path: Path, from_env: bool
) -> None:
    env = {"KVSTORE_URL": "memory://served.aof"} if from_env else {}
    with serving(tmp_path, env=env) as (port, stderr):
        assert upstash_execute(port, [["SET", "k", "v"]]) == [b"OK"]
    file = tmp_path / ("served.aof" if from_env else ".kvstore/kvstore.aof")
    if from_env:
        assert "kvstore: using" not in stderr[0]
        assert not (tmp_path / ".kvstore").exists()
    else:  # the note of every other command, on one line
        note = f"kvstore: using memory://.kvstore/kvstore.aof (the file {file})"
        assert note in stderr[0].splitlines()

    async def read() -> list[Any]:
        async with MemoryDriver(file) as driver:
            return await driver.execute([["GET", "k"]])

    assert anyio.run(read) == [b"v"]


def test_the_core_imports_no_command_line_library(tmp_path: Path) -> None:
    code = (
        "import sys, kvstore, kvstore.transfer, kvstore.demo\n"
        "print(sorted({'click', 'rich'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=tmp_path, check=True
    )
    assert result.stdout.strip() == b"[]"
