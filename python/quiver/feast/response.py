"""Protobuf bytes for Feast's response and Feast's entity keys, without a Python object per
value.

The feature values of a response are written by the native get (``Handle.get_feast``,
``python/src/feast.rs``); this module writes the rest: the response's feature names, and
varints. Entity keys are also serialized here without an ``EntityKey`` proto per row: the bytes
of Feast's ``serialize_entity_key`` (version 3), checked against it by the tests.
"""

from __future__ import annotations

import struct
from typing import Callable, Dict, List, Sequence

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.protos.feast.types.Value_pb2 import ValueType

_MASK64 = (1 << 64) - 1


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


def feature_names(names: Sequence[str]) -> bytes:
    """``metadata.feature_names.val`` entries for ``names``, as a response's bytes."""
    inner = b"".join(b"\x0a" + _len(b) + b for b in (n.encode("utf8") for n in names))
    names_msg = b"\x0a" + _len(inner) + inner
    return b"\x0a" + _len(names_msg) + names_msg
