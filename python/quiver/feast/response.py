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

_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)
_COLS = np.arange(10)
#: A varint of ``v`` is ``1 + searchsorted(_LIMITS, v, "right")`` bytes long.
_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def varints(values: np.ndarray) -> tuple:
    """Varints of many integers at once: ``(bytes, lengths)``, the bytes a ``(n, w)`` uint8
    array whose row ``i`` starts with the ``lengths[i]`` bytes of ``varint(values[i])``
    (negative numbers as their 64-bit two's complement, as :func:`varint` writes them)."""
    v = np.asarray(values).astype(np.int64, copy=False).view(np.uint64)
    lengths = np.searchsorted(_LIMITS, v, side="right") + 1
    w = int(lengths.max()) if len(v) else 1
    shifted = v[:, None] >> _SHIFTS[None, :w]
    out = (shifted & np.uint64(0x7F)).astype(np.uint8)
    out |= (shifted > 0x7F).view(np.uint8) << 7
    return out, lengths


def _byte(value: int, n: int, keep=True) -> tuple:
    """A piece for :func:`_rows`: the byte ``value`` in every row (kept where ``keep``)."""
    return np.full((n, 1), value, dtype=np.uint8), np.broadcast_to(np.reshape(keep, (-1, 1)), (n, 1))


def _varint_piece(values: np.ndarray, keep=True) -> tuple:
    """A piece for :func:`_rows`: each row's varint (kept where ``keep``), and its lengths."""
    b, lengths = varints(values)
    mask = (_COLS[None, : b.shape[1]] < lengths[:, None]) & np.reshape(keep, (-1, 1))
    return (b, mask), lengths


def _rows(pieces: Sequence[tuple]) -> bytes:
    """The rows' bytes end to end: row ``i`` is, piece after piece, the bytes of the piece's
    row ``i`` where its mask is True. Each piece is ``(uint8 (n, w), bool (n, w))``."""
    data = np.hstack([d for d, _ in pieces])
    keep = np.hstack([k for _, k in pieces])
    return data[keep].tobytes()


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


# Many rows at once: a column's whole ``values`` entries (a Value for a present row, an empty
# one otherwise) as one bytes, built by numpy without a Python object per row.


def _entries(tag: bytes, payload: tuple, payload_len, present: np.ndarray) -> bytes:
    """``values`` entries: field 1, length, then (where ``present``) ``tag`` and the row's
    piece of ``payload``; an empty Value where not present. Entries stay under 128 bytes."""
    n = len(present)
    t = np.frombuffer(tag, dtype=np.uint8)
    lengths = np.where(present, len(tag) + np.asarray(payload_len), 0).astype(np.uint8)
    keep = present.reshape(-1, 1)
    return _rows([_byte(0x0A, n), (lengths.reshape(-1, 1), np.ones((n, 1), dtype=bool)),
                  (np.broadcast_to(t, (n, len(t))), np.broadcast_to(keep, (n, len(t)))), payload])


def _varint_rows(tag: bytes):
    def encode(col, rows: np.ndarray, present: np.ndarray) -> bytes:
        piece, lengths = _varint_piece(col.values[rows], present)
        return _entries(tag, piece, lengths, present)

    return encode


_ROW_ENCODERS: Dict[str, Callable[[str], Callable[[Any, np.ndarray, np.ndarray], bytes]]] = {
    "int64_val": lambda f: _varint_rows(_tag(f, 0)),
    "int32_val": lambda f: _varint_rows(_tag(f, 0)),
    "unix_timestamp_val": lambda f: _varint_rows(_tag(f, 0)),
}

#: From this many entity rows on, a view's timestamps and integer values are encoded by numpy
#: for all rows at once; below it, row by row (numpy's fixed cost per call is then the larger).
VECTOR_MIN_ROWS = 64
#: Below this many entity rows, a view's statuses are looked at with Python lists, not numpy.
FEW_ROWS = 8


def _timestamps(ts_us: np.ndarray, row_has: np.ndarray) -> bytes:
    """``event_timestamps`` entries (:func:`_timestamp`, or an empty one where the row has
    nothing) for every row at once."""
    n = len(ts_us)
    sec, us = np.divmod(np.asarray(ts_us, dtype=np.int64), 1_000_000)
    nanos = us * 1000
    has_sec, has_nanos = row_has & (sec != 0), row_has & (nanos != 0)
    sec_piece, sec_len = _varint_piece(sec, has_sec)
    nanos_piece, nanos_len = _varint_piece(nanos, has_nanos)
    lengths = (has_sec * (1 + sec_len) + has_nanos * (1 + nanos_len)).astype(np.uint8)
    return _rows([_byte(0x1A, n), (lengths.reshape(-1, 1), np.ones((n, 1), dtype=bool)),
                  _byte(0x08, n, has_sec), sec_piece, _byte(0x10, n, has_nanos), nanos_piece])


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
        self.row_encoders = [_ROW_ENCODERS[c.field](c.field) if c.field in _ROW_ENCODERS else None for c in codecs]

    def vectors(self, columns: Sequence[Any], ts_column: Any, positions: np.ndarray) -> tuple:
        """``(results bytes, present count)``: one ``results`` entry per feature, in order.
        Numpy operations are per view, not per feature, where they can be (a call for one
        entity is mostly their fixed costs)."""
        n = len(positions)
        if not self.names:
            return b"", 0
        if n < FEW_ROWS:
            return self._few(columns, ts_column, positions)
        statuses = np.stack([c.statuses for c in columns])[:, positions]
        present = statuses == _PRESENT
        has = present | (statuses == _NULL)
        row_has = has.any(axis=0)
        ts_present = ts_column.statuses[positions] == _PRESENT
        if ts_present.all():
            ts_us = ts_column.values[positions]
        else:
            times = np.stack([c.event_times_ms for c in columns])[:, positions]
            newest_us = np.where(has, times, 0).max(axis=0) * 1000
            ts_us = np.where(ts_present, ts_column.values[positions], newest_us)
        many = n >= VECTOR_MIN_ROWS
        if many:
            stamps = _timestamps(ts_us, row_has)
        else:
            stamps = b"".join([_timestamp(t) if h else _EMPTY_TS for t, h in zip(ts_us.tolist(), row_has.tolist())])
        codes = np.where(has, _FS_PRESENT, _FS_NOT_FOUND).astype(np.uint8)
        status_head = b"\x12" + varint(n) if n else b""
        all_present = present.all(axis=1).tolist()
        out = []
        for j, col in enumerate(columns):
            if many and self.row_encoders[j] is not None:
                values = self.row_encoders[j](col, positions, present[j])
            elif all_present[j]:
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


    def _few(self, columns: Sequence[Any], ts_column: Any, positions: np.ndarray) -> tuple:
        """:meth:`vectors` for a few entity rows, with Python lists instead of numpy arrays
        (a numpy call's fixed cost is more than a few rows' work)."""
        pos = positions.tolist()
        n = len(pos)
        statuses = [[s[p] for p in pos] for s in (c.statuses.tolist() for c in columns)]
        present = [[x == _PRESENT for x in st] for st in statuses]
        has = [[x == _PRESENT or x == _NULL for x in st] for st in statuses]
        row_has = [any(h[i] for h in has) for i in range(n)]
        ts_status, ts_values = ts_column.statuses.tolist(), ts_column.values.tolist()
        stamps = []
        for i, p in enumerate(pos):
            if not row_has[i]:
                stamps.append(_EMPTY_TS)
            elif ts_status[p] == _PRESENT:
                stamps.append(_timestamp(ts_values[p]))
            else:
                newest = max(int(c.event_times_ms[p]) for c, h in zip(columns, has) if h[i])
                stamps.append(_timestamp(newest * 1000))
        stamp_bytes = b"".join(stamps)
        status_head = b"\x12" + _SMALL[n] if n else b""
        out = []
        count = 0
        for j, col in enumerate(columns):
            pj = present[j]
            if all(pj):
                values = b"".join(self.encoders[j](col, positions))
            else:
                at = [i for i in range(n) if pj[i]]
                slots = [_EMPTY_VALUE] * n
                if at:
                    for i, e in zip(at, self.encoders[j](col, positions[at])):
                        slots[i] = e
                values = b"".join(slots)
            hj = has[j]
            count += sum(hj)
            codes = bytes([_FS_PRESENT if h else _FS_NOT_FOUND for h in hj])
            fv = values + status_head + codes + stamp_bytes
            out.append(b"\x12" + _len(fv) + fv)
        return b"".join(out), count


def feature_names(names: Sequence[str]) -> bytes:
    """``metadata.feature_names.val`` entries for ``names``, as a response's bytes."""
    inner = b"".join(b"\x0a" + _len(b) + b for b in (n.encode("utf8") for n in names))
    names_msg = b"\x0a" + _len(inner) + inner
    return b"\x0a" + _len(names_msg) + names_msg
