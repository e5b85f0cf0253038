"""Serialization: msgspec encoders and decoders, built once per format and record type.

Records live in Redis hashes, in one of two layouts:

* **document** (most records): the whole record encoded once, in the field ``_d``. Reading
  it back is one typed decode, as fast as msgspec goes.
* **attributes** (records that scripts rewrite piece by piece, like a workflow run whose
  snapshot changes on every step): one field per top-level attribute.

Either way, an update may later set single attributes as fields of their own, and
``metadata`` merges key by key through ``metadata.<key>`` fields: that is how updates
change a record atomically with ``HSET``, without decoding JSON inside Lua. Such fields
override what ``_d`` says. A hash with only ``_d`` (the common case) decodes in one pass; one
with overrides is merged first, through :class:`msgspec.Raw` values, so nothing is decoded
twice.

Two formats: JSON (the default; text-safe, so it suits every driver) and MessagePack
(smaller and faster, for binary-safe drivers only).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeAlias, TypeVar, cast

import msgspec

from kvstore.errors import CorruptRecordError, ValidationError

__all__ = [
    "DOCUMENT_FIELD",
    "Format",
    "FormatName",
    "Layout",
    "RecordCodec",
    "get_format",
    "pack_fields",
    "record_codec",
    "unencodable",
    "unpack_fields",
    "validate",
]

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)
FormatName: TypeAlias = Literal["json", "msgpack"]

#: Hash fields whose name starts with this belong to the store, not to the record.
INTERNAL_PREFIX = b"_"
#: Dict attributes stored key by key, so that updates merge instead of replace.
MERGED_ATTRIBUTES = ("metadata",)

_json_encoder = msgspec.json.Encoder()
_ERROR_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `(?P<name>[^`]*)`")


class Format:
    """One wire format: how values are encoded and decoded."""

    __slots__ = ("_decoders", "_encode", "binary", "name")

    def __init__(self, name: FormatName) -> None:
        self.name = name
        self.binary = name == "msgpack"
        self._encode = (msgspec.msgpack.Encoder() if self.binary else msgspec.json.Encoder()).encode
        self._decoders: dict[Any, Any] = {}

    def encode(self, value: Any) -> bytes:
        """Encode any msgspec-supported value."""
        return self._encode(value)

    def decoder(self, type_: Any) -> Any:
        """The typed decoder for ``type_``, built on first use and kept."""
        decoder = self._decoders.get(type_)
        if decoder is None:
            module = msgspec.msgpack if self.binary else msgspec.json
            decoder = self._decoders[type_] = module.Decoder(type_)
        return decoder

    def decode(self, data: bytes, type_: type[T]) -> T:
        """Decode and validate ``data`` as ``type_``."""
        return cast(T, self.decoder(type_).decode(data))

    def raw_object(self, data: bytes) -> dict[str, msgspec.Raw]:
        """Split an encoded object into its members, each still encoded."""
        return cast(dict[str, msgspec.Raw], self.decoder(dict[str, msgspec.Raw]).decode(data))


@functools.cache
def get_format(name: FormatName) -> Format:
    """The shared :class:`Format` for ``name``."""
    if name not in ("json", "msgpack"):
        raise ValueError(f"unknown codec {name!r}: choose 'json' or 'msgpack'")
    return Format(name)


def validate(value: Any, type_: type[T], *, where: str = "") -> T:
    """Check ``value`` (a ``type_`` instance or a mapping of its fields) against ``type_``.

    msgspec Structs do not check types when built, so a record built by hand may hold
    anything; this catches that before a write, and also values of ``Any`` attributes that
    cannot be encoded at all.

    Returns:
        A validated ``type_`` instance.

    Raises:
        ValidationError: naming the offending field, e.g. ``messages[1].role``.
    """
    try:
        if isinstance(value, Mapping):
            value = msgspec.convert(value, type_)
        elif not isinstance(value, type_):
            raise msgspec.ValidationError(
                f"Expected `{type_.__name__}` or a mapping, got `{type(value).__name__}`"
            )
        encoded = _json_encoder.encode(value)
    except msgspec.ValidationError as exc:
        raise _field_error(exc, where) from None
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise unencodable(value, _json_encoder.encode, exc, where) from None
    try:
        return cast(T, _validator(cast(Any, type_)).decode(encoded))
    except msgspec.ValidationError as exc:
        raise _field_error(exc, where) from None


def _field_error(exc: msgspec.ValidationError, where: str) -> ValidationError:
    """Our ValidationError for msgspec's, with the field path prefixed by ``where``."""
    text = str(exc)
    match = _ERROR_PATH.search(text)
    path = where + (match["path"] if match else "")
    missing = _MISSING_FIELD.search(text)
    if missing:
        path += "." + missing["name"]
    return ValidationError(_ERROR_PATH.sub("", text), field=path.lstrip(".") or None)


def unencodable(
    record: Any, encode: Callable[[Any], bytes], exc: Exception, where: str
) -> ValidationError:
    """The ValidationError for a record that ``encode`` refused, naming the attribute."""
    failed = None
    for name in getattr(record, "__struct_fields__", ()):
        try:
            encode(getattr(record, name))
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            failed = name
            break
    field = where if failed is None else f"{where}.{failed}"
    return ValidationError(f"cannot be encoded: {exc}", field=field.lstrip(".") or None)


@functools.cache
def _validator(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


#: The hash field that holds a record encoded as one document.
DOCUMENT_FIELD = b"_d"

Layout: TypeAlias = Literal["document", "attributes"]


class RecordCodec(Generic[S]):
    """Turns one record type into hash fields and back, in one :class:`Format`.

    Args:
        type_: The record type.
        fmt: The format values are encoded in.
        layout: How :meth:`to_fields` lays a record out (see the module docstring).
    """

    __slots__ = ("_decode", "_format", "_layout", "_names", "_type")

    def __init__(self, type_: type[S], fmt: Format, layout: Layout = "document") -> None:
        self._type = type_
        self._format = fmt
        self._layout = layout
        self._decode = fmt.decoder(type_).decode
        self._names = {f.name: f.name.encode() for f in msgspec.structs.fields(type_)}

    @property
    def format(self) -> Format:
        """The format values are encoded in."""
        return self._format

    def encode(self, value: Any) -> bytes:
        """Encode one attribute value."""
        return self._format.encode(value)

    def to_fields(self, record: S) -> list[bytes]:
        """``record`` as a flat ``[field, value, field, value, ...]`` list for ``HSET``."""
        if self._layout == "document":
            return [DOCUMENT_FIELD, self._format.encode(record)]
        flat: list[bytes] = []
        for name, value in msgspec.structs.asdict(record).items():
            if name in MERGED_ATTRIBUTES:
                flat += self.merged_fields(name, value)
            else:
                flat += (self._names[name], self._format.encode(value))
        return flat

    def merged_fields(self, attribute: str, mapping: Mapping[str, Any]) -> list[bytes]:
        """The ``attribute.<key>`` fields that store ``mapping`` key by key."""
        prefix = attribute.encode() + b"."
        flat: list[bytes] = []
        for key, value in mapping.items():
            flat += (prefix + key.encode(), self._format.encode(value))
        return flat

    def from_hash(self, flat: Sequence[bytes], key: str) -> S:
        """Decode an ``HGETALL`` reply (or the fields of a stream entry) into a record.

        Raises:
            CorruptRecordError: naming ``key`` when the stored bytes do not decode.
        """
        document: bytes | None = None
        overrides: list[tuple[bytes, bytes]] | None = None
        for i in range(0, len(flat), 2):
            field = flat[i]
            if field == DOCUMENT_FIELD:
                document = flat[i + 1]
            elif not field.startswith(INTERNAL_PREFIX):
                if overrides is None:
                    overrides = []
                overrides.append((field, flat[i + 1]))
        try:
            if overrides is None and document is not None:
                return cast(S, self._decode(document))
            return cast(S, self._decode(self._merge(document, overrides or [])))
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(key, str(exc)) from None

    def pack(self, record: S) -> bytes:
        """``record`` as one packed value (see :func:`pack_fields`)."""
        if self._layout == "document":
            return b"\x00" + self._format.encode(record)
        return pack_fields(self.to_fields(record))

    def unpack(self, packed: bytes, where: str) -> S:
        """Decode a packed value (see :func:`pack_fields`) into a record.

        Raises:
            CorruptRecordError: naming ``where`` when the stored bytes do not decode.
        """
        if packed[:1] == b"\x00":
            try:
                return cast(S, self._decode(packed[1:]))
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
                raise CorruptRecordError(where, str(exc)) from None
        try:
            flat = unpack_fields(packed)
        except ValueError as exc:
            raise CorruptRecordError(where, str(exc)) from None
        return self.from_hash(flat, where)

    def _merge(self, document: bytes | None, overrides: list[tuple[bytes, bytes]]) -> bytes:
        """One encoded document: ``document``'s members with ``overrides`` applied."""
        fmt = self._format
        members: dict[str, Any] = {} if document is None else fmt.raw_object(document)
        merged: dict[str, dict[str, Any]] = {}
        for field, value in overrides:
            attribute, dot, sub = field.decode().partition(".")
            if not dot:
                members[attribute] = msgspec.Raw(value)
                continue
            if attribute not in merged:
                base = members.get(attribute)
                merged[attribute] = {} if base is None else dict(fmt.raw_object(bytes(base)))
            merged[attribute][sub] = msgspec.Raw(value)
        members.update(merged)
        return fmt.encode(members)


@functools.cache
def record_codec(type_: type[S], name: FormatName, layout: Layout = "document") -> RecordCodec[S]:
    """The shared :class:`RecordCodec` for a record type, format and layout."""
    return RecordCodec(type_, get_format(name), layout)


# -- packed records ----------------------------------------------------------------------
#
# Layout 2 keeps each record in one field of a hash shared by its bucket (see kvstore.keys),
# so a record's hash fields are packed into one value. Lua reads and updates the same
# format (kvstore.domains._lua), so an update still merges atomically in a script.

_DOCUMENT_ONLY = 0
_FIELD_LIST = 1


def pack_fields(flat: Sequence[bytes]) -> bytes:
    """Pack a flat ``[name, value, name, value, ...]`` list into one value.

    A lone document (``[b"_d", document]``, the common case) packs as ``\\0`` + document,
    so that reading it back is one slice.
    """
    if len(flat) == 2 and flat[0] == DOCUMENT_FIELD:
        return b"\x00" + flat[1]
    parts = [b"\x01"]
    for i in range(0, len(flat), 2):
        name, value = flat[i], flat[i + 1]
        parts.append(b"%04x%s%08x%s" % (len(name), name, len(value), value))
    return b"".join(parts)


def unpack_fields(packed: bytes) -> list[bytes]:
    """The flat ``[name, value, ...]`` list that :func:`pack_fields` packed.

    Raises:
        ValueError: ``packed`` is not a packed field list.
    """
    if not packed:
        raise ValueError("empty packed record")
    if packed[0] == _DOCUMENT_ONLY:
        return [DOCUMENT_FIELD, packed[1:]]
    if packed[0] != _FIELD_LIST:
        raise ValueError("not a packed record")
    flat: list[bytes] = []
    pos, size = 1, len(packed)
    while pos < size:
        name_end = pos + 4 + int(packed[pos : pos + 4], 16)
        value_start = name_end + 8
        value_end = value_start + int(packed[name_end:value_start], 16)
        if value_end > size:
            raise ValueError("truncated packed record")
        flat += (packed[pos + 4 : name_end], packed[value_start:value_end])
        pos = value_end
    return flat
