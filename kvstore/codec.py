"""Serialization: msgspec encoders and decoders, built once per format and record type.

Records are stored in Redis hashes, one field per top-level attribute, each value encoded on
its own. That lets an update change one attribute with ``HSET`` and merge ``metadata`` key
by key (``metadata.<key>`` fields) atomically, without decoding JSON inside Lua. Reading a
record joins its fields back into one document, which the typed decoder validates in a
single pass.

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
    "Format",
    "FormatName",
    "RecordCodec",
    "get_format",
    "record_codec",
    "unencodable",
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
    """One wire format: how values are encoded, decoded and joined into a document."""

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

    def document(self, members: Sequence[tuple[str, bytes]]) -> bytes:
        """Join already-encoded values into one encoded object ``{name: value, ...}``."""
        if self.binary:
            count = len(members)
            header = bytes([0x80 | count]) if count < 16 else b"\xde" + count.to_bytes(2, "big")
            return header + b"".join(msgspec.msgpack.encode(k) + v for k, v in members)
        return b"{" + b",".join(_json_encoder.encode(k) + b":" + v for k, v in members) + b"}"


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


class RecordCodec(Generic[S]):
    """Turns one record type into hash fields and back, in one :class:`Format`."""

    __slots__ = ("_format", "_names", "_type")

    def __init__(self, type_: type[S], fmt: Format) -> None:
        self._type = type_
        self._format = fmt
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
        """Decode an ``HGETALL`` reply into a record.

        Raises:
            CorruptRecordError: naming ``key`` when the stored bytes do not decode.
        """
        members: list[tuple[str, bytes]] = []
        merged: dict[str, list[tuple[str, bytes]]] = {}
        try:
            for i in range(0, len(flat), 2):
                field = flat[i]
                if field.startswith(INTERNAL_PREFIX):
                    continue
                attribute, dot, sub = field.partition(b".")
                if dot:
                    merged.setdefault(attribute.decode(), []).append((sub.decode(), flat[i + 1]))
                else:
                    members.append((field.decode(), flat[i + 1]))
            for name, entries in merged.items():
                members.append((name, self._format.document(entries)))
            return self._format.decode(self._format.document(members), self._type)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(key, str(exc)) from None


@functools.cache
def record_codec(type_: type[S], name: FormatName) -> RecordCodec[S]:
    """The shared :class:`RecordCodec` for a record type and format."""
    return RecordCodec(type_, get_format(name))
