"""The key schema of layout 2 (:mod:`kvstore.keys`): slots, buckets, ids and lex index keys.

Slots are checked against redis-py's own ``key_slot`` (what a cluster client routes by), not
against kvstore's copy of the algorithm.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot as redis_key_slot

from kvstore.keys import (
    LAYOUT_VERSION,
    SLOTS,
    Bucket,
    Keys,
    key_slot,
    lex_escape,
    lex_time,
    validate_namespace,
)

# Ids as users write them, and the characters that could break a key schema.
HOSTILE = st.text(alphabet=st.sampled_from("{}:*\x00\n\r\x01 ab\u00e9\U0001f600"), max_size=12)
IDS = st.one_of(st.text(min_size=1, max_size=30), HOSTILE.filter(bool))
BUCKET_COUNTS = [1, 2, 3, 5, 7, 16, 17, 64, 100, 255, 1000, 1024]


def _slot(key: str) -> int:
    return redis_key_slot(key.encode())


def _shared_keys(bucket: Bucket) -> list[str]:
    return [
        bucket.threads,
        bucket.thread_activity,
        bucket.thread_index,
        bucket.pointers,
        bucket.resources,
        bucket.resource_index,
        bucket.runs,
        bucket.run_snapshots,
        bucket.run_index,
        bucket.run_steps,
        bucket.run_tokens,
        bucket.scores,
        bucket.score_index,
        bucket.traces,
        bucket.trace_index,
    ]


def _owner_keys(keys: Keys, owner_id: str) -> list[str]:
    bucket = keys.bucket_of(owner_id)
    thread = keys.thread(owner_id)
    return [
        thread.messages,
        thread.message_ids,
        keys.trace_spans(bucket, owner_id),
        keys.trace_span_ids(bucket, owner_id),
        keys.message_home(owner_id),
    ]


# -- slots ------------------------------------------------------------------------------------


@given(st.binary(max_size=40))
def test_key_slot_is_redis_cluster_s(key: bytes) -> None:
    assert key_slot(key) == redis_key_slot(key)


@pytest.mark.parametrize("buckets", BUCKET_COUNTS)
def test_bucket_b_lands_in_the_b_th_slot_range(buckets: int) -> None:
    keys = Keys("kv", buckets)
    assert [b.number for b in keys.all_buckets] == list(range(buckets))
    for bucket in keys.all_buckets:
        low, high = bucket.number * SLOTS // buckets, (bucket.number + 1) * SLOTS // buckets
        slots = {_slot(key) for key in _shared_keys(bucket)}
        assert len(slots) == 1, bucket
        assert low <= slots.pop() < high


@pytest.mark.parametrize("buckets", [1, 3, 16, 1024])
def test_the_tags_do_not_depend_on_the_namespace(buckets: int) -> None:
    # A cluster sees the same spread whatever the tenant, so equal slot ranges give equal
    # shares to every namespace.
    for one, other in zip(
        Keys("kv", buckets).all_buckets, Keys("tenant-7", buckets).all_buckets, strict=True
    ):
        assert _slot(one.threads) == _slot(other.threads)


@settings(max_examples=300, deadline=None)  # the first Keys of a bucket count finds its tags
@given(IDS, st.sampled_from(BUCKET_COUNTS))
def test_an_id_never_moves_its_keys_out_of_its_bucket_s_slot(owner_id: str, buckets: int) -> None:
    keys = Keys("kv", buckets)
    bucket = keys.bucket_of(owner_id)
    assert keys.thread(owner_id).bucket is bucket
    slot = _slot(bucket.threads)
    for key in _owner_keys(keys, owner_id):
        assert _slot(key) == slot, key
        # The hash tag is the bucket's, and the id comes last, verbatim.
        assert key.startswith(bucket.root)
        assert key.endswith(":" + owner_id)


def test_the_bucket_of_an_id_is_stable_and_spread() -> None:
    keys, again = Keys("kv", 16), Keys("other", 16)
    counts = [0] * 16
    for i in range(16_000):
        bucket = keys.bucket_of(f"thread-{i}")
        # The same in every process and namespace: a digest of the id, not hash().
        assert again.bucket_of(f"thread-{i}").number == bucket.number
        counts[bucket.number] += 1
    assert all(800 <= n <= 1200 for n in counts), counts
    single = Keys("kv", 1)
    assert {single.bucket_of(f"x{i}").number for i in range(100)} == {0}


# -- ids never collide ------------------------------------------------------------------------


@given(IDS, IDS, st.sampled_from([1, 16]))
def test_two_ids_never_share_a_key(one: str, other: str, buckets: int) -> None:
    keys = Keys("kv", buckets)
    mine = set(_owner_keys(keys, one))
    theirs = set(_owner_keys(keys, other))
    shared = {k for b in keys.all_buckets for k in _shared_keys(b)} | {keys.layout}
    assert len(mine) == 5
    assert not mine & shared
    if one != other:
        assert not mine & theirs


@given(
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,64}", fullmatch=True),
    IDS,
)
def test_namespaces_never_share_a_key(one: str, other: str, owner_id: str) -> None:
    for namespace in (one, other):
        keys = Keys(namespace, 4)
        for key in [*_owner_keys(keys, owner_id), keys.layout, keys.all_buckets[0].threads]:
            # What precedes the first brace names the namespace, which holds none.
            assert key[: key.index("{") - 1] == namespace
    if one != other:
        assert Keys(one).layout != Keys(other).layout
        assert Keys(one).thread(owner_id).messages != Keys(other).thread(owner_id).messages


@given(IDS, IDS, IDS, IDS)
def test_run_members_are_injective(wf1: str, run1: str, wf2: str, run2: str) -> None:
    member = Keys.run_member(wf1, run1)
    assert "\x00" not in member
    if (wf1, run1) != (wf2, run2):
        assert member != Keys.run_member(wf2, run2)


def test_the_layout_key_is_the_namespace_s_and_version_2() -> None:
    keys = Keys("tenant-1", 8)
    assert LAYOUT_VERSION == 2
    assert keys.layout == "tenant-1:{tenant-1}:layout"
    assert repr(keys) == "Keys(namespace='tenant-1', buckets=8)"


# -- lex index values and times ---------------------------------------------------------------


@given(st.text(), st.text())
def test_lex_escape_is_injective_and_keeps_nul_out(one: str, other: str) -> None:
    escaped = lex_escape(one)
    assert "\x00" not in escaped
    if one != other:
        assert escaped != lex_escape(other)
        # So a prefix ``value\0`` of a member matches exactly one value.
        assert not (lex_escape(other) + "\x00").startswith(escaped + "\x00")


@given(st.lists(st.text(max_size=6), max_size=30))
def test_lex_escape_keeps_the_byte_order(values: list[str]) -> None:
    by_value = sorted(values, key=lambda v: v.encode())
    by_escaped = sorted(values, key=lambda v: lex_escape(v).encode())
    assert by_value == by_escaped


def test_lex_escape_examples() -> None:
    assert lex_escape("plain") == "plain"
    assert lex_escape("a\x00b\x01c") == "a\x01\x01b\x01\x02c"


TIMES = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(TIMES, TIMES)
def test_lex_time_is_fixed_width_ordered_and_injective(one: int, other: int) -> None:
    a, b = lex_time(one), lex_time(other)
    assert len(a) == len(b) == 16
    assert (a < b) == (one < other)
    assert (a == b) == (one == other)


def test_lex_time_examples() -> None:
    assert lex_time(0) == "8000000000000000"
    assert lex_time(-1) == "7fffffffffffffff"
    assert lex_time(-(2**63)) == "0" * 16


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["kv", "a", "Tenant_1.prod:eu-west", "x" * 64])
def test_valid_namespaces(namespace: str) -> None:
    assert validate_namespace(namespace) == namespace
    assert Keys(namespace).namespace == namespace


@pytest.mark.parametrize(
    "namespace", ["", "x" * 65, "a{b", "a}b", "a b", "a*", "a?", "a\n", "é", None, 7]
)
def test_invalid_namespaces(namespace: object) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        validate_namespace(namespace)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid namespace"):
        Keys(namespace)  # type: ignore[arg-type]


@pytest.mark.parametrize("buckets", [0, -1, 1025, True, 2.0, "2", None])
def test_invalid_bucket_counts(buckets: object) -> None:
    with pytest.raises(ValueError, match="invalid buckets"):
        Keys("kv", buckets)  # type: ignore[arg-type]


@given(IDS, IDS, IDS, IDS, st.sampled_from([1, 16]))
def test_run_leases_sit_in_their_run_s_bucket_and_never_collide(
    wf1: str, run1: str, wf2: str, run2: str, buckets: int
) -> None:
    keys = Keys("kv", buckets)
    bucket = keys.bucket_of(run1)
    lease = keys.run_lease(bucket, keys.run_member(wf1, run1))
    assert _slot(lease) == _slot(bucket.runs)
    assert lease.startswith(bucket.root + "run_lease:")
    shared = {k for b in keys.all_buckets for k in _shared_keys(b)} | {keys.layout}
    assert lease not in shared
    assert lease not in _owner_keys(keys, run1)
    if (wf1, run1) != (wf2, run2):
        assert lease != keys.run_lease(keys.bucket_of(run2), keys.run_member(wf2, run2))
