"""``get_online_features`` with a compiled plan per request shape: what is left per call is
turning entity values into keys, one native call, and parsing the response bytes.

Feast's ``OnlineStore.get_online_features`` converts every entity value to a ``ValueProto``,
builds the response's entity columns message by message, hands the reads to the store, then
looks up types and drops unrequested columns: at one entity row that Python is most of the
call. For a request shape (the features or feature service, ``full_feature_names``, the entity
columns' names) everything but the values is the same from call to call, so :class:`Plan`
holds it: the references of the one Quiver read, each view's join keys and value encodings,
the response's feature names as protobuf bytes, the feature types. A call then builds the
keys (Feast's ``serialize_entity_key`` bytes) and the entity columns' bytes from plain Python
values, asks quiverd once (``Handle.get_feast``, which writes every view's ``FeatureVector``
bytes in Rust, see ``python/src/feast.rs``), and parses the whole response with one
``FromString``.

A plan is keyed on the resolved request Feast itself caches
(``feast.utils._get_cached_request_context``): when the registry changes (``feast apply``,
a refresh), Feast resolves the request anew, the resolved object is another one, and so is the
plan. What a plan cannot express returns ``None`` (the caller takes Feast's path, which gives
Feast's answer or Feast's error): on-demand views, request data, entityless views, versioned
reads, precomputed feature services, Feast's metrics, a key serialization other than version
3, entity values other than plain ``int``/``str`` of the entity's type, entity columns that are
not join keys.
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from feast import utils
from feast.online_response import OnlineResponse
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.value_type import ValueType

from . import response

logger = logging.getLogger(__name__)

_VALUE_FIELDS = {f.name: f.number for f in ValueProto.DESCRIPTOR.fields}
#: Plans kept at most (a serving process asks a handful of shapes).
MAX_PLANS = 256

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _int_column(value_type: int, fmt: str, lo: int, hi: int, field: str):
    """For an integer entity type: from a column of plain ints, each row's key part (the
    bytes ``serialize_entity_key`` writes for the value) and its response ``Value`` bytes; None
    for anything else."""
    head = struct.pack("<II", value_type.value, struct.calcsize(fmt))
    tag = response.varint(_VALUE_FIELDS[field] << 3)
    pack = struct.Struct("<" + fmt).pack

    def convert(values: Sequence[Any]):
        for x in values:
            if type(x) is not int or not lo <= x <= hi:
                return None
        return [head + pack(x) for x in values], [tag + response.varint(x) for x in values]

    return convert


def _string_column(values: Sequence[Any]):
    tag = _STRING_TAG
    parts, protos = [], []
    for x in values:
        if type(x) is not str:
            return None
        b = x.encode("utf8")
        n = len(b)
        parts.append(struct.pack("<II", _STRING, n) + b)
        protos.append(tag + (response._SMALL[n] if n < 128 else response.varint(n)) + b)
    return parts, protos


def _ignored(values: Sequence[Any]):
    """A column that is not a join key: Feast converts it (inferring its type) and drops it.
    Plain ints or plain strs convert alike in Feast; anything else goes Feast's way."""
    if values:
        t = type(values[0])
        if t not in (int, str) or any(type(x) is not t for x in values):
            return None
        if t is int and not all(_INT64_MIN <= x <= _INT64_MAX for x in values):
            return None
    return [], None


def _inferred(values: Sequence[Any]):
    """A join key column of no view of the request (so of no known type): Feast infers its
    type from the values; plain ints are INT64, plain strs STRING."""
    t = type(values[0]) if values else None
    if t not in (int, str) or any(type(x) is not t for x in values):
        return None
    return _ENTITY_COLUMNS[ValueType.INT64 if t is int else ValueType.STRING](values)


_STRING = ValueType.STRING.value
_STRING_TAG = response.varint((_VALUE_FIELDS["string_val"] << 3) | 2)

#: Entity value types the plan converts itself: Feast's ValueType -> column converter.
_ENTITY_COLUMNS = {
    ValueType.INT64: _int_column(ValueType.INT64, "q", _INT64_MIN, _INT64_MAX, "int64_val"),
    ValueType.INT32: _int_column(ValueType.INT32, "i", _INT32_MIN, _INT32_MAX, "int32_val"),
    ValueType.STRING: _string_column,
}

#: How each codec's ValueProto field is written by ``Handle.get_feast``.
_KINDS = {
    "double_val": "fixed64",
    "float_val": "fixed32",
    "int64_val": "varint",
    "int32_val": "varint",
    "unix_timestamp_val": "varint",
    "bool_val": "bool",
    "string_val": "delimited",
    "bytes_val": "delimited",
    "float_list_val": "float_list",
    "int64_list_val": "varint_list",
    "int32_list_val": "varint_list",
    "string_list_val": "string_list",
}


def native_encodings(codecs) -> List[Tuple[int, str]]:
    """``(Value field number, kind)`` of each codec, as ``Handle.get_feast`` takes them."""
    return [(0, "serialized") if c.field is None else (_VALUE_FIELDS[c.field], _KINDS[c.field]) for c in codecs]


def _entity_vector(protos: List[bytes]) -> bytes:
    """A ``results`` entry for an entity column: its values, PRESENT each, empty timestamps
    (what Feast's ``_populate_result_rows_from_columnar`` writes)."""
    n = len(protos)
    body = b"".join(b"\x0a" + response._len(p) + p for p in protos)
    if n:
        body += b"\x12" + response.varint(n) + b"\x01" * n + b"\x1a\x00" * n
    return b"\x12" + response.varint(len(body)) + body


class Unsupported(Exception):
    """A request the plan cannot express; the caller takes Feast's path."""


class Plan:
    """Everything of a request shape that does not depend on the entity values."""

    def __init__(self, ctx: tuple, columns: Tuple[str, ...], full_feature_names: bool, config, features, view_plan) -> None:
        (
            _feature_refs,
            odfvs,
            entity_name_to_join_key_map,
            entity_type_map,
            join_keys_set,
            grouped_refs,
            requested_result_row_names,
            needed_request_data,
            entityless_case,
        ) = ctx
        #: Held so that the id the plan is cached under is not reused.
        self.ctx = ctx
        if odfvs or needed_request_data:
            raise Unsupported("on-demand feature views")
        if entityless_case:
            raise Unsupported("feature views without entities")
        if config.entity_key_serialization_version != 3:
            raise Unsupported("an entity key serialization version other than 3")
        if getattr(features, "precompute_online", False):
            raise Unsupported("a precomputed feature service")
        if len(set(columns)) != len(columns):
            raise Unsupported("entity columns named twice")
        if any(c in entity_name_to_join_key_map and c not in join_keys_set for c in columns):
            raise Unsupported("entity columns named after an entity rather than its join key")
        self.columns = columns
        #: Per column, whether it is a join key (in the response) or ignored, as Feast ignores
        #: columns that are neither join keys nor request data.
        self.emit = [c in join_keys_set for c in columns]
        self.converters = []
        for name, emit in zip(columns, self.emit):
            conv = _ENTITY_COLUMNS.get(entity_type_map.get(name, ValueType.UNKNOWN)) if emit else _ignored
            if emit and name not in entity_type_map:
                conv = _inferred
            if conv is None:
                raise Unsupported(f"entity type {entity_type_map.get(name)!r}")
            self.converters.append(conv)
        index = {name: i for i, name in enumerate(columns)}
        self.refs: List[str] = []
        self.views = []  # (view name, encodings, index of its key in self.keys)
        key_specs: Dict[Tuple[Tuple[str, int], ...], int] = {}
        names: List[str] = [c for c, emit in zip(columns, self.emit) if emit]
        joined = {c: c for c, emit in zip(columns, self.emit) if emit}
        self.feature_types: Dict[str, Any] = {}
        for table, requested in grouped_refs:
            if getattr(table.projection, "version_tag", None) is not None:
                raise Unsupported("versioned feature views")
            # The view's join keys and the entity column giving each (Feast's own mapping,
            # with the projection's join key aliases), sorted by join key as the key is.
            source = utils._get_table_entity_values(table, entity_name_to_join_key_map, joined)
            wanted = {entity_name_to_join_key_map[e] for e in table.entities}
            if not source or set(source) != wanted:
                raise Unsupported("a feature view whose join keys the entity columns do not all give")
            spec = tuple((k, index[source[k]]) for k in sorted(source))
            key = key_specs.setdefault(spec, len(key_specs))
            plan = view_plan(table, list(requested))
            self.refs.extend(plan.refs)
            self.views.append((table.name, native_encodings(plan.codecs), key))
            table_name = table.projection.name_to_use()
            names.extend(f"{table_name}__{n}" if full_feature_names else n for n in plan.names)
            for field in table.features:
                if field.name in requested:
                    vtype = field.dtype.to_value_type()
                    self.feature_types[field.name] = vtype
                    self.feature_types[f"{table_name}__{field.name}"] = vtype
        if any(n not in requested_result_row_names for n in names[len(joined):]):
            raise Unsupported("a response Feast would drop columns of")
        # Per distinct join key set: the key's prefix (its join key names) and its columns.
        self.keys = []
        for spec in sorted(key_specs, key=key_specs.__getitem__):
            prefix = struct.pack("<I", len(spec)) + b"".join(
                struct.pack("<II", _STRING, len(b := k.encode("utf8"))) + b for k, _ in spec
            )
            self.keys.append((prefix, [i for _, i in spec]))
        self.head = response.feature_names(names)

    def call(self, handle, values: List[List[Any]]) -> Optional[GetOnlineFeaturesResponse]:
        """The response for entity columns ``values`` (in the plan's column order), or None
        when a value is not one the plan converts (the caller takes Feast's path)."""
        n = len(values[0]) if values else 0
        if n == 0:
            return None  # Feast's own answer (or error) for no rows
        parts, entity = [], []
        for conv, col in zip(self.converters, values):
            if len(col) != n:
                return None
            got = conv(col)
            if got is None:
                return None
            parts.append(got[0])
            if got[1] is not None:
                entity.append(_entity_vector(got[1]))
        key_index: Dict[bytes, int] = {}
        positions = []
        for prefix, cols in self.keys:
            if len(cols) == 1:
                keys = [prefix + p for p in parts[cols[0]]]
            else:
                keys = [prefix + b"".join(ps) for ps in zip(*(parts[i] for i in cols))]
            positions.append([key_index.setdefault(k, len(key_index)) for k in keys])
        views = [(enc, positions[spec]) for _, enc, spec in self.views]
        body, _counts = handle.get_feast(self.refs, list(key_index), views)
        return GetOnlineFeaturesResponse.FromString(self.head + b"".join(entity) + body)


_plans: Dict[Tuple[int, Tuple[str, ...], bool], Plan] = {}
_lock = threading.Lock()
_said: set = set()


def _columns(entity_rows) -> Optional[Tuple[Tuple[str, ...], List[List[Any]]]]:
    """The entity rows as ``(names, columns)``, or None for a shape Feast should handle."""
    if isinstance(entity_rows, list):
        if not entity_rows or type(entity_rows[0]) is not dict:
            return None
        names = tuple(entity_rows[0])
        k = len(names)
        try:
            cols = [[r[name] for r in entity_rows] for name in names]
        except (KeyError, TypeError):
            return None
        if any(len(r) != k for r in entity_rows):
            return None
        return names, cols
    if type(entity_rows) is dict:
        cols = []
        for v in entity_rows.values():
            if type(v) is list:
                cols.append(v)
            elif type(v) is tuple:
                cols.append(list(v))
            else:
                return None
        return tuple(entity_rows), cols
    return None


def get_online_features(store, config, features, entity_rows, registry, project, full_feature_names, view_plan, handle):
    """Feast's ``OnlineResponse`` by the plan of this request's shape, or None when the
    request is one for Feast's own path."""
    shaped = _columns(entity_rows)
    if shaped is None:
        return None
    names, cols = shaped
    try:
        from feast.metrics import _config as metrics

        if metrics.online_features:
            return None
    except Exception:
        pass
    ctx = utils._get_cached_request_context(registry, project, features, full_feature_names)
    ident = (id(ctx), names, full_feature_names)
    plan = _plans.get(ident)
    if plan is None or plan.ctx is not ctx:
        try:
            plan = Plan(ctx, names, full_feature_names, config, features, lambda t, r: view_plan(project, t, r))
            info = handle.server_info()
            if info is not None and len(plan.refs) > info["max_features_per_request"]:
                raise Unsupported("more features than the server takes in one request")
        except Unsupported as e:
            if str(e) not in _said:
                _said.add(str(e))
                logger.info("get_online_features of %s takes Feast's path (one Quiver request still)", e)
            return None
        with _lock:
            if len(_plans) >= MAX_PLANS:
                _plans.clear()
            _plans[ident] = plan
    proto = plan.call(handle, cols)
    if proto is None:
        return None
    return OnlineResponse(proto, feature_types=dict(plan.feature_types))
