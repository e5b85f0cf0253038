"""The codec's shortcuts decode exactly what its general path decodes.

``RecordCodec.unpack`` takes a packed record holding a document and internal fields
without listing its fields, and ``from_hash`` appends top-level overrides to a JSON
document instead of splitting and re-encoding it. Both must give the record (or the
``CorruptRecordError``) that the general path gives, for any packed bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvstore.codec import (
    DOCUMENT_FIELD,
    INTERNAL_PREFIX,
    RecordCodec,
    pack_fields,
    record_codec,
    unpack_fields,
)
from kvstore.errors import CorruptRecordError
from kvstore.records import Thread

CODEC = record_codec(Thread, "json")
DOCUMENT = CODEC.fields(
    Thread(
        id="t1",
        resource_id="r1",
        title="Chat",
        metadata={"a": 1},
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        updated_at=datetime(2026, 1, 3, tzinfo=UTC),
    )
)[1]

AT = [b"created_at", b'"2026-02-03T00:00:00Z"']
_names = st.sampled_from(
    [b"_d", b"_c", b"_", b"_dx", b"title", b"created_at", b"metadata.b", b"id", b"bogus", b""]
)
_values = st.sampled_from(
    [DOCUMENT, b"{}", b"[1]", b'"x"', b"12", b'"2026-02-03T00:00:00Z"', b"{", b"", b"null"]
)
_fields = st.lists(st.tuples(_names, _values), max_size=5)


def _general(codec: RecordCodec[Any], packed: bytes, where: str) -> Any:
    """What ``unpack`` did before its shortcuts: list the fields, merge, decode."""
    if packed[:1] == b"\x00":
        return codec.from_hash([DOCUMENT_FIELD, packed[1:]], where)
    try:
        flat = unpack_fields(packed)
    except ValueError as exc:
        raise CorruptRecordError(where, str(exc)) from None
    document: bytes | None = None
    overrides: list[tuple[bytes, bytes]] = []
    for i in range(0, len(flat), 2):
        if flat[i] == DOCUMENT_FIELD:
            document = flat[i + 1]
        elif not flat[i].startswith(INTERNAL_PREFIX):
            overrides.append((flat[i], flat[i + 1]))
    try:
        if not overrides and document is not None:
            return codec._decode(document)
        return codec._decode(codec._merge(document, overrides))
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(where, str(exc)) from None


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except CorruptRecordError as exc:
        return ("corrupt", exc.args)


@given(_fields, st.data())
def test_unpack_decodes_as_the_general_path(fields: list[tuple[bytes, bytes]], data: Any) -> None:
    packed = pack_fields([part for field in fields for part in field]) if fields else b"\x01"
    # A cut or a flipped byte, as corrupt data would have.
    if data.draw(st.booleans()):
        packed = packed[: data.draw(st.integers(0, len(packed)))]
    elif packed and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(packed) - 1))
        packed = packed[:at] + bytes([data.draw(st.integers(0, 255))]) + packed[at + 1 :]
    if not packed:
        return
    expected = _outcome(_general, CODEC, packed, "k")
    assert _outcome(CODEC.unpack, packed, "k") == expected


@pytest.mark.parametrize(
    "fields",
    [
        [DOCUMENT_FIELD, DOCUMENT, b"_c", b"1", b"_sc", b"x"],
        [DOCUMENT_FIELD, DOCUMENT, b"_c", b"1", DOCUMENT_FIELD, b"{}"],
        [DOCUMENT_FIELD, b"{}", b"_c", b"1", DOCUMENT_FIELD, DOCUMENT],
        [DOCUMENT_FIELD, DOCUMENT, b"_c", b"1", b"title", b'"T"'],
        [DOCUMENT_FIELD, DOCUMENT, b"_", b"1", b"_dx", b"2"],
        [DOCUMENT_FIELD, DOCUMENT, b"metadata.b", b"2", b"updated_at", b'"2026-02-03T00:00:00Z"'],
        [DOCUMENT_FIELD, b"{}", b"updated_at", b'"2026-02-03T00:00:00Z"'],
        [DOCUMENT_FIELD, b"[1]", b"title", b'"T"'],
        [b"id", b'"t"', b"resource_id", b'"r"', b"_c", b"1", b"id", b'"u"', *AT],
        [b"id", b'"t"', b"resource_id", b'"r"', b"metadata.a", b"1", *AT],
        [b"id", b'"t"'],
    ],
)
def test_chosen_records_decode_as_the_general_path(fields: list[bytes]) -> None:
    packed = pack_fields(fields)
    assert _outcome(CODEC.unpack, packed, "k") == _outcome(_general, CODEC, packed, "k")


def test_an_override_wins_over_the_document() -> None:
    flat = [DOCUMENT_FIELD, DOCUMENT, b"title", b'"New"', b"title", b'"Newer"', b"_c", b"1"]
    thread = CODEC.from_hash(flat, "k")
    assert thread.title == "Newer"
    assert thread == _general(CODEC, pack_fields(flat), "k")
