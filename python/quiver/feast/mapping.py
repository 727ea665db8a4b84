"""How Feast objects map onto Quiver: names, types, values and keys.

- A feature view is a group named after ``<project>__<view>``; a Feast feature is a feature
  of that group. Feast names that are not Quiver names (``[a-z][a-z0-9_]{0,62}``) are mapped
  to a readable prefix plus 8 hex digits of a hash of the original, so the mapping needs no
  lookup table; the original name is kept as the feature's (or group's) description.
- An entity key is the group's ``bytes`` key: Feast's own ``serialize_entity_key`` (join key
  names, types and values), the same bytes Feast's Redis store hashes on. Every group of a
  project has that key type, so one request reads any mix of views.
- The group's description names the view and records its entity key, which quiverd's HTTP
  API (docs/HTTP.md) reads to answer Feast's ``/get-online-features`` by itself:
  ``Feast feature view <project>/<view>; entity key {"join_keys": [[name, TYPE], ...],
  "version": V}`` (TYPE a Feast ``ValueType`` name, V the ``entity_key_serialization_version``).
  A feature stored as a serialized ``ValueProto`` carries the tag :data:`PROTO_TAG`.
- Feast's event timestamp is the Quiver event time of every value of the row (so merges keep
  the newest row per feature, and the group's TTL, the view's ``ttl``, expires values by event
  time). Quiver keeps milliseconds; the exact microseconds go in a hidden i64 feature,
  :data:`TS_FEATURE`, so reads give back Feast's timestamp to the microsecond.
- Values: scalars and lists Quiver has natively are stored natively (a ``FLOAT_LIST`` field
  with ``vector_length`` set is a fixed-size ``f32[N]`` vector); every other Feast type (maps,
  JSON, structs, sets, double/bool/bytes lists, ...) is stored as the serialized ``ValueProto``
  in a ``bytes`` feature, so it reads back bit for bit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from typing import Any, Callable, Dict, Optional, Tuple

from feast.protos.feast.types.Value_pb2 import (
    FloatList,
    Int32List,
    Int64List,
    StringList,
)
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_NAME
from feast.value_type import ValueType

#: Hidden feature holding each row's exact Feast event timestamp, in Unix microseconds.
TS_FEATURE = "feast_event_time_us"
#: Tag of a feature whose values are serialized Feast ``ValueProto`` bytes.
PROTO_TAG = "feast:value_proto"

_QUIVER_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MAX_TTL_S = 10 * 365 * 24 * 3600


def quiver_name(name: str) -> str:
    """A Quiver group or feature name for a Feast name (itself when it already is one)."""
    if _QUIVER_NAME.fullmatch(name) and name != TS_FEATURE:
        return name
    base = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not base[:1].isalpha():
        base = "f_" + base
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=4).hexdigest()
    return f"{base[:54]}_{digest}"


def group_name(project: str, view_name: str) -> str:
    return quiver_name(f"{project}__{view_name}")


def view_description(project: str, view, key_version: int) -> str:
    """The description of a view's group: its names and its entity key (join keys sorted by
    name, with their Feast value types; Feast's ``__dummy_id`` for a view without entities).
    A view whose join key types are not known (not inferred yet) gets the names only."""
    name = f"Feast feature view {project}/{view.name}"
    keys = sorted((f.name, f.dtype.to_value_type().name) for f in view.entity_columns)
    if not keys:
        if list(view.entities) not in ([], [DUMMY_ENTITY_NAME]):
            return name
        keys = [(DUMMY_ENTITY_ID, "STRING")]
    spec = json.dumps({"join_keys": [list(k) for k in keys], "version": key_version}, separators=(",", ":"))
    return f"{name}; entity key {spec}"


def ttl_seconds(ttl: Optional[_dt.timedelta]) -> Optional[int]:
    """A view's ``ttl`` as a group TTL: None (or 0) is no TTL; part seconds round up; the
    group TTL stops at Quiver's 10-year limit, past which a view's TTL is no TTL."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds()
    if seconds <= 0:
        return None
    whole = int(seconds) + (0 if seconds == int(seconds) else 1)
    return whole if whole <= _MAX_TTL_S else None


def micros(ts: _dt.datetime) -> int:
    """Unix microseconds of a datetime, exactly (naive = UTC, as Feast assumes)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=_dt.timezone.utc)
    return (ts - _EPOCH) // _dt.timedelta(microseconds=1)


def datetime_from_micros(us: int) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(microseconds=us)


class Codec:
    """One Feast value type: its Quiver type, and ValueProto <-> Python value."""

    __slots__ = ("quiver_type", "field", "to_python", "to_proto")

    def __init__(
        self,
        quiver_type: str,
        field: Optional[str],
        to_python: Callable[[ValueProto], Any],
        to_proto: Callable[[Any], ValueProto],
    ):
        self.quiver_type = quiver_type
        #: The ValueProto field a native value lives in; None: stored serialized.
        self.field = field
        self.to_python = to_python
        self.to_proto = to_proto


def _scalar(quiver_type: str, field: str) -> Codec:
    return Codec(
        quiver_type,
        field,
        lambda v: getattr(v, field),
        lambda x: ValueProto(**{field: x}),
    )


def _list(quiver_type: str, field: str, wrapper) -> Codec:
    return Codec(
        quiver_type,
        field,
        lambda v: list(getattr(v, field).val),
        lambda x: ValueProto(**{field: wrapper(val=x)}),
    )


_SERIALIZED = Codec(
    "bytes",
    None,
    lambda v: v.SerializeToString(),
    ValueProto.FromString,
)

_NATIVE: Dict[ValueType, Codec] = {
    ValueType.INT32: _scalar("i64", "int32_val"),
    ValueType.INT64: _scalar("i64", "int64_val"),
    ValueType.UNIX_TIMESTAMP: _scalar("i64", "unix_timestamp_val"),
    ValueType.FLOAT: _scalar("f32", "float_val"),
    ValueType.DOUBLE: _scalar("f64", "double_val"),
    ValueType.STRING: _scalar("string", "string_val"),
    ValueType.BYTES: _scalar("bytes", "bytes_val"),
    ValueType.BOOL: _scalar("bool", "bool_val"),
    ValueType.FLOAT_LIST: _list("list<f32>", "float_list_val", FloatList),
    ValueType.INT64_LIST: _list("list<i64>", "int64_list_val", Int64List),
    ValueType.INT32_LIST: _list("list<i64>", "int32_list_val", Int32List),
    ValueType.STRING_LIST: _list("list<string>", "string_list_val", StringList),
}


def codec(field) -> Codec:
    """The codec of a Feast ``Field``."""
    value_type = field.dtype.to_value_type()
    if value_type == ValueType.FLOAT_LIST and getattr(field, "vector_length", 0) > 0:
        c = _NATIVE[ValueType.FLOAT_LIST]
        return Codec(f"f32[{field.vector_length}]", c.field, c.to_python, c.to_proto)
    return _NATIVE.get(value_type, _SERIALIZED)


def python_value(name: str, c: Codec, v: ValueProto) -> Any:
    """The value to store for one ValueProto (None: a stored null)."""
    kind = v.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if c.field is None or kind == c.field:
        return c.to_python(v)
    raise TypeError(
        f"feature '{name}' is declared as {c.field} in its feature view but a value holds {kind}"
    )


def view_features(view) -> Tuple[Tuple[str, str, Codec], ...]:
    """``(feast name, quiver name, codec)`` of every feature of a view."""
    return tuple((f.name, quiver_name(f.name), codec(f)) for f in view.features)
