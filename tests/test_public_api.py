"""The public surface: what ``kvstore`` exports, and that every export is real and typed."""

from __future__ import annotations

import importlib
import inspect
import pathlib

import anyio

import kvstore
import kvstore.drivers
import kvstore.errors
import kvstore.records

PUBLIC_MODULES = [
    "kvstore",
    "kvstore.drivers",
    "kvstore.errors",
    "kvstore.records",
    "kvstore.studio",
]


def test_all_names_exist_and_are_unique() -> None:
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        exported = module.__all__
        assert len(exported) == len(set(exported)), name
        for attr in exported:
            assert hasattr(module, attr), f"{name}.{attr}"


def test_top_level_exports_the_facade_records_and_errors() -> None:
    expected = {"Storage", "SyncStorage", "Thread", "Message", "Resource", "Page", "Include"}
    assert expected <= set(kvstore.__all__)
    assert set(kvstore.errors.__all__) <= set(kvstore.__all__)
    for name in kvstore.errors.__all__:
        assert issubclass(getattr(kvstore, name), kvstore.KVStoreError)


def test_public_callables_have_docstrings() -> None:
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_package_is_typed() -> None:
    assert (pathlib.Path(kvstore.__file__).parent / "py.typed").exists()


def test_the_issue_signatures_accept_their_positional_arguments() -> None:
    """The signatures as the issues write them: arguments before ``*`` may be positional."""

    async def main() -> None:
        async with kvstore.Storage(None, "positional") as store:
            memory = store.memory
            await memory.save_thread(kvstore.Thread(id="t1", resource_id="r1"))
            thread = await memory.update_thread("t1", "Title", {"k": 1})
            assert (thread.title, thread.metadata) == ("Title", {"k": 1})
            page = await memory.list_threads("r1", 0, 10, "updated_at", "asc")
            assert ([t.id for t in page.items], page.per_page) == (["t1"], 10)
            resource = await memory.update_resource("r1", "notes", {"tz": "UTC"})
            resources = await memory.list_resources(0, 10)
            assert ([r.id for r in resources.items], resources.per_page) == (["r1"], 10)
            assert (resource.working_memory, resource.metadata) == ("notes", {"tz": "UTC"})
            assert store.namespace == "positional"
            assert (await store.keys()).namespace == "positional"

    anyio.run(main)
