"""Feast's response rows written as protobuf bytes straight from Quiver's columns.

Feast's own path (``online_read`` rows, then ``utils._populate_response_from_feature_data``)
makes one ``ValueProto`` and one ``Timestamp`` Python object per value and per entity, which
is most of a ``get_online_features`` call's time at 100 entities. The functions here write the
same ``GetOnlineFeaturesResponse`` fields (feature names, and per feature its values, statuses
and event timestamps) as wire bytes built from the columns' numpy arrays, which the response
then parses in one call (``MergeFromString``, in protobuf's C code). The bytes decode to
exactly the messages Feast's path builds: same values, same statuses (PRESENT for a value or a
stored null, NOT_FOUND otherwise), same row timestamps; ``python/tests/test_feast.py`` compares
the two paths message for message.

Entity keys are also serialized here without an ``EntityKey`` proto per row: the bytes of
Feast's ``serialize_entity_key`` (version 3), checked against it by the tests.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType

from quiver.results import Status

_MASK64 = (1 << 64) - 1
_PRESENT, _NULL = int(Status.PRESENT), int(Status.NULL)
#: Feast's FieldStatus numbers.
_FS_PRESENT, _FS_NOT_FOUND = 1, 3


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of ``n`` (negative numbers as their 64-bit two's complement,
    as protobuf writes int32 and int64)."""
    n &= _MASK64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(128)]


def _len(payload: bytes) -> bytes:
    n = len(payload)
    return _SMALL[n] if n < 128 else varint(n)


def _field(number: int, wire: int) -> bytes:
    return varint((number << 3) | wire)


_VALUE_FIELDS = {f.name: f.number for f in ValueProto.DESCRIPTOR.fields}


# -- entity keys ---------------------------------------------------------------------------

_KEY_VALUES: Dict[str, Callable[[ValueProto], bytes]] = {
    "string_val": lambda v: struct.pack("<II", ValueType.STRING, len(b := v.string_val.encode("utf8"))) + b,
    "bytes_val": lambda v: struct.pack("<II", ValueType.BYTES, len(v.bytes_val)) + v.bytes_val,
    "int32_val": lambda v: struct.pack("<IIi", ValueType.INT32, 4, v.int32_val),
    "int64_val": lambda v: struct.pack("<IIq", ValueType.INT64, 8, v.int64_val),
    "unix_timestamp_val": lambda v: struct.pack("<IIq", ValueType.UNIX_TIMESTAMP, 8, v.unix_timestamp_val),
}


def entity_keys(values: Dict[str, List[ValueProto]], version: int) -> List[bytes]:
    """``serialize_entity_key`` of each row of ``values`` (join key -> a value per row), without
    an ``EntityKey`` per row for version 3; other versions, and value types Feast's own
    function refuses, go through Feast's function (which raises what it raises)."""
    names = list(values)
    columns = [values[k] for k in names]
    rows = len(columns[0]) if columns else 0
    if version == 3 and names:
        order = sorted(range(len(names)), key=names.__getitem__) if len(names) > 1 else [0]
        prefix = struct.pack("<I", len(names)) + b"".join(
            struct.pack("<II", ValueType.STRING, len(b := names[i].encode("utf8"))) + b for i in order
        )
        try:
            parts = [[_KEY_VALUES[v.WhichOneof("val")](v) for v in columns[i]] for i in order]
        except KeyError:
            parts = None
        if parts is not None:
            if len(parts) == 1:
                return [prefix + p for p in parts[0]]
            return [prefix + b"".join(ps) for ps in zip(*parts)]
    return [
        serialize_entity_key(
            EntityKeyProto(join_keys=names, entity_values=[c[r] for c in columns]),
            entity_key_serialization_version=version,
        )
        for r in range(rows)
    ]


# -- values --------------------------------------------------------------------------------


def _fixed(tag: bytes, dtype: str, width: int):
    def encode(col, rows: np.ndarray) -> List[bytes]:
        raw = np.ascontiguousarray(col.values[rows], dtype=dtype).tobytes()
        head = b"\x0a" + varint(len(tag) + width) + tag
        return [head + raw[i : i + width] for i in range(0, len(raw), width)]

    return encode


def _varints(tag: bytes):
    def encode(col, rows: np.ndarray) -> List[bytes]:
        out = []
        for x in col.values[rows].tolist():
            v = tag + varint(int(x))
            out.append(b"\x0a" + _len(v) + v)
        return out

    return encode


def _bools(tag: bytes):
    yes, no = b"\x0a\x02" + tag + b"\x01", b"\x0a\x02" + tag + b"\x00"

    def encode(col, rows: np.ndarray) -> List[bytes]:
        return [yes if x else no for x in col.values[rows].tolist()]

    return encode


def _objects(col, rows: np.ndarray) -> list:
    values = col.values
    return [values[r] for r in rows.tolist()]


def _delimited(tag: bytes, text: bool):
    def encode(col, rows: np.ndarray) -> List[bytes]:
        out = []
        for x in _objects(col, rows):
            b = x.encode("utf8") if text else bytes(x)
            v = tag + _len(b) + b
            out.append(b"\x0a" + _len(v) + v)
        return out

    return encode


def _serialized(col, rows: np.ndarray) -> List[bytes]:
    """A ``bytes`` feature holding a serialized ValueProto is the Value's bytes already."""
    return [b"\x0a" + _len(b) + b for b in map(bytes, _objects(col, rows))]


def _wrap_list(tag: bytes, inner: bytes) -> bytes:
    v = tag + _len(inner) + inner
    return b"\x0a" + _len(v) + v


def _float_lists(tag: bytes):
    def encode(col, rows: np.ndarray) -> List[bytes]:
        if col.kind == "vec":
            m = np.ascontiguousarray(col.values[rows], dtype="<f4")
            if m.shape[1] == 0:
                return [_wrap_list(tag, b"")] * len(rows)
            raw, width = m.tobytes(), m.shape[1] * 4
            head = b"\x0a" + varint(width)
            inner_len = len(head) + width
            v_head = tag + varint(inner_len)
            outer = b"\x0a" + varint(len(v_head) + inner_len) + v_head + head
            return [outer + raw[i : i + width] for i in range(0, len(raw), width)]
        out = []
        for x in _objects(col, rows):
            data = np.asarray(x, dtype="<f4").tobytes()
            out.append(_wrap_list(tag, b"\x0a" + _len(data) + data if data else b""))
        return out

    return encode


def _int_lists(tag: bytes):
    def encode(col, rows: np.ndarray) -> List[bytes]:
        out = []
        for x in _objects(col, rows):
            packed = b"".join(varint(int(i)) for i in np.asarray(x).tolist())
            out.append(_wrap_list(tag, b"\x0a" + _len(packed) + packed if packed else b""))
        return out

    return encode


def _string_lists(tag: bytes):
    def encode(col, rows: np.ndarray) -> List[bytes]:
        out = []
        for x in _objects(col, rows):
            inner = b"".join(b"\x0a" + _len(b) + b for b in (s.encode("utf8") for s in x))
            out.append(_wrap_list(tag, inner))
        return out

    return encode


def _tag(name: str, wire: int) -> bytes:
    return _field(_VALUE_FIELDS[name], wire)


_ENCODERS: Dict[Optional[str], Callable[[str], Callable[[Any, np.ndarray], List[bytes]]]] = {
    "double_val": lambda f: _fixed(_tag(f, 1), "<f8", 8),
    "float_val": lambda f: _fixed(_tag(f, 5), "<f4", 4),
    "int64_val": lambda f: _varints(_tag(f, 0)),
    "int32_val": lambda f: _varints(_tag(f, 0)),
    "unix_timestamp_val": lambda f: _varints(_tag(f, 0)),
    "bool_val": lambda f: _bools(_tag(f, 0)),
    "string_val": lambda f: _delimited(_tag(f, 2), True),
    "bytes_val": lambda f: _delimited(_tag(f, 2), False),
    "float_list_val": lambda f: _float_lists(_tag(f, 2)),
    "int64_list_val": lambda f: _int_lists(_tag(f, 2)),
    "int32_list_val": lambda f: _int_lists(_tag(f, 2)),
    "string_list_val": lambda f: _string_lists(_tag(f, 2)),
}


def encoder(field: Optional[str]) -> Callable[[Any, np.ndarray], List[bytes]]:
    """For a codec's ValueProto field (None: stored serialized), a function from a Quiver
    column and the rows to encode (all PRESENT) to each row's ``values`` entry of a
    FeatureVector, as bytes (field 1, length, Value)."""
    if field is None:
        return _serialized
    return _ENCODERS[field](field)


# -- feature vectors -----------------------------------------------------------------------

_EMPTY_VALUE = b"\x0a\x00"
_EMPTY_TS = b"\x1a\x00"


def _timestamp(us: int) -> bytes:
    seconds, micros = divmod(us, 1_000_000)
    m = (b"\x08" + varint(seconds) if seconds else b"") + (b"\x10" + varint(micros * 1000) if micros else b"")
    return b"\x1a" + _len(m) + m


class ViewEncoding:
    """One view's part of the response: the feature vectors of ``names`` for the entity rows
    whose keys sit at ``positions`` of the Quiver answer."""

    def __init__(self, names: Sequence[str], codecs: Sequence[Any]):
        self.names = list(names)
        self.encoders = [encoder(c.field) for c in codecs]

    def vectors(self, columns: Sequence[Any], ts_column: Any, positions: np.ndarray) -> tuple:
        """``(results bytes, present count)``: one ``results`` entry per feature, in order.
        Numpy operations are per view, not per feature, where they can be (a call for one
        entity is mostly their fixed costs)."""
        n = len(positions)
        if not self.names:
            return b"", 0
        statuses = np.stack([c.statuses for c in columns])[:, positions]
        present = statuses == _PRESENT
        has = present | (statuses == _NULL)
        row_has = has.any(axis=0).tolist()
        ts_present = ts_column.statuses[positions] == _PRESENT
        if ts_present.all():
            ts_us = ts_column.values[positions].tolist()
        else:
            times = np.stack([c.event_times_ms for c in columns])[:, positions]
            newest_us = np.where(has, times, 0).max(axis=0) * 1000
            ts_us = np.where(ts_present, ts_column.values[positions], newest_us).tolist()
        stamps = b"".join([_timestamp(t) if h else _EMPTY_TS for t, h in zip(ts_us, row_has)])
        codes = np.where(has, _FS_PRESENT, _FS_NOT_FOUND).astype(np.uint8)
        status_head = b"\x12" + varint(n) if n else b""
        all_present = present.all(axis=1).tolist()
        out = []
        for j, col in enumerate(columns):
            if all_present[j]:
                values = b"".join(self.encoders[j](col, positions))
            else:
                at = np.flatnonzero(present[j])
                slots = [_EMPTY_VALUE] * n
                if len(at):
                    for i, e in zip(at.tolist(), self.encoders[j](col, positions[at])):
                        slots[i] = e
                values = b"".join(slots)
            fv = values + (status_head + codes[j].tobytes() if n else b"") + stamps
            out.append(b"\x12" + _len(fv) + fv)
        return b"".join(out), int(has.sum())


def feature_names(names: Sequence[str]) -> bytes:
    """``metadata.feature_names.val`` entries for ``names``, as a response's bytes."""
    inner = b"".join(b"\x0a" + _len(b) + b for b in (n.encode("utf8") for n in names))
    names_msg = b"\x0a" + _len(inner) + inner
    return b"\x0a" + _len(names_msg) + names_msg
