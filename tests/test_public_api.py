"""The public surface: what ``kvstore`` exports, and that every export is real and typed."""

from __future__ import annotations

import importlib
import inspect
import pathlib

import kvstore
import kvstore.drivers
import kvstore.errors
import kvstore.records

PUBLIC_MODULES = ["kvstore", "kvstore.drivers", "kvstore.errors", "kvstore.records"]


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
