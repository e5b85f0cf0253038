"""SyncStorage has real types (issue 14, item 11), generated from the async classes.

``kvstore/_sync_api.py`` holds one Protocol per domain, written by
``python -m kvstore._gen_sync``. These tests keep it in step with the async domain classes
and prove that a type checker now sees through ``SyncStorage``'s domains.
"""

from __future__ import annotations

import inspect
import re
import textwrap
import typing
from pathlib import Path

import pytest

from kvstore import Storage, SyncStorage
from kvstore import _sync_api as generated
from kvstore._gen_sync import OUTPUT, main, render
from kvstore.sync import DOMAINS


def test_the_generated_types_are_up_to_date() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(), (
        "kvstore/_sync_api.py is out of date: run python -m kvstore._gen_sync"
    )
    assert main(["--check"]) == 0


def _public_coroutines(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_protocol_has_every_async_method_with_its_signature(domain: str) -> None:
    cls = type(getattr(Storage(), domain))
    protocol = getattr(generated, f"Blocking{cls.__name__}")
    methods = _public_coroutines(cls)
    assert methods
    declared = {n for n, m in vars(protocol).items() if callable(m) and not n.startswith("_")}
    assert declared == set(methods)
    for name, method in methods.items():
        if typing.get_overloads(method):
            # A protocol's overloads have no implementation to inspect at run time; the
            # up-to-date test and the mypy test cover them.
            continue
        expected, got = inspect.signature(method), inspect.signature(getattr(protocol, name))
        assert list(got.parameters.values()) == list(expected.parameters.values()), name
        assert got.return_annotation == expected.return_annotation, name
    with SyncStorage() as store:
        assert set(dir(getattr(store, domain))) >= set(methods)


def test_a_new_async_method_shows_up_in_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator discovers methods: one added later needs no change to it."""
    from kvstore.domains.memory import MemoryStore

    async def summarize_thread(self, thread_id: str, *, limit: int = 3) -> str:  # type: ignore[no-untyped-def]
        """Say what a thread is about."""
        return thread_id

    monkeypatch.setattr(MemoryStore, "summarize_thread", summarize_thread, raising=False)
    monkeypatch.setattr(summarize_thread, "__module__", "kvstore.domains.memory")
    text = render()
    assert "def summarize_thread(self, thread_id: str, *, limit: int = 3) -> str:" in text


TYPED_USE = """
from kvstore import SyncStorage, Thread

def use() -> None:
    with SyncStorage() as store:
        store.memory.get_thred("t")
        reveal_type(store.memory.get_thread("t"))
        reveal_type(store.workflows.load_snapshot("wf", "run", as_type=list[int]))
        reveal_type(store.traces.list_traces(per_page=5).items)
        store.workflows.persist_snapshot("wf", "run", {}, expected_versoin=1)
        count: str = store.memory.count_messages(["t"])
        store.memory.save_thread(Thread(id="t", resource_id="r"))
        store.evals.delete_score(7)
"""


def test_mypy_strict_sees_through_sync_storage(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    source = tmp_path / "typed_use.py"
    source.write_text(textwrap.dedent(TYPED_USE), encoding="utf-8")
    out, err, status = mypy_api.run(["--strict", "--no-error-summary", str(source)])
    assert status == 1, (out, err)
    lines: dict[int, str] = {}
    for match in re.finditer(r"typed_use\.py:(\d+): (.*)", out):
        lines[int(match[1])] = lines.get(int(match[1]), "") + match[2] + "\n"
    assert 'has no attribute "get_thred"' in lines[6]
    assert re.search(r'Revealed type is "(kvstore\.records\.)?Thread \| None"', lines[7])
    assert re.search(r'Revealed type is "(builtins\.)?list\[(builtins\.)?int\] \| None"', lines[8])
    assert re.search(
        r'Revealed type is "(builtins\.)?list\[(kvstore\.records\.)?TraceSummary\]"', lines[9]
    )
    assert 'Unexpected keyword argument "expected_versoin"' in lines[10]
    assert 'has type "list[int]", variable has type "str"' in lines[11]
    assert 12 not in lines  # a correct call passes
    assert 'incompatible type "int"; expected "str"' in lines[13]
