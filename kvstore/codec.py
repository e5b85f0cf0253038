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

What may be stored. Every value a caller gives passes the same checks, in its JSON form,
before anything is written (:func:`validate` for records, :meth:`Format.encode_value` for
single values such as a snapshot or a metadata entry), whichever format stores it:

* msgspec must encode it (``object()`` cannot be stored);
* it nests at most :data:`MAX_DEPTH` lists and objects deep, so that any reader can decode
  it again well within Python's recursion limit;
* it holds no NaN or infinity: JSON has no spelling for them (msgspec writes ``null``), and
  a value that comes back changed is worse than one refused;
* its text is UTF-8 (no lone surrogates).

Each failure is a :class:`~kvstore.errors.ValidationError` naming the field. The checks
cost next to nothing for common values: the depth check counts brackets and only walks
the document when there are more than :data:`MAX_DEPTH` of them, and the NaN check only
looks closer when the JSON holds a ``null``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeAlias, TypeVar, cast

import msgspec

from kvstore._checks import check_text, utf8
from kvstore.errors import CorruptRecordError, ValidationError

__all__ = [
    "DOCUMENT_FIELD",
    "MAX_DEPTH",
    "Format",
    "FormatName",
    "Layout",
    "RecordCodec",
    "check_json",
    "check_record",
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

#: How deeply a stored value may nest lists and objects, its record's own levels included.
MAX_DEPTH = 256

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
# What encoding may raise for a value it cannot encode (a lone surrogate: UnicodeEncodeError,
# a ValueError; nesting beyond the interpreter's stack: RecursionError).
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError)
# A JSON string in msgspec's output (which escapes control characters).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# A MessagePack float64 whose exponent bits are all set: NaN or an infinity. The same bytes
# can occur inside a string, so a match is confirmed by walking the value.
_NON_FINITE_FLOAT64 = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")
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
        """Encode any msgspec-supported value, unchecked: for values checked already."""
        return self._encode(value)

    def encode_value(self, value: Any, field: str | None = None) -> bytes:
        """Encode a value a caller gave, after the checks of every stored value (see the
        module docstring).

        Raises:
            ValidationError: naming ``field``, for a value that cannot be stored as it is.
        """
        data = check_json(value, field or "")
        if not self.binary:
            return data
        try:
            return self._encode(value)
        except _ENCODE_ERRORS as exc:
            raise unencodable(value, self._encode, exc, field or "") from None

    def decoder(self, type_: Any) -> Any:
        """The typed decoder for ``type_``, built on first use and kept.

        Raises:
            ValidationError: ``type_`` is not a type msgspec can decode into.
        """
        try:
            decoder = self._decoders.get(type_)
            if decoder is None:
                module = msgspec.msgpack if self.binary else msgspec.json
                decoder = self._decoders[type_] = module.Decoder(type_)
        except TypeError as exc:  # unhashable, or not a type msgspec supports
            raise ValidationError(f"cannot decode into {type_!r}: {exc}") from None
        return decoder

    def decode(self, data: bytes, type_: type[T]) -> T:
        """Decode and validate ``data`` as ``type_``.

        Raises:
            msgspec.DecodeError: ``data`` is malformed, or nested too deep to decode.
            msgspec.ValidationError: ``data`` does not fit ``type_``.
            ValidationError: ``type_`` is not a type msgspec can decode into.
        """
        decoder = self.decoder(type_)
        try:
            return cast(T, decoder.decode(data))
        except RecursionError:
            raise msgspec.DecodeError("nested too deep to decode") from None

    def raw_object(self, data: bytes) -> dict[str, msgspec.Raw]:
        """Split an encoded object into its members, each still encoded."""
        return cast(dict[str, msgspec.Raw], self.decoder(dict[str, msgspec.Raw]).decode(data))

    def raw_list(self, data: bytes) -> list[msgspec.Raw]:
        """Split an encoded list into its items, each still encoded."""
        return cast(list[msgspec.Raw], self.decoder(list[msgspec.Raw]).decode(data))


@functools.cache
def get_format(name: FormatName) -> Format:
    """The shared :class:`Format` for ``name``."""
    if name not in ("json", "msgpack"):
        raise ValueError(f"unknown codec {name!r}: choose 'json' or 'msgpack'")
    return Format(name)


def validate(value: Any, type_: type[T], *, where: str = "") -> T:
    """Check ``value`` (a ``type_`` instance or a mapping of its fields) against ``type_``.

    msgspec Structs do not check types when built, so a record built by hand may hold
    anything; this catches that before a write, along with values that cannot be stored
    (see the module docstring).

    Returns:
        A validated ``type_`` instance.

    Raises:
        ValidationError: naming the offending field, e.g. ``messages[1].role``.
    """
    return check_record(value, type_, where=where)[0]


def check_record(value: Any, type_: type[T], *, where: str = "") -> tuple[T, bytes]:
    """:func:`validate`, also returning the record's JSON document, encoded once.

    The document is the record in kvstore's JSON format, so a JSON store writes it as it is
    (see :meth:`RecordCodec.check`) instead of encoding the record a second time.
    """
    try:
        if isinstance(value, Mapping):
            value = msgspec.convert(value, type_)
        elif not isinstance(value, type_):
            raise msgspec.ValidationError(
                f"Expected `{type_.__name__}` or a mapping, got `{type(value).__name__}`"
            )
    except msgspec.ValidationError as exc:
        raise _field_error(exc, where) from None
    except _ENCODE_ERRORS as exc:  # a key with a lone surrogate, a mapping nested too deep
        raise unencodable(None, _json_encoder.encode, exc, where) from None
    data = check_json(value, where)
    try:
        return cast(T, _validator(cast(Any, type_)).decode(data)), data
    except msgspec.ValidationError as exc:
        raise _field_error(exc, where) from None


def check_json(value: Any, where: str = "") -> bytes:
    """``value`` encoded as JSON, once it passed the checks of every stored value.

    Raises:
        ValidationError: naming ``where`` (and the attribute of a record), for a value
            msgspec cannot encode, nested deeper than :data:`MAX_DEPTH`, holding NaN or an
            infinity, or text with a lone surrogate.
    """
    try:
        data = _json_encoder.encode(value)
    except _ENCODE_ERRORS as exc:
        raise unencodable(value, _json_encoder.encode, exc, where) from None
    if _too_deep_json(data):
        raise _too_deep(where + _deep_attribute(value))
    if b"null" in data:  # msgspec writes NaN and infinities as null
        path = _non_finite(value)
        if path is not None:
            raise ValidationError(
                "NaN and infinity cannot be stored: JSON has no spelling for them",
                field=(where + path).lstrip(".") or None,
            )
    return data


def _too_deep_json(data: bytes) -> bool:
    """Whether the JSON document ``data`` nests lists and objects beyond MAX_DEPTH."""
    if len(data) <= 2 * MAX_DEPTH or data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False  # the common case: too few brackets, wherever they are
    # The document's brackets alone, strings left out; each pass strips the innermost
    # pairs, so the skeleton is empty after as many passes as the document is deep.
    skeleton = _JSON_STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"[]", b"")
    return bool(skeleton)


def _too_deep(where: str) -> ValidationError:
    return ValidationError(
        f"nested too deep: values may nest lists and objects at most {MAX_DEPTH} levels deep",
        field=where.lstrip(".") or None,
    )


def _deep_attribute(record: Any) -> str:
    """``.name`` of the attribute of ``record`` that nests too deep, or ``""``."""
    names: tuple[str, ...] = getattr(record, "__struct_fields__", ())
    for name in names:
        value = getattr(record, name)
        if value is msgspec.UNSET:
            continue
        try:
            if _too_deep_json(_json_encoder.encode(value)):
                return "." + name
        except _ENCODE_ERRORS:
            return "." + name
    return ""


def _non_finite(value: Any) -> str | None:
    """The path (``.content[2].x``) of a NaN or infinity in ``value``, or None."""
    try:
        if not _NON_FINITE_FLOAT64.search(_msgpack_encoder.encode(value)):
            return None
    except _ENCODE_ERRORS:
        pass  # MessagePack refuses some values JSON takes (huge integers): walk instead
    stack: list[tuple[str, Any]] = [("", msgspec.to_builtins(value))]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path
        elif isinstance(item, dict):
            stack += ((f"{path}.{key}", member) for key, member in item.items())
        elif isinstance(item, list):
            stack += ((f"{path}[{i}]", member) for i, member in enumerate(item))
    return None


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
        value = getattr(record, name)
        if value is msgspec.UNSET:
            continue
        try:
            encode(value)
        except _ENCODE_ERRORS:
            failed = name
            break
    field = where if failed is None else f"{where}.{failed}"
    if isinstance(exc, RecursionError):
        return _too_deep(field)
    if isinstance(exc, UnicodeEncodeError):
        return ValidationError(
            "holds text with a lone surrogate (U+D800 to U+DFFF), which UTF-8 cannot encode",
            field=field.lstrip(".") or None,
        )
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

    __slots__ = ("_decode", "_format", "_layout", "_names", "_spliceable", "_type")

    def __init__(self, type_: type[S], fmt: Format, layout: Layout = "document") -> None:
        self._type = type_
        self._format = fmt
        self._layout = layout
        self._decode = fmt.decoder(type_).decode
        self._names = {f.name: f.name.encode() for f in msgspec.structs.fields(type_)}
        # Attributes an override may be spliced into a JSON document as (see from_hash).
        self._spliceable = frozenset(
            () if fmt.binary else (n.encode() for n in self._names if n.isidentifier())
        )

    @property
    def format(self) -> Format:
        """The format values are encoded in."""
        return self._format

    def encode(self, value: Any) -> bytes:
        """Encode one attribute value, unchecked: for values checked already."""
        return self._format.encode(value)

    def encode_value(self, value: Any, field: str | None = None) -> bytes:
        """Encode one attribute value a caller gave (see :meth:`Format.encode_value`).

        Raises:
            ValidationError: naming ``field``, for a value that cannot be stored.
        """
        return self._format.encode_value(value, field)

    def check(self, value: S | Mapping[str, Any], where: str = "") -> tuple[S, list[bytes]]:
        """Validate a record a caller gave and lay it out for ``HSET``, encoding it once.

        :func:`validate` followed by :meth:`fields`, except that a JSON document is
        written as the validation encoded it, not encoded a second time.

        Returns:
            The validated record and its flat ``[field, value, ...]`` list.

        Raises:
            ValidationError: naming the offending field under ``where``.
        """
        record, data = check_record(value, self._type, where=where)
        if self._layout == "document" and not self._format.binary:
            return record, [DOCUMENT_FIELD, data]
        return record, self.fields(record, where)

    def check_packed(self, value: S | Mapping[str, Any], where: str = "") -> tuple[S, bytes]:
        """:meth:`check`, packed into one value (see :func:`pack_fields`): a record a
        caller gave, validated and encoded once."""
        record, flat = self.check(value, where)
        return record, pack_fields(flat)

    def fields(self, record: S, where: str = "") -> list[bytes]:
        """:meth:`to_fields` for a validated record, naming the attribute the format
        cannot encode (MessagePack refuses integers beyond 64 bits, which JSON takes).

        Raises:
            ValidationError: naming ``where`` and the attribute, e.g. ``spans[2].attributes``.
        """
        try:
            return self.to_fields(record)
        except _ENCODE_ERRORS as exc:
            raise unencodable(record, self.encode, exc, where) from None

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
        """The ``attribute.<key>`` fields that store ``mapping`` key by key.

        Keys and values are checked as a caller's input (see :meth:`Format.encode_value`),
        so an unchecked mapping (an update's ``metadata``) may be passed.

        Raises:
            ValidationError: naming ``attribute`` and the key, e.g. ``metadata.tags``.
        """
        prefix = attribute.encode() + b"."
        encode = self._format.encode_value
        flat: list[bytes] = []
        for key, value in mapping.items():
            name = check_text(key, attribute)
            flat += (prefix + utf8(name, attribute), encode(value, f"{attribute}.{name}"))
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
        if overrides is not None:
            # Updated attributes on a JSON document (a listing decodes a page of them), or
            # a record stored attribute by attribute: appended as members, which msgspec
            # reads as _merge's output, since it keeps the last of repeated keys, without
            # splitting and re-encoding anything.
            spliceable = self._spliceable
            if all(field in spliceable for field, _ in overrides):
                parts = [b"{" if document is None else document[:-1]]
                for field, value in overrides:
                    parts += (b',"', field, b'":', value)
                parts.append(b"}")
                if document is None:
                    parts[1] = b'"'  # no comma before the first member
                try:
                    return cast(S, self._decode(b"".join(parts)))
                except (
                    msgspec.DecodeError,
                    msgspec.ValidationError,
                    UnicodeDecodeError,
                    RecursionError,
                ):
                    pass  # not an object, or a bad value: _merge's path says what is wrong
        try:
            if overrides is None and document is not None:
                return cast(S, self._decode(document))
            return cast(S, self._decode(self._merge(document, overrides or [])))
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(key, str(exc)) from None
        except RecursionError:
            raise CorruptRecordError(key, "nested too deep to decode") from None

    def pack(self, record: S, where: str = "") -> bytes:
        """A validated ``record`` as one packed value (see :func:`pack_fields`).

        Raises:
            ValidationError: naming ``where`` and an attribute the format cannot encode.
        """
        return pack_fields(self.fields(record, where))

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
        document = _lone_document(packed)
        if document is not None:
            return self.from_hash([DOCUMENT_FIELD, document], where)
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
        appended: dict[str, list[Any]] = {}
        for field, value in overrides:
            attribute, dot, sub = field.decode().partition(".")
            if not dot:
                # ``<list attribute>+<n>``: items an update appended (a span's events), in
                # order, so that a script appends without decoding the list.
                name, plus, _ = attribute.partition("+")
                if plus:
                    if name not in appended:
                        base = members.get(name)
                        appended[name] = [] if base is None else fmt.raw_list(bytes(base))
                    appended[name] += fmt.raw_list(value)
                    continue
                members[attribute] = msgspec.Raw(value)
                continue
            if attribute not in merged:
                base = members.get(attribute)
                merged[attribute] = {} if base is None else dict(fmt.raw_object(bytes(base)))
            merged[attribute][sub] = msgspec.Raw(value)
        members.update(merged)
        members.update(appended)
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


_DOCUMENT_ENTRY = b"\x010002" + DOCUMENT_FIELD
_INTERNAL = INTERNAL_PREFIX[0]


def _lone_document(packed: bytes) -> bytes | None:
    """The document of a packed field list that holds a document first and otherwise only
    internal fields (a record with its index keys, the common case), or None.

    What :meth:`RecordCodec.from_hash` would keep of :func:`unpack_fields`'s list, found
    without slicing the fields it skips; None for anything else (a later document, another
    field, or a malformed list, which the general path reports).
    """
    if not packed.startswith(_DOCUMENT_ENTRY):
        return None
    size = len(packed)
    try:
        end = pos = 15 + int(packed[7:15], 16)
        if end < 15:
            return None
        while pos < size:
            name = pos + 4
            length = int(packed[pos:name], 16)
            if (
                length <= 0
                or packed[name] != _INTERNAL
                or packed[name : name + length] == DOCUMENT_FIELD
            ):
                return None  # a field of the record, or a second document
            pos = name + length + 8
            value = int(packed[pos - 8 : pos], 16)
            if value < 0:
                return None
            pos += value
    except (ValueError, IndexError):
        return None
    if end > size or pos != size:
        return None
    return packed[15:end]


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
