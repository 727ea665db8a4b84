"""The client: one class for a ``quiverd`` connection pool and for an embedded store."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _columns, _spine
from . import errors as _errors
from ._native import Handle
from .results import OnlineFeatures
from .schema import Feature, GroupSchema, GroupSpec, Seconds, _seconds

if TYPE_CHECKING:  # pragma: no cover - annotations only; pyarrow and pandas stay optional
    import pandas
    import pyarrow

Time = Union[_dt.datetime, _dt.date, int, None]

_MODES = ("merge", "replace_row", "create_only", "update_only")


def _sync(sync: Optional[bool]) -> Optional[str]:
    if sync is None:
        return None
    return "sync" if sync else "buffered"


def _size(size: Union[int, str]) -> int:
    if isinstance(size, int):
        return size
    text = size.strip()
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    for unit, mult in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(text)


@dataclass(frozen=True)
class PutResult:
    """What one put did: values written, values skipped because the stored one is newer, the
    row's generation after it, and values left out for breaking a rule of their feature (groups
    whose ``on_violation`` is ``"drop"``; a group that rejects raises InvalidArgumentError)."""

    written: int
    skipped_stale: int
    generation: int
    dropped: int = 0


@dataclass(frozen=True)
class WriteSummary:
    """What a bulk write did, summed over its rows."""

    rows: int
    written: int
    skipped_stale: int
    dropped: int = 0


@dataclass(frozen=True)
class HistoryEntry:
    """One stored version of a feature."""

    feature: str
    event_time_ms: int
    write_time_ms: int
    status: int
    value: Any


class Client:
    """A connection pool to ``quiverd`` (:func:`connect`), to the nodes of a cluster
    (:func:`connect_cluster`), or a store embedded in this process (:func:`open`); all have
    the same methods.

    Safe to share between threads: each call takes a connection of its own (over the network)
    and releases the GIL while it waits for the server or the device. Writes are pipelined.
    """

    def __init__(self, handle: Handle):
        self._h = handle

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def is_remote(self) -> bool:
        """True for a quiverd connection or a cluster, False for an embedded store."""
        return self._h.is_remote()

    @property
    def is_cluster(self) -> bool:
        """True for a cluster client (:func:`connect_cluster`)."""
        return self._h.is_cluster()

    def cluster_map(self) -> Optional[Dict[str, Any]]:
        """A cluster's partition map, fetched again from its nodes: ``version``,
        ``replication_factor``, ``node_id`` (of the node that answered), ``nodes`` (a list of
        ``(id, address)``), ``masters`` (the master's node id per partition, 4096 of them) and
        ``replicas`` (the replicas' ids per partition). None for a single server or an
        embedded store."""
        return self._h.cluster_map()

    def master_of(self, key: Union[str, int, bytes]) -> int:
        """The id of the node that masters ``key`` in the client's map (cluster only;
        :class:`~quiver.errors.NotSupportedError` otherwise)."""
        return self._h.master_of(key)

    def server_info(self) -> Optional[Dict[str, Any]]:
        """The server's handshake (version and limits); None for an embedded store."""
        return self._h.server_info()

    def feature_stats(self, group: str, feature: Optional[str] = None) -> Dict[str, Any]:
        """Live statistics of a group's features (only ``feature``'s when given), per window:
        count, nulls, last write, min/max/mean/stddev and quantiles for numbers, distinct
        count, top values, vector norms; with the group's freshness and drift. The document of
        FEATURE_STATS (docs/PROTOCOL.md), as ``quiver stats --group G --json`` prints it. A
        cluster client raises :class:`~quiver.errors.NotSupportedError`: each node keeps the
        statistics of the writes it applied, which do not add up to the group's (ask one node
        with :func:`connect`)."""
        return json.loads(self._h.feature_stats_json(group, feature))

    def stats(self) -> Dict[str, Any]:
        """The server's STATS document (docs/PROTOCOL.md), or an embedded store's engine figures.
        On a cluster each node has its own: ``{"nodes": {id: {"address": ..., "stats": {...}}}}``,
        with ``"error"`` instead of ``"stats"`` for a node that did not answer."""
        if self._h.is_cluster():
            nodes: Dict[int, Dict[str, Any]] = {}
            for node, address, doc, error in self._h.node_stats():
                entry: Dict[str, Any] = {"address": address}
                if doc is not None:
                    entry["stats"] = json.loads(doc)
                else:
                    entry["error"] = error
                nodes[node] = entry
            return {"nodes": nodes}
        return json.loads(self._h.stats_json())

    def flush(self) -> None:
        """Makes every buffered write of an embedded store durable (no-op over the network)."""
        self._h.flush()

    def close(self) -> None:
        """Closes the connections, or flushes and closes an embedded store."""
        self._h.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- groups ----------------------------------------------------------------------------

    def create_group(self, spec: GroupSpec) -> GroupSchema:
        """Creates a group; raises GroupExistsError when the name is taken."""
        return GroupSchema.from_dict(self._h.create_group(spec.to_dict()))

    def describe_group(self, name: str) -> GroupSchema:
        return GroupSchema.from_dict(self._h.describe_group(name))

    def list_groups(self, tag: Optional[str] = None) -> List[GroupSchema]:
        """Live groups by id; only those carrying ``tag`` when given."""
        return [GroupSchema.from_dict(d) for d in self._h.list_groups(tag)]

    def alter_group(
        self,
        name: str,
        *,
        add_feature: Optional[Feature] = None,
        deprecate_feature: Optional[str] = None,
        ttl: Union[Seconds, str] = "unchanged",
        description: Optional[str] = None,
        owner: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        history: Union[Seconds, str] = "unchanged",
        history_max_versions: Union[int, None, str] = "unchanged",
        rules: Optional[Mapping[str, Sequence[str]]] = None,
        on_violation: Optional[str] = None,
        max_staleness: Union[Seconds, str] = "unchanged",
        drift_psi: Union[float, None, str] = "unchanged",
        drift_distance: Union[float, None, str] = "unchanged",
    ) -> GroupSchema:
        """Applies each given change in turn (each is one new schema version); returns the
        last schema. ``ttl=None`` / ``history=None`` turn them off (``history=None`` turns all
        of history off). ``history_max_versions=N`` keeps at most N superseded versions per
        feature and entity (turning history on if it is off); ``None`` removes that bound
        (refused when no ``history`` window is set). ``rules`` maps features to their new
        rules, written as in the CLI (``{"age": ["range=[0,150]"]}``; an empty list removes
        them); ``on_violation`` is ``"reject"`` or ``"drop"``; ``max_staleness``,
        ``drift_psi`` and ``drift_distance`` set the group's freshness and drift thresholds
        (``None`` removes one)."""
        changes: List[tuple] = []
        if add_feature is not None:
            changes.append(("add_feature", add_feature.to_dict()))
        if deprecate_feature is not None:
            changes.append(("deprecate_feature", deprecate_feature))
        if ttl != "unchanged":
            changes.append(("set_ttl", _seconds(ttl, "ttl")))  # type: ignore[arg-type]
        if description is not None:
            changes.append(("set_description", description))
        if owner is not None:
            changes.append(("set_owner", owner))
        if tags is not None:
            changes.append(("set_tags", list(tags)))
        if history != "unchanged":
            changes.append(("set_history", _seconds(history, "history")))  # type: ignore[arg-type]
        if history_max_versions != "unchanged":
            changes.append(("set_history_max_versions", history_max_versions))
        for feature, texts in (rules or {}).items():
            changes.append(("set_rules", (feature, list(texts))))
        if on_violation is not None:
            changes.append(("set_on_violation", on_violation))
        if max_staleness != "unchanged":
            changes.append(("set_max_staleness", _seconds(max_staleness, "max_staleness")))  # type: ignore[arg-type]
        if drift_psi != "unchanged":
            changes.append(("set_drift_psi", drift_psi))
        if drift_distance != "unchanged":
            changes.append(("set_drift_distance", drift_distance))
        if not changes:
            return self.describe_group(name)
        schema: Dict[str, Any] = {}
        for kind, arg in changes:
            schema = self._h.alter_group(name, kind, arg)
        return GroupSchema.from_dict(schema)

    def drop_group(self, name: str) -> None:
        """Drops a group: its rows become unreachable at once, their space is reclaimed later."""
        self._h.drop_group(name)

    # -- writes ----------------------------------------------------------------------------

    def put(
        self,
        group: str,
        key: Union[str, int, bytes],
        values: Mapping[str, Any],
        event_time: Time = None,
        *,
        mode: str = "merge",
        sync: Optional[bool] = None,
        ttl: Seconds = None,
        expected_generation: Optional[int] = None,
        write_time: Time = None,
    ) -> PutResult:
        """Writes features of one entity, all with ``event_time`` (a datetime, naive = UTC, or
        Unix ms; default now). ``None`` values are stored nulls. ``mode``: merge (per feature
        the newest event time wins), replace_row, create_only, update_only. ``sync``: True waits
        until durable, False acknowledges from memory, None uses the store's default.
        ``write_time`` (groups with history): when the store learned these values, recorded
        with each version instead of the store's clock (importing history whose arrival times
        are known; what ``known_at`` and the "as-served" training sets read)."""
        written, skipped, generation, dropped = self._h.put(
            group,
            key,
            _columns.to_ms(event_time),
            dict(values),
            mode,
            _sync(sync),
            _seconds(ttl, "ttl"),
            expected_generation,
            None if write_time is None else _columns.to_ms(write_time),
        )
        return PutResult(written, skipped, generation, dropped)

    def put_many(
        self,
        group: str,
        data: Any,
        *,
        key: str,
        event_time: Optional[str] = None,
        event_time_ms: Time = None,
        features: Optional[Sequence[str]] = None,
        mode: str = "merge",
        sync: Optional[bool] = None,
        ttl: Seconds = None,
        skip_nulls: bool = False,
        write_time: Optional[str] = None,
    ) -> WriteSummary:
        """Writes one entity per row of ``data``: a ``pandas.DataFrame``, a ``pyarrow.Table``
        or ``RecordBatch``, or a dict of columns (where a 2-D numpy array is a vector column).

        ``key`` names the key column; ``event_time`` the event-time column (timestamps, naive
        = UTC, or integer Unix ms) or, when None, ``event_time_ms`` (or now) stamps every row;
        ``features`` the feature columns (default: every other column). Vectors come from list,
        fixed-size-list or 2-D numpy columns. Nulls are written as stored nulls, or left out
        with ``skip_nulls``. ``write_time`` names a column of write times (groups with history:
        when the store learned each row, instead of its clock; see :meth:`put`). Rows are
        pipelined over one connection; the first failing row stops the write (rows before it
        are written) and its error names the row."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        schema = self.describe_group(group)
        keys, times, columns, write_times = _columns.table_columns(
            data, schema, key, event_time, None if event_time else _columns.to_ms(event_time_ms), features, write_time
        )
        rows, written, skipped, dropped = self._h.put_columns(
            group, keys, times, columns, mode, _sync(sync), _seconds(ttl, "ttl"), skip_nulls, write_times
        )
        return WriteSummary(rows, written, skipped, dropped)

    def delete(self, group: str, key: Union[str, int, bytes], *, sync: Optional[bool] = None) -> bool:
        """Deletes one entity's row of a group; returns whether it existed."""
        return self._h.delete(group, key, _sync(sync))

    # -- reads -----------------------------------------------------------------------------

    def get_online_features(
        self,
        features: Sequence[str],
        entities: Union[Sequence[Any], np.ndarray],
    ) -> OnlineFeatures:
        """Reads ``features`` ("group:feature", from any groups of the same key type) for every
        entity in one request (more when the server's batch limit is smaller). Returns
        values, statuses and event times per feature; ``.to_dict()``, ``.to_arrow()``,
        ``.to_pandas()``."""
        refs = list(features)
        raw = self._h.get(refs, entities)
        return OnlineFeatures(entities, refs, raw)

    def get_as_of(
        self,
        features: Sequence[str],
        entities: Sequence[Any],
        times: Union[Time, Sequence[Time]],
        *,
        known_at: Union[Time, Sequence[Time]] = None,
    ) -> OnlineFeatures:
        """Point-in-time reads of groups that keep history: per entity, the newest value whose
        event time is at or before its time (one time for all, or one per entity), with the
        TTL counted from that time; with ``known_at``, only among versions written by then.
        Over the network: GET_AS_OF requests (docs/PROTOCOL.md)."""
        n = len(entities)
        as_ms = _per_entity(times, n)
        known = None if known_at is None else _per_entity(known_at, n)
        refs = list(features)
        raw = self._h.get_as_of(refs, entities, as_ms, known)
        return OnlineFeatures(entities, refs, raw)

    def history(
        self,
        group: str,
        key: Union[str, int, bytes],
        features: Sequence[str],
        start: Time,
        end: Time,
        *,
        known_at: Time = None,
    ) -> List[HistoryEntry]:
        """Every stored version of ``features`` of one entity with an event time in
        ``start..=end``, by event time then write time."""
        entries = self._h.history(
            group,
            key,
            list(features),
            _columns.to_ms(start),
            _columns.to_ms(end),
            None if known_at is None else _columns.to_ms(known_at),
        )
        return [HistoryEntry(*e) for e in entries]


    def training_set(
        self,
        spine: Any,
        features: Sequence[str],
        *,
        key_columns: Union[str, Mapping[str, str]],
        timestamp_column: str = "event_timestamp",
        mode: str = "event",
        known_at_column: Optional[str] = None,
        full_feature_names: bool = False,
        status_columns: bool = False,
    ) -> "pyarrow.Table":
        """A point-in-time correct training set, as a ``pyarrow.Table``.

        ``spine``: a ``pandas.DataFrame``, a ``pyarrow.Table`` / ``RecordBatch``, a dict of
        columns, or the path of a Parquet file; one row per training example. ``features``:
        ``"group:feature"`` references, from one or more groups that keep history.
        ``key_columns``: the spine column holding each group's entity keys, as
        ``{group: column}`` (or one column name for every group); a null key reads as not
        found. ``timestamp_column``: each row's time (timestamps, naive = UTC, dates, or
        integer Unix ms).

        For each row and feature the answer is the value as of the row's time: the newest
        version whose event time is at or before it, null when there is none, the key is null,
        or the value is older than the group's TTL counted back from the row's time. No value
        from after the row's time appears. ``mode``:

        - ``"event"`` (Feast's ``get_historical_features``): by event time only, however late a
          version was written;
        - ``"as-served"``: what the online store served at the row's time (only versions
          written by then count);
        - ``"known-at"`` with ``known_at_column`` (or ``"known-at:COLUMN"``): by event time,
          among the versions written by the time in that spine column.

        The table has the columns of ``quiver training-set``: the spine's columns unchanged, one
        column per feature named ``FEATURE`` (``GROUP__FEATURE`` with ``full_feature_names``),
        null unless present, and with ``status_columns`` a ``FEATURE__status`` string column
        (``present``, ``null``, ``not_found``, ``expired``). Over the network the spine
        streams to the server as TRAINING_SET requests (docs/PROTOCOL.md); embedded, the store
        joins it in this process. The GIL is released while the store works; the result is
        held in memory (for spines larger than memory, ``quiver training-set`` streams files).

        On a cluster each step of the spine is split by master: every node joins the rows whose
        keys it masters, in parallel, and each feature is taken from its key's master; a join
        during which the partition map moved is made again.

        A bad spine raises before anything is read: :class:`~quiver.errors.MissingColumnError`
        for a column that is not there, :class:`~quiver.errors.TypeMismatchError` for a key
        or time column of the wrong type (both carry ``.column``),
        :class:`~quiver.errors.InvalidArgumentError` for a null or pre-1970 time (naming the
        row); the store refuses a time before a group's history window, naming the row.
        """
        refs = list(features)
        if not refs:
            raise _errors.InvalidArgumentError("a training set needs 1 or more features (group:feature)")
        groups: List[str] = []
        for r in refs:
            group, sep, feature = r.partition(":")
            if not sep or not group or not feature:
                raise _errors.InvalidArgumentError(f"feature reference {r!r} is not group:feature")
            if group not in groups:
                groups.append(group)
        how = _spine.parse_mode(mode, known_at_column)
        keys_by_group = _spine.key_columns_of(key_columns, groups)
        table = _spine.read_spine(spine)
        times = _spine.spine_times(table, timestamp_column, "timestamp")
        known = None
        if how.known_at_column is not None:
            known = _spine.spine_times(table, how.known_at_column, "known-at")
        key_args = []
        for g in groups:
            schema = self.describe_group(g)
            keys, valid = _spine.spine_keys(table, g, schema.key_type, keys_by_group[g])
            key_args.append((g, keys, valid))
        raw = self._h.training_set(
            refs, how.name, key_args, times, known, timestamp_column, how.known_at_column or "known_at"
        )
        return _spine.output_table(table, refs, raw, full_feature_names, status_columns)

    def training_set_df(self, spine: Any, features: Sequence[str], **options: Any) -> "pandas.DataFrame":
        """:meth:`training_set` as a ``pandas.DataFrame`` (same arguments)."""
        return self.training_set(spine, features, **options).to_pandas()


def _per_entity(t: Any, n: int) -> List[int]:
    if isinstance(t, (list, tuple, np.ndarray)):
        if len(t) != n:
            raise ValueError(f"{n} entities need {n} times, got {len(t)}")
        return [_columns.to_ms(x) for x in t]
    return [_columns.to_ms(t)] * n


def connect(
    addr: str = "127.0.0.1:7878",
    token: Optional[str] = None,
    timeout: Optional[float] = 30.0,
    connect_timeout: float = 5.0,
) -> Client:
    """Connects to ``quiverd`` at ``addr`` ("host:port"). ``token`` is the server's auth token;
    ``timeout`` the longest wait for an answer, in seconds (None waits forever)."""
    return Client(Handle.connect(addr, token, timeout, connect_timeout))


def connect_cluster(
    seeds: Union[str, Sequence[str]],
    token: Optional[str] = None,
    timeout: Optional[float] = 30.0,
    connect_timeout: float = 5.0,
    retry_deadline: float = 20.0,
    replica_reads: bool = False,
) -> Client:
    """Connects to a Quiver cluster through any of its nodes (``seeds``: one "host:port" or a
    list; the first that answers gives the partition map). Each keyed request goes straight to
    its key's master; batch reads and bulk writes are split by node and the parts sent in
    parallel. A request refused with NOT_MASTER or UNAVAILABLE, or whose connection broke, is
    retried after a map refresh for up to ``retry_deadline`` seconds (0: one attempt), then
    raises :class:`~quiver.errors.NotMasterError`, :class:`~quiver.errors.UnavailableError`
    or :class:`~quiver.errors.QuiverConnectionError`. Group changes go to every node.
    ``token`` and ``timeout`` as for :func:`connect`.

    ``replica_reads=True`` sends reads (online features, as-of reads, history) to each copy
    of a key's partition in turn, master or in-sync replica, so that replicas share the reads:
    an answer from a replica may miss writes it has not received yet (possibly stale; see
    docs/CLUSTER.md). Writes always go to the master."""
    if isinstance(seeds, str):
        seeds = [seeds]
    handle = Handle.connect_cluster(list(seeds), token, timeout, connect_timeout, retry_deadline, replica_reads)
    return Client(handle)


def open(  # noqa: A001 - the package's verb, like builtins.open for files
    path: Optional[str] = None,
    size: Union[int, str] = "1GiB",
    *,
    sync: Optional[bool] = None,
) -> Client:
    """Opens (or creates, of ``size`` bytes) a store in the file ``path`` inside this process;
    ``path=None`` keeps it in memory. ``sync`` sets the store's default durability."""
    return Client(Handle.open(path, _size(size), _sync(sync)))
