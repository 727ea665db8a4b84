"""``QuiverOnlineStore``: Feast's online store over quiverd (or an embedded Quiver store).

In ``feature_store.yaml``::

    online_store:
      type: quiver.feast.QuiverOnlineStore
      address: 127.0.0.1:7878        # quiverd; or `path: data/online.db` for an embedded store

``feast apply`` creates (or alters) one group per feature view, ``feast materialize`` and
``write_to_online_store`` write rows pipelined, and ``get_online_features`` reads every feature
view of a request in one Quiver request, by a plan compiled once per request shape
(:mod:`quiver.feast.request`) or, for what a plan cannot express, inside Feast's own path
(:meth:`QuiverOnlineStore._read_features_per_fv`).
The mapping of names, keys, timestamps and values is described in :mod:`quiver.feast.mapping`.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import threading
from datetime import datetime
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

from feast import Entity, utils
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.supported_async_methods import SupportedAsyncMethods
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel, RepoConfig

import quiver
from quiver import errors
from quiver.results import Status
from quiver.schema import Feature, GroupSpec

from . import request, response
from .mapping import (
    PROTO_TAG,
    TS_FEATURE,
    datetime_from_micros,
    group_name,
    micros,
    python_value,
    ttl_seconds,
    view_description,
    view_features,
)

logger = logging.getLogger(__name__)

Row = Tuple[Optional[datetime], Optional[Dict[str, ValueProto]]]


class QuiverOnlineStoreConfig(FeastConfigBaseModel):
    """Settings of the Quiver online store (``online_store:`` in ``feature_store.yaml``)."""

    type: Literal["quiver.feast.QuiverOnlineStore", "quiver"] = "quiver.feast.QuiverOnlineStore"
    #: quiverd's address, host:port. Ignored when ``path`` is set.
    address: str = "127.0.0.1:7878"
    #: An embedded store in this file instead of a server (one process at a time).
    path: Optional[str] = None
    #: Size of a new embedded store file.
    size: str = "1GiB"
    #: quiverd's auth token.
    token: Optional[str] = None
    #: Longest wait for an answer, in seconds.
    timeout_s: float = 30.0
    #: Durability of writes: True = acknowledged once durable, False = from memory (within the
    #: server's flush interval), None = the server's default.
    sync_writes: Optional[bool] = None
    #: Read all feature views of a get_online_features in one request (False: one per view,
    #: Feast's default path; kept for comparison).
    one_round_trip: bool = True


_clients: Dict[Tuple[Any, ...], quiver.Client] = {}
_clients_lock = threading.Lock()


def client_for(cfg: QuiverOnlineStoreConfig) -> quiver.Client:
    """One client per server address (or store file) per process, shared by every store
    object and thread (a ``quiver.Client`` is a connection pool)."""
    ident = ("path", cfg.path) if cfg.path else ("addr", cfg.address, cfg.token)
    with _clients_lock:
        c = _clients.get(ident)
        if c is None:
            if cfg.path:
                c = quiver.open(cfg.path, size=cfg.size)
            else:
                c = quiver.connect(cfg.address, token=cfg.token, timeout=cfg.timeout_s)
            _clients[ident] = c
        return c


def _spec(project: str, view: FeatureView, key_version: int) -> GroupSpec:
    features = [
        Feature(q, c.quiver_type, description=name, tags=() if c.field else (PROTO_TAG,))
        for name, q, c in view_features(view)
    ]
    features.append(Feature(TS_FEATURE, "i64", description="Feast event timestamp, Unix microseconds"))
    return GroupSpec(
        name=group_name(project, view.name),
        key_type="bytes",
        features=features,
        ttl=ttl_seconds(view.ttl),
        allow_non_finite=True,
        description=view_description(project, view, key_version),
        tags=("feast",),
    )


def _warned(flag: str, message: str, *args: Any) -> None:
    """Logs ``message`` once per process for ``flag``."""
    if flag not in _warned.seen:  # type: ignore[attr-defined]
        _warned.seen.add(flag)  # type: ignore[attr-defined]
        logger.warning(message, *args)


_warned.seen = set()  # type: ignore[attr-defined]


def _track_statuses(view: str, present: int, not_found: int) -> None:
    """Feast's per-view status counters (a no-op unless Feast's metrics are on), as Feast's
    own response conversion counts them."""
    try:
        from feast.metrics import track_feature_statuses

        track_feature_statuses(view, present, not_found)
    except Exception:
        pass


class QuiverOnlineStore(OnlineStore):
    """Feast online store on Quiver: one group per feature view, Feast's TTL as the group's
    max age (an expired value reads as absent rather than stale), and one request per
    ``get_online_features`` whatever the number of feature views."""

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(OnlineStore, "_read_features_per_fv"):
            _warned(
                "no-batch-hook",
                "this feast release has no OnlineStore._read_features_per_fv: "
                "get_online_features reads one feature view per request",
            )

    @property
    def async_supported(self) -> SupportedAsyncMethods:
        return SupportedAsyncMethods(read=True, write=True)

    # -- schema ----------------------------------------------------------------------------

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """Creates a group for each new view, adds new features and sets the TTL of changed
        ones, deprecates features a view no longer has, and drops the groups of deleted
        views. A feature whose type changed cannot be altered in place: its group is dropped
        and created anew (its rows are gone; materialize again)."""
        c = client_for(config.online_store)
        for view in tables_to_delete:
            self._drop(c, group_name(config.project, view.name))
        for view in tables_to_keep:
            self._ensure_group(c, config.project, view, config.entity_key_serialization_version)

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        c = client_for(config.online_store)
        for view in tables:
            self._drop(c, group_name(config.project, view.name))

    @staticmethod
    def _drop(c: quiver.Client, name: str) -> None:
        try:
            c.drop_group(name)
        except errors.UnknownGroupError:
            pass

    def _ensure_group(self, c: quiver.Client, project: str, view: FeatureView, key_version: int) -> None:
        spec = _spec(project, view, key_version)
        try:
            current = c.describe_group(spec.name)
        except errors.UnknownGroupError:
            c.create_group(spec)
            return
        wanted = {f.name: f for f in spec.features}
        have = {f.name: f for f in current.features if not f.deprecated}
        if any(f.name in have and have[f.name].type != f.type for f in spec.features):
            logger.warning("feature types of view %s changed: its group %s is created anew", view.name, spec.name)
            c.drop_group(spec.name)
            c.create_group(spec)
            return
        for f in spec.features:
            if f.name not in have:
                c.alter_group(spec.name, add_feature=f)
        for name in have:
            if name not in wanted:
                c.alter_group(spec.name, deprecate_feature=name)
        if current.ttl_s != spec.to_dict()["ttl_s"]:
            c.alter_group(spec.name, ttl=spec.ttl)
        if current.description != spec.description:
            c.alter_group(spec.name, description=spec.description)

    # -- writes ----------------------------------------------------------------------------

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: List[Tuple[EntityKeyProto, Dict[str, ValueProto], datetime, Optional[datetime]]],
        progress: Optional[Callable[[int], Any]],
    ) -> None:
        """Writes the rows pipelined over one connection; per feature, the value with the
        newest event timestamp wins (an older row never overwrites a newer one)."""
        if not data:
            return
        cfg = config.online_store
        version = config.entity_key_serialization_version
        features = view_features(table)
        keys = [serialize_entity_key(ek, entity_key_serialization_version=version) for ek, _, _, _ in data]
        ts_us = [micros(ts) for _, _, ts, _ in data]
        columns: Dict[str, Any] = {"__key": keys, "__ms": [t // 1000 for t in ts_us], TS_FEATURE: ts_us}
        for name, q, c in features:
            if not any(name in values for _, values, _, _ in data):
                continue
            col = []
            for _, values, _, _ in data:
                v = values.get(name)
                col.append(None if v is None else python_value(name, c, v))
            columns[q] = col
        rows = _write_columns(client_for(cfg), group_name(config.project, table.name), columns, cfg.sync_writes)
        if progress:
            progress(rows)

    async def online_write_batch_async(self, config, table, data, progress) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.online_write_batch, config, table, data, progress)

    # -- reads -----------------------------------------------------------------------------

    def get_online_features(
        self,
        config: RepoConfig,
        features,
        entity_rows,
        registry,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ):
        """Feast's ``get_online_features`` with the request's shape compiled once
        (:mod:`quiver.feast.request`): per call, the entity values become keys, one Quiver
        request reads every view and writes the response's bytes, and one parse makes the
        response. Requests the plan cannot express take Feast's own path (which still reads
        every view in one request, :meth:`_read_features_per_fv`)."""
        cfg = config.online_store
        if cfg.one_round_trip and not include_feature_view_version_metadata:
            got = request.get_online_features(
                self, config, features, entity_rows, registry, project, full_feature_names, _plan, client_for(cfg)._h
            )
            if got is not None:
                return got
        return super().get_online_features(
            config=config,
            features=features,
            entity_rows=entity_rows,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            include_feature_view_version_metadata=include_feature_view_version_metadata,
        )

    async def get_online_features_async(
        self,
        config: RepoConfig,
        features,
        entity_rows,
        registry,
        project: str,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ):
        """The async twin of :meth:`get_online_features`: the compiled request runs off the
        event loop (the client releases the GIL while it waits); what it cannot express takes
        Feast's async path, which still reads every view in one request."""
        cfg = config.online_store
        if cfg.one_round_trip and not include_feature_view_version_metadata:
            handle = client_for(cfg)._h
            loop = asyncio.get_running_loop()
            got = await loop.run_in_executor(
                None,
                request.get_online_features,
                self,
                config,
                features,
                entity_rows,
                registry,
                project,
                full_feature_names,
                _plan,
                handle,
            )
            if got is not None:
                return got
        return await super().get_online_features_async(
            config=config,
            features=features,
            entity_rows=entity_rows,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            include_feature_view_version_metadata=include_feature_view_version_metadata,
        )

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: List[EntityKeyProto],
        requested_features: Optional[List[str]] = None,
    ) -> List[Row]:
        """One request for every key of one view."""
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]
        plan = _ViewPlan(config.project, table, requested_features)
        got = client_for(config.online_store).get_online_features(plan.refs, keys)
        return plan.rows(got, range(len(keys)))

    async def online_read_async(self, config, table, entity_keys, requested_features=None) -> List[Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.online_read, config, table, entity_keys, requested_features)

    def _read_features_per_fv(
        self,
        config: RepoConfig,
        grouped_refs: List,
        join_key_values: Dict,
        entity_name_to_join_key_map: Dict,
        online_features_response,
        full_feature_names: bool,
        include_feature_view_version_metadata: bool,
    ) -> None:
        """Reads every feature view of the request in ONE Quiver request.

        Feast's ``get_online_features`` (and its async twin) hands the reads of a request to
        this method, the place Feast keeps for stores that batch across views; Feast still
        prepares the entity rows, runs on-demand views and shapes the response. Each view's
        entity keys are joined on its own join keys; the request carries the union of those
        keys and every view's features (a key of one view read in another's group is simply
        absent there). The native get writes each view's part of the response as protobuf
        bytes (``Handle.get_feast``, ``python/src/feast.rs``): the messages Feast's
        ``_populate_response_from_feature_data`` builds from :meth:`online_read`'s rows,
        without a Python object per value, so the response is exactly what the per-view path
        returns. Requests beyond the server's per-request feature limit fall back to the
        per-view path (logged once)."""
        cfg = config.online_store
        if not cfg.one_round_trip:
            return super()._read_features_per_fv(
                config,
                grouped_refs,
                join_key_values,
                entity_name_to_join_key_map,
                online_features_response,
                full_feature_names,
                include_feature_view_version_metadata,
            )
        c = client_for(cfg)
        version = config.entity_key_serialization_version
        views = []
        key_index: Dict[bytes, int] = {}
        refs: List[str] = []
        for table, requested in grouped_refs:
            values = utils._get_table_entity_values(table, entity_name_to_join_key_map, join_key_values)
            if not values or not any(values.values()) or len(set(map(len, values.values()))) != 1:
                # Feast's own checks (and errors) for missing or ragged join keys.
                utils._get_unique_entities(table, join_key_values, entity_name_to_join_key_map)
            keys = response.entity_keys(values, version)
            positions = np.fromiter((key_index.setdefault(k, len(key_index)) for k in keys), dtype=np.intp, count=len(keys))
            plan = _plan(config.project, table, requested)
            refs.extend(plan.refs)
            views.append((table, requested, plan, positions))
        info = c.server_info()
        if info is not None and len(refs) > info["max_features_per_request"]:
            _warned(
                "too-many-refs",
                "a request for %d features (over the server's limit of %d per request) is read one feature view at a time",
                len(refs),
                info["max_features_per_request"],
            )
            return super()._read_features_per_fv(
                config,
                grouped_refs,
                join_key_values,
                entity_name_to_join_key_map,
                online_features_response,
                full_feature_names,
                include_feature_view_version_metadata,
            )
        if include_feature_view_version_metadata or not refs:
            # Feast's own conversion, which also writes the views' version metadata.
            got = c.get_online_features(refs, list(key_index)) if refs else None
            for table, requested, plan, positions in views:
                idxs = [[i] for i in range(len(positions))]
                utils._populate_response_from_feature_data(
                    requested,
                    plan.rows(got, positions),
                    idxs,
                    online_features_response,
                    full_feature_names,
                    table,
                    len(positions),
                    include_feature_view_version_metadata,
                )
            return
        layout = [(request.native_encodings(plan.codecs), positions.tolist()) for _, _, plan, positions in views]
        body, counts = c._h.get_feast(refs, list(key_index), layout)
        names: List[str] = []
        for (table, requested, plan, positions), present in zip(views, counts):
            table_name = table.projection.name_to_use()
            names.extend(f"{table_name}__{n}" if full_feature_names else n for n in plan.names)
            _track_statuses(table.name, present, len(plan.names) * len(positions) - present)
        online_features_response.MergeFromString(response.feature_names(names) + body)

    async def _read_features_per_fv_async(self, config, *args) -> None:
        """The async path: the same single request, run off the event loop (the client
        releases the GIL while it waits)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._read_features_per_fv, config, *args)


_plans: Dict[Tuple[str, int, Tuple[str, ...]], Tuple[FeatureView, "_ViewPlan"]] = {}
_plans_lock = threading.Lock()


def _plan(project: str, table: FeatureView, requested: Optional[List[str]]) -> "_ViewPlan":
    """The view's plan, kept while Feast hands the same FeatureView object (its registry cache
    keeps them between refreshes): a plan is names, codecs and encoders, which cost more
    than the read itself for one entity. The entry holds the view, so its id is not reused
    while cached."""
    ident = (project, id(table), tuple(requested or ()))
    with _plans_lock:
        hit = _plans.get(ident)
    if hit is not None and hit[0] is table:
        return hit[1]
    plan = _ViewPlan(project, table, requested)
    with _plans_lock:
        if len(_plans) >= 1024:
            _plans.clear()
        _plans[ident] = (table, plan)
    return plan


class _ViewPlan:
    """The references one view's read asks for, and how answers become Feast rows."""

    def __init__(self, project: str, table: FeatureView, requested: Optional[List[str]]):
        group = group_name(project, table.name)
        by_name = {name: (q, c) for name, q, c in view_features(table)}
        self.names = list(requested) if requested else list(by_name)
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise errors.UnknownFeatureError(f"feature view {table.name} has no features {missing}")
        self.codecs = [by_name[n][1] for n in self.names]
        self.refs = [f"{group}:{by_name[n][0]}" for n in self.names] + [f"{group}:{TS_FEATURE}"]

    def rows(self, got: Optional["quiver.OnlineFeatures"], positions) -> List[Row]:
        """Feast rows for the entities at ``positions`` of the answer: a PRESENT value as its
        ValueProto, a stored null as an empty ValueProto (what Feast's Redis store returns for
        a null), an expired or missing value left out; the row's timestamp is the exact one
        the row was written with. A row with nothing left is ``(None, None)``."""
        if got is None:
            return [(None, None)] * len(positions)
        pos = np.asarray(positions, dtype=np.intp)
        cols = [got.columns[r] for r in self.refs]
        statuses = [col.statuses[pos].tolist() for col in cols]
        times_ms = [col.event_times_ms[pos].tolist() for col in cols[:-1]]
        protos = [_protos(col, pos, codec) for col, codec in zip(cols[:-1], self.codecs)]
        ts_status, ts_values = statuses[-1], cols[-1].values[pos].tolist()
        out: List[Row] = []
        for i in range(len(pos)):
            row: Dict[str, ValueProto] = {}
            newest_ms = 0
            for j, name in enumerate(self.names):
                s = statuses[j][i]
                if s == Status.PRESENT:
                    row[name] = protos[j](i)
                elif s == Status.NULL:
                    row[name] = ValueProto()
                else:
                    continue
                newest_ms = max(newest_ms, times_ms[j][i])
            if not row:
                out.append((None, None))
                continue
            if ts_status[i] == Status.PRESENT:
                ts = datetime_from_micros(ts_values[i])
            else:
                ts = datetime_from_micros(newest_ms * 1000)
            out.append((ts, row))
        return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_FLOAT_LIST_KEY = _varint((ValueProto.DESCRIPTOR.fields_by_name["float_list_val"].number << 3) | 2)


def _float_list_proto(row: np.ndarray) -> ValueProto:
    """``ValueProto(float_list_val=FloatList(val=row))``, parsed from its wire bytes (a packed
    repeated float is the row's little-endian bytes), without a Python float per element."""
    data = row.astype("<f4", copy=False).tobytes()
    inner = b"\x0a" + _varint(len(data)) + data
    return ValueProto.FromString(_FLOAT_LIST_KEY + _varint(len(inner)) + inner)


def _protos(col, pos: np.ndarray, codec) -> Callable[[int], ValueProto]:
    """A function from an entity's index in ``pos`` to its value's ValueProto."""
    if col.kind == "vec" and codec.field == "float_list_val":
        m = col.values[pos]
        return lambda i: _float_list_proto(m[i])
    if col.kind == "list_f32" and codec.field == "float_list_val":
        lists = col.values
        picked = [lists[p] for p in pos.tolist()]
        return lambda i: _float_list_proto(picked[i])
    v = col.values
    if hasattr(v, "tolist"):
        plain = v[pos].tolist()
    else:
        plain = [v[p] for p in pos.tolist()]
        plain = [x.tolist() if hasattr(x, "tolist") else x for x in plain]
    to_proto = codec.to_proto
    return lambda i: to_proto(plain[i])


def _write_columns(c: quiver.Client, group: str, columns: Dict[str, Any], sync: Optional[bool]) -> int:
    import pyarrow as pa

    arrays = {}
    for name, col in columns.items():
        if name == "__key":
            arrays[name] = pa.array(col, type=pa.binary())
        else:
            arrays[name] = pa.array(col)
    features = [n for n in columns if n not in ("__key", "__ms")]
    summary = c.put_many(group, pa.table(arrays), key="__key", event_time="__ms", features=features, sync=sync)
    return summary.rows
