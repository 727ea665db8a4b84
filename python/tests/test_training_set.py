"""Training sets from the Python SDK (``Client.training_set``), embedded and over quiverd.

Compared value for value and status for status with an independent reference: DuckDB, in
this process, over the same history as a table of versions. Event time by DuckDB's
``ASOF JOIN`` (after keeping, per entity and event time, the latest write: a correction);
"as served" and known-at by ranking the versions written by the row's known-at time (DuckDB
refuses an ASOF JOIN with two inequalities). Random data with late events, corrections,
nulls, a TTL, missing entities, null keys and two groups of different key types. Embedded and
remote answers must be identical; a bad spine raises a typed error naming its column.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
from typing import Dict, List

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quiver
from quiver import Feature, GroupSpec, errors

from conftest import REPO

T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
HOUR_MS = 3_600_000
TTL_S = 3 * 3600
SPAN_MS = 48 * HOUR_MS
USERS = [f"u{i}" for i in range(40)]
SHOPS = list(range(1, 31))
FEATURES = [
    # name, group role, type, ttl
    ("a", "user", "f64"),
    ("b", "user", "i64"),
    ("s", "user", "str"),
    ("x", "shop", "f32"),
    ("y", "shop", "f64"),
]


def _value(rng: random.Random, kind: str):
    if rng.random() < 0.15:
        return None
    if kind == "i64":
        return rng.randrange(-1000, 1000)
    if kind == "str":
        return rng.choice(["oslo", "lima", "kyiv", "pune", ""]) + str(rng.randrange(10))
    # Quarters are exact in f32 and f64 alike.
    return rng.randrange(-4000, 4000) / 4


def _versions(rng: random.Random, entities: List, names: List[str], kinds: List[str], n: int) -> pd.DataFrame:
    """Rows of versions: entity, event time, write time, one value per feature (None = stored
    null). Some are late (written long after their event time), some correct an earlier
    version (same event time, later write)."""
    rows = []
    for _ in range(n):
        if rows and rng.random() < 0.1:
            prev = rng.choice(rows)
            entity, event = prev["key"], prev["event_ms"]
            write = prev["write_ms"] + rng.randrange(1, 10 * HOUR_MS)
        else:
            entity = rng.choice(entities)
            event = T0_MS + rng.randrange(0, SPAN_MS // 60_000) * 60_000
            late = rng.random() < 0.25
            write = event + rng.randrange(0, (30 if late else 1) * HOUR_MS)
        row = {"key": entity, "event_ms": event, "write_ms": write}
        for name, kind in zip(names, kinds):
            row[name] = _value(rng, kind)
        rows.append(row)
    df = pd.DataFrame(rows).sort_values("write_ms", kind="stable").reset_index(drop=True)
    return df


def _spine(rng: random.Random, n: int) -> pd.DataFrame:
    user, shop, ts, known, label = [], [], [], [], []
    for _ in range(n):
        r = rng.random()
        user.append(None if r < 0.05 else ("nobody" if r < 0.1 else rng.choice(USERS)))
        r = rng.random()
        shop.append(None if r < 0.05 else (999 if r < 0.1 else rng.choice(SHOPS)))
        t = T0_MS - 2 * HOUR_MS + rng.randrange(0, SPAN_MS + 4 * HOUR_MS)
        ts.append(t)
        known.append(t + rng.randrange(-5 * HOUR_MS, 20 * HOUR_MS))
        label.append(rng.random())
    return pd.DataFrame(
        {
            "row_id": np.arange(n, dtype=np.int64),
            "user_id": pd.array(user, dtype="string"),
            "shop_id": pd.array(shop, dtype="Int64"),
            "ts": pd.to_datetime(ts, unit="ms"),
            "known": pd.to_datetime(known, unit="ms"),
            "label": label,
        }
    )


class Data:
    """The groups, their versions as written, and a spine."""

    def __init__(self, seed: int, tag: str):
        rng = random.Random(seed)
        self.user_group = f"tsu_{tag}"
        self.shop_group = f"tss_{tag}"
        self.users = _versions(rng, USERS, ["a", "b", "s"], ["f64", "i64", "str"], 700)
        self.shops = _versions(rng, SHOPS, ["x", "y"], ["f32", "f64"], 500)
        self.spine = _spine(rng, 1500)
        self.refs = [f"{self.user_group}:a", f"{self.user_group}:b", f"{self.user_group}:s", f"{self.shop_group}:x", f"{self.shop_group}:y"]
        self.keys = {self.user_group: "user_id", self.shop_group: "shop_id"}

    def load(self, store: quiver.Client) -> None:
        history = dt.timedelta(days=3650)
        store.create_group(
            GroupSpec(
                name=self.user_group,
                key_type="string",
                features=[Feature("a", quiver.F64), Feature("b", quiver.I64), Feature("s", quiver.STRING)],
                ttl=dt.timedelta(seconds=TTL_S),
                history=history,
            )
        )
        store.create_group(
            GroupSpec(
                name=self.shop_group,
                key_type="i64",
                features=[Feature("x", quiver.F32), Feature("y", quiver.F64)],
                history=history,
            )
        )
        for group, df in ((self.user_group, self.users), (self.shop_group, self.shops)):
            table = pa.Table.from_pandas(df, preserve_index=False)
            summary = store.put_many(group, table, key="key", event_time="event_ms", write_time="write_ms")
            assert summary.rows == len(df)

    def history_table(self) -> pd.DataFrame:
        """Every version as one row per feature, for DuckDB."""
        rows = []
        for group, df, names in ((self.user_group, self.users, "abs"), (self.shop_group, self.shops, "xy")):
            for rec in df.itertuples(index=False):
                for name in names:
                    v = getattr(rec, name)
                    null = v is None or (isinstance(v, float) and np.isnan(v))
                    rows.append(
                        {
                            "grp": group,
                            "entity": str(rec.key),
                            "feature": name,
                            "event_time": int(rec.event_ms),
                            "write_time": int(rec.write_ms),
                            "is_null": null,
                            "num": None if null or name == "s" else float(v),
                            "txt": None if null or name != "s" else str(v),
                        }
                    )
        return pd.DataFrame(rows)


def _reference(con, group: str, feature: str, key: str, ttl_s, mode: str) -> pd.DataFrame:
    """Per spine row: the status and value DuckDB finds for one feature."""
    where = f"grp = '{group}' AND feature = '{feature}'"
    skey = f"CAST(s.{key} AS VARCHAR)"
    if mode == "event":
        best = f"""
            WITH hf AS (SELECT entity, event_time, num, txt, is_null FROM hist WHERE {where}
                        QUALIFY row_number() OVER (PARTITION BY entity, event_time
                                                   ORDER BY write_time DESC) = 1)
            SELECT s.row_id, hf.event_time, hf.num, hf.txt, hf.is_null
            FROM spine s ASOF LEFT JOIN hf ON {skey} = hf.entity AND s.ts_ms >= hf.event_time"""
    else:
        known = "s.ts_ms" if mode == "as-served" else "s.known_ms"
        best = f"""
            SELECT row_id, event_time, num, txt, is_null FROM (
                SELECT s.row_id, h.event_time, h.num, h.txt, h.is_null,
                       row_number() OVER (PARTITION BY s.row_id
                                          ORDER BY h.event_time DESC, h.write_time DESC) AS rank
                FROM spine s JOIN (SELECT * FROM hist WHERE {where}) h
                  ON {skey} = h.entity AND h.event_time <= s.ts_ms AND h.write_time <= {known})
            WHERE rank = 1"""
    expired = f"(s.ts_ms - b.event_time > {ttl_s * 1000})" if ttl_s else "FALSE"
    return con.execute(
        f"""
        WITH b AS ({best})
        SELECT s.row_id,
               CASE WHEN b.event_time IS NULL THEN 'not_found'
                    WHEN {expired} THEN 'expired'
                    WHEN b.is_null THEN 'null' ELSE 'present' END AS status,
               b.num, b.txt
        FROM spine s LEFT JOIN b USING (row_id) ORDER BY s.row_id"""
    ).df()


def _duckdb(data: Data):
    con = duckdb.connect()
    hist = data.history_table()  # noqa: F841 - read by DuckDB by name
    spine = pd.DataFrame(
        {
            "row_id": data.spine["row_id"],
            "user_id": data.spine["user_id"].astype(object).where(data.spine["user_id"].notna(), None),
            "shop_id": data.spine["shop_id"].astype("Int64"),
            "ts_ms": data.spine["ts"].astype("datetime64[ms]").astype(np.int64),
            "known_ms": data.spine["known"].astype("datetime64[ms]").astype(np.int64),
        }
    )
    con.register("hist", hist)
    con.register("spine_df", spine)
    con.execute("CREATE TABLE spine AS SELECT * FROM spine_df")
    return con


@pytest.fixture(scope="module")
def data() -> Data:
    return Data(seed=20260101, tag=str(random.Random().randrange(10**9)))


@pytest.fixture(scope="module")
def loaded(data: Data, quiverd, tmp_path_factory) -> Dict[str, quiver.Client]:
    """The same writes in quiverd and in an embedded store."""
    stores = {
        "remote": quiver.connect(quiverd.addr),
        "embedded": quiver.open(str(tmp_path_factory.mktemp("ts") / "store.db"), size="128MiB"),
    }
    for s in stores.values():
        data.load(s)
    yield stores
    for s in stores.values():
        s.close()


MODES = ["event", "as-served", "known-at"]


def _run(store: quiver.Client, data: Data, mode: str, spine=None) -> pa.Table:
    return store.training_set(
        data.spine if spine is None else spine,
        data.refs,
        key_columns=data.keys,
        timestamp_column="ts",
        mode=mode,
        known_at_column="known" if mode == "known-at" else None,
        status_columns=True,
    )


@pytest.mark.parametrize("backend", ["remote", "embedded"])
@pytest.mark.parametrize("mode", MODES)
def test_matches_duckdb(loaded, data: Data, backend: str, mode: str):
    got = _run(loaded[backend], data, mode)
    # The spine's columns first, unchanged and in order; then features; then statuses.
    assert got.column_names == list(data.spine.columns) + ["a", "b", "s", "x", "y"] + [
        f"{n}__status" for n in "absxy"
    ]
    assert got.select(list(data.spine.columns)).equals(pa.Table.from_pandas(data.spine, preserve_index=False))
    con = _duckdb(data)
    seen = {"present": 0, "null": 0, "not_found": 0, "expired": 0}
    mismatches = []
    for name, role, kind in FEATURES:
        group = data.user_group if role == "user" else data.shop_group
        ttl = TTL_S if role == "user" else None
        want = _reference(con, group, name, data.keys[group], ttl, mode)
        statuses = got.column(f"{name}__status").to_pylist()
        values = got.column(name).to_pylist()
        assert len(want) == len(statuses) == len(data.spine)
        for row, status, num, txt in want.itertuples(index=False):
            seen[status] += 1
            expect = None
            if status == "present":
                expect = txt if kind == "str" else (int(num) if kind == "i64" else float(num))
            if statuses[row] != status or values[row] != expect:
                mismatches.append((name, row, status, expect, statuses[row], values[row]))
    assert mismatches == [], f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
    # The data exercises every status.
    assert all(n > 0 for n in seen.values()), seen
    # Nothing from after the row's time.
    assert got.num_rows == len(data.spine)


def test_modes_differ_on_late_data(loaded, data: Data):
    """Late events make "as served" see less than event time: the comparison above covers
    something only if the modes disagree somewhere."""
    store = loaded["embedded"]
    event = _run(store, data, "event").column("a__status").to_pylist()
    served = _run(store, data, "as-served").column("a__status").to_pylist()
    assert sum(e != s for e, s in zip(event, served)) > 0


@pytest.mark.parametrize("mode", MODES)
def test_embedded_and_remote_identical(loaded, data: Data, mode: str):
    remote = _run(loaded["remote"], data, mode)
    embedded = _run(loaded["embedded"], data, mode)
    assert remote.equals(embedded)


def quiver_cli() -> str:
    path = os.environ.get("QUIVER_BIN") or str(REPO / "target" / "debug" / "quiver")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the quiver CLI is not at {path}: run `cargo build -p quiver-tools --bin quiver` or set QUIVER_BIN")
    return path


@pytest.mark.parametrize("mode", MODES)
def test_same_columns_and_values_as_the_cli(loaded, data: Data, quiverd, tmp_path, mode: str):
    """`quiver training-set` against the same quiverd writes the table the SDK returns: the
    same column names in the same order and the same values."""
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.Table.from_pandas(data.spine, preserve_index=False), spine)
    out = tmp_path / "out.parquet"
    args = [quiver_cli(), "--addr", quiverd.addr, "training-set", "--spine", str(spine), "--timestamp-column", "ts"]
    for group, column in data.keys.items():
        args += ["--key-column", f"{group}={column}"]
    for ref in data.refs:
        args += ["--feature", ref]
    args += ["--out", str(out), "--status-columns", "--mode", "known-at:known" if mode == "known-at" else mode]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cli = pq.read_table(out)
    sdk = _run(loaded["remote"], data, mode)
    assert cli.column_names == sdk.column_names
    for name in sdk.column_names:
        assert cli.column(name).to_pylist() == sdk.column(name).to_pylist(), name


def test_spine_kinds_and_dataframe(loaded, data: Data, tmp_path):
    """A pyarrow Table, a Parquet file and a dict of columns give the DataFrame's answer;
    ``training_set_df`` is the same as a DataFrame; "known-at:COLUMN" spells the mode too."""
    store = loaded["remote"]
    want = _run(store, data, "known-at")
    table = pa.Table.from_pandas(data.spine, preserve_index=False)
    path = tmp_path / "spine.parquet"
    pq.write_table(table, path)
    assert _run(store, data, "known-at", spine=table).equals(want)
    assert _run(store, data, "known-at", spine=str(path)).equals(want)
    via_mode = store.training_set(
        path, data.refs, key_columns=data.keys, timestamp_column="ts", mode="known-at:known", status_columns=True
    )
    assert via_mode.equals(want)
    df = store.training_set_df(data.spine, data.refs, key_columns=data.keys, timestamp_column="ts")
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(data.spine.columns) + ["a", "b", "s", "x", "y"]
    event = _run(store, data, "event")
    for name in "absxy":
        assert df[name].isna().tolist() == event.column(name).is_null().to_pylist()


def test_full_feature_names_and_collisions(loaded, data: Data):
    store = loaded["embedded"]
    got = store.training_set(
        data.spine, data.refs[:1], key_columns=data.keys[data.user_group], timestamp_column="ts", full_feature_names=True
    )
    assert got.column_names[-1] == f"{data.user_group}__a"
    spine = data.spine.rename(columns={"label": "a"})
    with pytest.raises(errors.InvalidArgumentError, match="two columns named 'a'"):
        store.training_set(spine, data.refs, key_columns=data.keys, timestamp_column="ts")


def test_vectors_and_lists_come_back(store, group_name):
    """Vector and list features come back as list columns (as `quiver training-set` writes
    them), null where not present."""
    store.create_group(
        GroupSpec(
            name=group_name,
            key_type="i64",
            features=[Feature("v", quiver.vector(3)), Feature("l", quiver.LIST_I64), Feature("t", quiver.LIST_STRING)],
            history=dt.timedelta(days=3650),
        )
    )
    store.put(group_name, 1, {"v": np.array([1, 2, 3], np.float32), "l": [4, 5], "t": ["p", "q"]}, event_time=T0_MS)
    store.put(group_name, 1, {"v": np.array([7, 8, 9], np.float32), "l": [], "t": None}, event_time=T0_MS + HOUR_MS)
    spine = pa.table({"k": [1, 1, 1, 2], "ts": pa.array([T0_MS - 1, T0_MS + 1, T0_MS + HOUR_MS, T0_MS], pa.int64())})
    got = store.training_set(spine, [f"{group_name}:{f}" for f in "vlt"], key_columns="k", timestamp_column="ts")
    assert got.column("v").to_pylist() == [None, [1.0, 2.0, 3.0], [7.0, 8.0, 9.0], None]
    assert got.column("l").to_pylist() == [None, [4, 5], [], None]
    assert got.column("t").to_pylist() == [None, ["p", "q"], None, None]
    assert got.schema.field("v").type == pa.list_(pa.float32())


def test_bad_spines_raise_typed_errors(loaded, data: Data):
    for store in loaded.values():
        kw = dict(key_columns=data.keys, timestamp_column="ts")
        with pytest.raises(errors.InvalidArgumentError, match=f"names group '{data.shop_group}', but no feature"):
            store.training_set(data.spine, data.refs[:1], **kw)
        with pytest.raises(errors.MissingColumnError, match="'shop_id'") as e:
            store.training_set(data.spine.drop(columns=["shop_id"]), data.refs, **kw)
        assert e.value.column == "shop_id"
        assert isinstance(e.value, ValueError)
        with pytest.raises(errors.MissingColumnError, match="timestamp column 'when'") as e:
            store.training_set(data.spine, data.refs, key_columns=data.keys, timestamp_column="when")
        assert e.value.column == "when"
        # A float column cannot hold the string keys of the user group.
        wrong = data.spine.assign(user_id=data.spine["label"])
        with pytest.raises(errors.TypeMismatchError, match="spine column 'user_id' has type double") as e:
            store.training_set(wrong, data.refs, **kw)
        assert e.value.column == "user_id"
        assert isinstance(e.value, TypeError)
        # Strings cannot be the i64 keys of the shop group.
        wrong = data.spine.assign(shop_id=data.spine["shop_id"].astype(str))
        with pytest.raises(errors.TypeMismatchError, match="'shop_id'.*i64 keys") as e:
            store.training_set(wrong, data.refs, **kw)
        assert e.value.column == "shop_id"
        wrong = data.spine.assign(ts=data.spine["label"])
        with pytest.raises(errors.TypeMismatchError, match="spine column 'ts'") as e:
            store.training_set(wrong, data.refs, **kw)
        assert e.value.column == "ts"
        nulls = pa.Table.from_pandas(data.spine, preserve_index=False)
        ts = nulls.column("ts").to_pylist()
        ts[7] = None
        nulls = nulls.set_column(nulls.column_names.index("ts"), "ts", pa.array(ts, pa.timestamp("ns")))
        with pytest.raises(errors.InvalidArgumentError, match="spine row 8: the timestamp column 'ts' is null"):
            store.training_set(nulls, data.refs, **kw)
        early = data.spine.assign(ts=pd.to_datetime(data.spine["ts"]).where(data.spine["row_id"] != 3, pd.Timestamp("1960-01-01")))
        with pytest.raises(errors.InvalidArgumentError, match="spine row 4: column 'ts'.*before 1970"):
            store.training_set(early, data.refs, **kw)
        with pytest.raises(errors.InvalidArgumentError, match="needs known_at_column"):
            store.training_set(data.spine, data.refs, mode="known-at", **kw)
        with pytest.raises(errors.InvalidArgumentError, match="invalid mode 'served'"):
            store.training_set(data.spine, data.refs, mode="served", **kw)
        with pytest.raises(errors.InvalidArgumentError, match=f"no key column for group '{data.shop_group}'"):
            store.training_set(data.spine, data.refs, key_columns={data.user_group: "user_id"}, timestamp_column="ts")
        with pytest.raises(errors.UnknownFeatureError):
            store.training_set(data.spine, [f"{data.user_group}:nope"], key_columns="user_id", timestamp_column="ts")
        with pytest.raises(errors.UnknownGroupError):
            store.training_set(data.spine, ["no_such_group:a"], key_columns="user_id", timestamp_column="ts")


def test_group_without_history_is_refused(store, group_name):
    store.create_group(GroupSpec(name=group_name, key_type="i64", features=[Feature("p", quiver.F64)]))
    spine = pa.table({"k": [1], "ts": pa.array([T0_MS], pa.int64())})
    with pytest.raises(errors.QuiverError, match="histor"):
        store.training_set(spine, [f"{group_name}:p"], key_columns="k", timestamp_column="ts")


def test_write_times_of_put_and_put_many(store, group_name):
    """``write_time`` sets when the store learned a value: ``known_at`` reads see it."""
    store.create_group(
        GroupSpec(name=group_name, key_type="string", features=[Feature("p", quiver.F64)], history=dt.timedelta(days=3650))
    )
    ref = f"{group_name}:p"
    store.put(group_name, "k", {"p": 1.0}, event_time=T0_MS, write_time=T0_MS + 10)
    store.put_many(
        group_name,
        pd.DataFrame({"key": ["k"], "et": [T0_MS + 1], "wt": [T0_MS + 20], "p": [2.0]}),
        key="key",
        event_time="et",
        write_time="wt",
    )
    got = store.get_as_of([ref], ["k"] * 3, [T0_MS + 5] * 3, known_at=[T0_MS + 9, T0_MS + 10, T0_MS + 20])
    assert list(got.statuses(ref)) == [quiver.Status.NOT_FOUND, quiver.Status.PRESENT, quiver.Status.PRESENT]
    assert list(got.values(ref))[1:] == [1.0, 2.0]
    versions = store.history(group_name, "k", ["p"], T0_MS, T0_MS + 5)
    assert [(v.event_time_ms, v.write_time_ms, v.value) for v in versions] == [(T0_MS, T0_MS + 10, 1.0), (T0_MS + 1, T0_MS + 20, 2.0)]
