"""The memory driver's SortedList, against a plain sorted Python list of pairs."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kvstore.drivers.memory import _sortedlist
from kvstore.drivers.memory._sortedlist import SortedList


@pytest.fixture
def tiny_sublists(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Sublists of a handful of values, so that a few dozen values already split, merge and
    # drop sublists and exercise the positional index across many of them.
    monkeypatch.setattr(_sortedlist, "_LOAD", 4)
    return


class SortedListMachine(RuleBasedStateMachine):
    """Random operations on a SortedList and on a sorted Python list, in lock step."""

    def __init__(self) -> None:
        super().__init__()
        self.actual: SortedList[int, str] = SortedList()
        self.expected: list[int] = []  # the keys; each key's value is str(key)

    @rule(value=st.integers(0, 200))
    def add(self, value: int) -> None:
        if value not in self.expected:
            self.actual.add(value, str(value))
            bisect.insort(self.expected, value)

    @rule(values=st.lists(st.integers(0, 200), max_size=40))
    def add_many(self, values: list[int]) -> None:
        for value in values:
            self.add(value)

    @precondition(lambda self: self.expected)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        value = data.draw(st.sampled_from(self.expected))
        assert self.actual.remove(value) == str(value)
        self.expected.remove(value)

    @rule(value=st.integers(0, 200))
    def remove_missing_raises(self, value: int) -> None:
        if value not in self.expected:
            with pytest.raises(KeyError):
                self.actual.remove(value)

    @rule(start=st.integers(-5, 80), stop=st.integers(-5, 80))
    def delete_range(self, start: int, stop: int) -> None:
        self.actual.delete_range(start, stop)
        del self.expected[max(start, 0) : max(stop, 0)]

    @rule(value=st.integers(-1, 201))
    def bisect(self, value: int) -> None:
        assert self.actual.bisect_left(value) == bisect.bisect_left(self.expected, value)
        assert self.actual.bisect_right(value) == bisect.bisect_right(self.expected, value)

    @rule(start=st.integers(-5, 80), stop=st.integers(-5, 80))
    def slice(self, start: int, stop: int) -> None:
        keys = self.expected[max(start, 0) : max(stop, 0)]
        assert self.actual.keys(start, stop) == keys
        assert self.actual.values(start, stop) == [str(key) for key in keys]

    @precondition(lambda self: self.expected)
    @rule(data=st.data())
    def getitem(self, data: st.DataObject) -> None:
        pos = data.draw(st.integers(-len(self.expected), len(self.expected) - 1))
        assert self.actual.key_at(pos) == self.expected[pos]

    @invariant()
    def consistent(self) -> None:
        self.actual.check()
        assert list(self.actual) == self.expected
        assert list(reversed(self.actual)) == self.expected[::-1]
        assert len(self.actual) == len(self.expected)


@pytest.mark.usefixtures("tiny_sublists")
def test_sorted_list_matches_a_sorted_python_list() -> None:
    run_state_machine_as_test(
        SortedListMachine,
        settings=settings(max_examples=150, stateful_step_count=60, deadline=None),
    )


def test_key_at_out_of_range_raises() -> None:
    values = SortedList([(3, "c"), (1, "a"), (2, "b")])
    assert [values.key_at(0), values.key_at(-1)] == [1, 3]
    assert values.values(0, 3) == ["a", "b", "c"]
    with pytest.raises(IndexError):
        values.key_at(3)
    with pytest.raises(IndexError):
        values.key_at(-4)


def test_large_list_with_default_sublists() -> None:
    # 20 000 values: about twenty sublists at the real load, built in random order, then
    # thinned out by ranges and single removals.
    rng = random.Random(7)
    values = list(range(0, 40_000, 2))
    rng.shuffle(values)
    actual: SortedList[int, int] = SortedList()
    for value in values:
        actual.add(value, -value)
    expected = sorted(values)
    actual.check()
    assert actual.keys(9_990, 10_010) == expected[9_990:10_010]
    assert actual.values(9_990, 10_010) == [-v for v in expected[9_990:10_010]]
    assert actual.bisect_left(20_001) == bisect.bisect_left(expected, 20_001)
    actual.delete_range(1_000, 15_000)
    del expected[1_000:15_000]
    for value in rng.sample(expected, 2_000):
        actual.remove(value)
        expected.remove(value)
    actual.check()
    assert list(actual) == expected
    assert [actual.key_at(i) for i in (0, 1, -2, -1)] == [expected[i] for i in (0, 1, -2, -1)]
    assert actual.values(0, len(actual)) == [-v for v in expected]
