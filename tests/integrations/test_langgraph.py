"""LangGraph: the official checkpointer conformance suite, and interrupt/resume across processes.

``kvstore.integrations.langgraph.KVStoreSaver`` runs the whole suite on every backend
(memory, the AOF file, Redis, Redis Cluster, Upstash); the harness itself is proven on
LangGraph's own ``InMemorySaver`` and, across processes, on langgraph-checkpoint-upstash-redis
against the local Upstash-protocol server.

``langgraph-checkpoint-conformance`` is run through its public entry points:
``checkpointer_test(name=...)`` registers an async generator that yields a fresh saver, and
``await validate(registered)`` runs every capability's suite and returns a report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.conformance.spec import (
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)
from langgraph.checkpoint.memory import InMemorySaver

from kvstore.integrations.langgraph import KVStoreSaver
from kvstore.upstash_server import UpstashServer
from tests.integrations.conftest import Backend

pytestmark = pytest.mark.anyio

# How many tests each capability's suite has in the installed conformance package.
SUITE_SIZES = {
    "put": len(test_put.ALL_PUT_TESTS),
    "put_writes": len(test_put_writes.ALL_PUT_WRITES_TESTS),
    "get_tuple": len(test_get_tuple.ALL_GET_TUPLE_TESTS),
    "list": len(test_list.ALL_LIST_TESTS),
    "delete_thread": len(test_delete_thread.ALL_DELETE_THREAD_TESTS),
    "delete_for_runs": len(test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS),
    "copy_thread": len(test_copy_thread.ALL_COPY_THREAD_TESTS),
    "prune": len(test_prune.ALL_PRUNE_TESTS),
}
BASE = {c.value for c in BASE_CAPABILITIES}
EXTENDED = {c.value for c in EXTENDED_CAPABILITIES}

SaverFactory = Callable[[], AsyncIterator[BaseCheckpointSaver[Any]]]


async def run_conformance(name: str, factory: SaverFactory) -> CapabilityReport:
    """Run the whole official suite on savers made by ``factory`` (one per capability)."""
    registered = checkpointer_test(name=name)(factory)
    return await validate(registered)


def passed(report: CapabilityReport, capabilities: set[str]) -> int:
    """How many tests of these capabilities passed; fails naming every failed test."""
    failures = [f for c in capabilities for f in report.results[c].failures]
    assert not failures, "\n".join(failures)
    return sum(report.results[c].tests_passed for c in capabilities)


def test_the_installed_suite_has_the_expected_size() -> None:
    # 58 base tests, as the issue counts them. The extended suites (delete_for_runs,
    # copy_thread, prune) have 23 tests in langgraph-checkpoint-conformance 0.0.2.
    assert sum(SUITE_SIZES[c] for c in BASE) == 58
    assert set(SUITE_SIZES) == BASE | EXTENDED


async def test_the_harness_passes_langgraphs_own_saver() -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        yield InMemorySaver()

    report = await run_conformance("InMemorySaver", factory)
    assert passed(report, BASE) == 58
    # InMemorySaver implements none of the extended capabilities: detected as missing.
    assert all(not report.results[c].detected for c in EXTENDED)


async def test_kvstore_saver_passes_every_conformance_test(backend: Backend) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        async with backend.store() as store:
            yield KVStoreSaver(store)

    report = await run_conformance(f"KVStoreSaver[{backend.name}]", factory)
    assert all(report.results[c].detected for c in BASE | EXTENDED)
    assert passed(report, BASE) == 58
    assert passed(report, EXTENDED) == sum(SUITE_SIZES[c] for c in EXTENDED)


# -- a StateGraph interrupted in one process and resumed in another ------------------------


def _phase(saver: str, url: str, thread: str, phase: str) -> dict[str, Any]:
    """Run one phase of tests/integrations/langgraph_interrupt.py in a new process."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.integrations.langgraph_interrupt", saver, url, thread, phase],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _interrupt_and_resume(saver: str, url: str) -> None:
    started = _phase(saver, url, "order-thread", "start")
    assert started == {"asked": [{"question": "Ship order-7?"}], "next": ["approve"]}
    resumed = _phase(saver, url, "order-thread", "resume")
    assert resumed == {
        "result": {
            "order": "order-7",
            "approved": True,
            "note": "rush",
            "log": ["planned order-7", "reviewed", "shipped"],
        },
        "next": [],
    }


def test_the_interrupt_harness_resumes_in_a_new_process(
    upstash_memory_server: UpstashServer,
) -> None:
    # Proven on a peer saver (langgraph-checkpoint-upstash-redis) over the local server.
    _interrupt_and_resume(
        "upstash-peer", f"{upstash_memory_server.url}#{upstash_memory_server.token}"
    )


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("aof", id="aof"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ],
    indirect=True,
)
def test_kvstore_saver_resumes_an_interrupted_graph_in_a_new_process(backend: Backend) -> None:
    assert backend.url is not None
    _interrupt_and_resume("kvstore", backend.url)


# -- extras --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [
        ("langgraph", "kvstore.integrations.langgraph", "langgraph"),
        ("agents", "kvstore.integrations.openai_agents", "openai-agents"),
        ("pydantic_ai", "kvstore.integrations.pydantic_ai", "pydantic-ai"),
    ],
)
def test_a_missing_extra_names_the_install_command(blocked: str, module: str, extra: str) -> None:
    code = f"import sys; sys.modules[{blocked!r}] = None; import {module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert f'pip install "kvstore[{extra}]"' in done.stderr
