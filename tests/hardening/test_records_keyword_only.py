"""Item 6: every record is keyword-only, so field order is not public API."""

from __future__ import annotations

import inspect

import msgspec
import pytest

import kvstore
import kvstore.records

RECORDS = sorted(
    (
        obj
        for name in kvstore.records.__all__
        if isinstance(obj := getattr(kvstore.records, name), type)
        and issubclass(obj, msgspec.Struct)
    ),
    key=lambda cls: cls.__name__,
)


def test_every_record_type_is_covered() -> None:
    names = {cls.__name__ for cls in RECORDS}
    assert {"Thread", "Message", "Resource", "WorkflowRun", "Score", "Span"} <= names
    exported = {n for n in kvstore.__all__ if isinstance(getattr(kvstore, n), type)}
    assert {n for n in exported if issubclass(getattr(kvstore, n), msgspec.Struct)} <= names


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_no_field_is_positional(cls: type[msgspec.Struct]) -> None:
    parameters = inspect.signature(cls).parameters.values()
    assert parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters), [
        p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    with pytest.raises(TypeError):
        cls("a")  # type: ignore[call-arg]


def test_the_issue_example_is_refused() -> None:
    with pytest.raises(TypeError):
        kvstore.Thread("t1", "alice")  # type: ignore[misc]
    assert kvstore.Thread(id="t1", resource_id="alice").resource_id == "alice"
