"""The index keys that scripts build agree with the ones :mod:`kvstore.keys` names.

Workflow and eval scripts rebuild an :class:`~kvstore.keys.IndexFamily`'s keys from escaped
values (``lattice`` in ``kvstore.domains._base``); listings name the same sets through
:meth:`IndexFamily.key`. The conformance suite checks the Lua on real Redis against the
same listings; here the Python twin is compared with the key schema on arbitrary ids.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvstore.domains._base import lattice
from kvstore.domains._trace_scripts import pack_keys, unpack_keys
from kvstore.keys import IndexFamily, Keys

ids = st.text(min_size=1, max_size=12)
maybe_ids = st.none() | ids


@given(workflow=ids, resource=maybe_ids, status=maybe_ids)
def test_script_lattice_matches_the_key_schema(
    workflow: str, resource: str | None, status: str | None
) -> None:
    family = Keys("ns").workflow_runs
    escaped = [
        family.escaped(v).encode() if v is not None else b"" for v in (workflow, resource, status)
    ]
    from_script = lattice(family.prefix.encode(), [n.encode() for n in family.names], escaped)
    expected = {
        family.key({"workflow": w, "resource": r, "status": s}).encode()
        for w, r, s in itertools.product((None, workflow), (None, resource), (None, status))
    }
    assert sorted(from_script) == sorted(expected)
    values = {"workflow": [workflow], "resource": [resource] if resource else []}
    values["status"] = [status] if status else []
    assert sorted(k.encode() for k in family.lattice(values)) == sorted(expected)


@given(a=st.tuples(ids, ids), b=st.tuples(ids, ids))
def test_distinct_values_never_share_a_key(a: tuple[str, str], b: tuple[str, str]) -> None:
    family = IndexFamily("{ns}:x:", ("pair", "one"))
    # A pair of ids and a single id containing ':' must not collide.
    key_a = family.key({"pair": a, "one": a[0]})
    key_b = family.key({"pair": b, "one": b[0]})
    assert (key_a == key_b) == (a == b)
    assert family.key({"pair": a}) != family.key({"one": a[0] + ":" + a[1]})


def test_keys_without_filters_and_unknown_filters() -> None:
    family = IndexFamily("{ns}:x:", ("a", "b"))
    assert family.key({}) == "{ns}:x:all"
    assert family.key({"a": None, "b": "v:1"}) == "{ns}:x:b:v%3A1"
    assert family.key({"a": ("p", "q:r"), "b": "%"}) == "{ns}:x:a+b:p:q%3Ar:%25"
    with pytest.raises(KeyError):
        family.key({"c": "x"})


@given(st.lists(st.text(max_size=20)))
def test_packed_keys_round_trip(keys: list[str]) -> None:
    assert unpack_keys(pack_keys(keys)) == [k.encode() for k in keys]
