"""The Python client against quiverd and against an embedded store."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import quiver
from quiver import Feature, GroupSpec, Status, errors
from quiver._native import status_codes

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
T0_MS = int(T0.timestamp() * 1000)


def user_spec(name: str, **kw) -> GroupSpec:
    return GroupSpec(
        name=name,
        key_type="string",
        features=[
            Feature("clicks", quiver.I64),
            Feature("ctr", quiver.F32),
            Feature("score", quiver.F64),
            Feature("active", quiver.BOOL),
            Feature("city", quiver.STRING),
            Feature("blob", quiver.BYTES),
            Feature("emb", quiver.vector(4)),
            Feature("tags", quiver.LIST_STRING),
            Feature("hist", quiver.LIST_F32),
            Feature("ids", quiver.LIST_I64),
        ],
        **kw,
    )


def test_every_protocol_status_has_its_own_exception_class():
    seen = set()
    for name, code in status_codes():
        if name == "OK":
            continue
        cls = errors.BY_STATUS[name]
        assert issubclass(cls, quiver.QuiverError)
        assert cls not in seen, name
        seen.add(cls)
        exc = errors.from_failure(name, code, "m")
        assert (exc.status, exc.code, str(exc)) == (name, code, "m")


def test_groups_create_describe_list_alter_drop(store, group_name):
    created = store.create_group(user_spec(group_name, ttl=dt.timedelta(days=7), tags=("team:ads",)))
    assert created.name == group_name and created.version == 1
    assert created.ttl_s == 7 * 86400
    assert created.feature("emb").type == "f32[4]"
    assert store.describe_group(group_name) == created
    assert group_name in [g.name for g in store.list_groups()]
    assert [g.name for g in store.list_groups(tag="team:ads")] == [group_name]
    altered = store.alter_group(group_name, add_feature=Feature("extra", quiver.F64), ttl=None)
    assert altered.version == 3 and altered.ttl_s is None
    assert altered.feature("extra").type == "f64"
    altered = store.alter_group(group_name, deprecate_feature="extra", description="users")
    assert altered.feature("extra").deprecated and altered.description == "users"
    with pytest.raises(errors.GroupExistsError) as e:
        store.create_group(user_spec(group_name))
    assert e.value.status == "GROUP_EXISTS" and e.value.code == 10
    store.drop_group(group_name)
    with pytest.raises(errors.UnknownGroupError):
        store.describe_group(group_name)


def test_bad_input_raises_typed_errors(store, group_name):
    store.create_group(user_spec(group_name))
    with pytest.raises(errors.TypeMismatchError, match="clicks"):
        store.put(group_name, "a", {"clicks": "many"})
    with pytest.raises(errors.UnknownFeatureError, match="nope"):
        store.put(group_name, "a", {"nope": 1})
    with pytest.raises(errors.TypeMismatchError, match="emb"):
        store.put(group_name, "a", {"emb": [1.0, 2.0]})
    with pytest.raises(errors.InvalidArgumentError):
        store.create_group(GroupSpec(name="Bad-Name", key_type="string", features=[]))
    with pytest.raises(errors.UnknownGroupError):
        store.get_online_features([f"{group_name}_missing:x"], ["a"])
    with pytest.raises(errors.AlreadyExistsError):
        store.put(group_name, "b", {"clicks": 1}, mode="create_only")
        store.put(group_name, "b", {"clicks": 2}, mode="create_only")
    with pytest.raises(errors.NotFoundError):
        store.put(group_name, "nobody", {"clicks": 1}, mode="update_only")


def test_put_one_entity_and_read_it_back(store, group_name):
    store.create_group(user_spec(group_name))
    values = {
        "clicks": 7,
        "ctr": 0.25,
        "score": 1.5,
        "active": True,
        "city": "Oslo",
        "blob": b"\x00\x01",
        "emb": np.array([1, 2, 3, 4], dtype=np.float32),
        "tags": ["a", "b"],
        "hist": [0.5, 1.5],
        "ids": [3, -4],
    }
    r = store.put(group_name, "alice", values, T0, sync=True)
    assert r.written == len(values) and r.skipped_stale == 0
    stale = store.put(group_name, "alice", {"clicks": 1}, T0 - dt.timedelta(hours=1))
    assert (stale.written, stale.skipped_stale) == (0, 1)
    refs = [f"{group_name}:{f}" for f in values] + [f"{group_name}:clicks"]
    got = store.get_online_features(refs, ["alice", "bob"])
    for ref in refs:
        assert list(got.statuses(ref)) == [Status.PRESENT, Status.NOT_FOUND], ref
        assert list(got.event_times_ms(ref)) == [T0_MS, 0]
    g = lambda f: got.values(f"{group_name}:{f}")  # noqa: E731
    assert g("clicks").dtype == np.int64 and g("clicks")[0] == 7
    assert g("ctr").dtype == np.float32 and g("ctr")[0] == np.float32(0.25)
    assert g("score")[0] == 1.5 and g("active")[0]
    assert g("city") == ["Oslo", None] and g("blob") == [b"\x00\x01", None]
    emb = g("emb")
    assert emb.shape == (2, 4) and emb.dtype == np.float32
    assert emb[0].tolist() == [1, 2, 3, 4] and emb[1].tolist() == [0, 0, 0, 0]
    assert g("tags") == [["a", "b"], None]
    assert g("hist")[0].tolist() == [0.5, 1.5] and len(g("hist")[1]) == 0
    assert g("ids")[0].tolist() == [3, -4]


def test_nulls_and_expired_values_have_their_statuses(store, group_name):
    store.create_group(user_spec(group_name, ttl=3600))
    now = dt.datetime.now(dt.timezone.utc)
    store.put(group_name, "fresh", {"clicks": None, "ctr": 0.5}, now)
    store.put(group_name, "old", {"clicks": 3}, now - dt.timedelta(hours=2))
    got = store.get_online_features([f"{group_name}:clicks", f"{group_name}:ctr"], ["fresh", "old"])
    assert list(got.statuses(f"{group_name}:clicks")) == [Status.NULL, Status.EXPIRED]
    assert list(got.statuses(f"{group_name}:ctr")) == [Status.PRESENT, Status.NOT_FOUND]


def test_reads_across_groups_and_output_shapes(store, group_name):
    other = group_name + "_b"
    store.create_group(user_spec(group_name))
    store.create_group(GroupSpec(name=other, key_type="string", features=[Feature("n", quiver.I64)]))
    store.put(group_name, "u1", {"clicks": 1, "emb": [1, 1, 1, 1]}, T0)
    store.put(other, "u2", {"n": 5}, T0 + dt.timedelta(seconds=1))
    refs = [f"{group_name}:clicks", f"{other}:n", f"{group_name}:emb"]
    got = store.get_online_features(refs, ["u1", "u2"])
    d = got.to_dict()
    assert d["entity"] == ["u1", "u2"]
    assert list(d[f"{other}:n.status"]) == [Status.NOT_FOUND, Status.PRESENT]
    assert d[f"{other}:n.event_time"][1] == T0_MS + 1000
    table = got.to_arrow()
    assert isinstance(table, pa.Table)
    assert table.column(f"{group_name}:clicks").to_pylist() == [1, None]
    assert table.column(f"{other}:n").to_pylist() == [None, 5]
    assert table.column(f"{other}:n.status").to_pylist() == ["NOT_FOUND", "PRESENT"]
    assert table.column(f"{group_name}:emb").type == pa.list_(pa.float32(), 4)
    assert table.column(f"{group_name}:emb").to_pylist() == [[1, 1, 1, 1], None]
    df = got.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 2
    assert df[f"{group_name}:clicks.event_time"][0] == pd.Timestamp(T0)


def frame(n: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + n)
    return pd.DataFrame(
        {
            "user": [f"u{i}" for i in ids],
            "ts": pd.to_datetime(T0_MS + ids * 1000, unit="ms", utc=True),
            "clicks": ids.astype(np.int64),
            "ctr": (ids / 10).astype(np.float64),
            "city": [None if i % 3 == 0 else f"c{i}" for i in ids],
            "emb": [np.full(4, i, dtype=np.float32) for i in ids],
            "tags": [[f"t{i}"] * (i % 3) for i in ids],
        }
    )


def test_put_many_from_dataframe_arrow_and_numpy(store, group_name):
    store.create_group(user_spec(group_name))
    df = frame(3000)
    summary = store.put_many(group_name, df, key="user", event_time="ts")
    assert summary.rows == 3000 and summary.skipped_stale == 0
    table = pa.Table.from_pandas(frame(500, start=3000), preserve_index=False)
    assert store.put_many(group_name, table, key="user", event_time="ts").rows == 500
    emb2d = np.arange(8, dtype=np.float32).reshape(2, 4)
    columns = {"user": ["v0", "v1"], "clicks": np.array([10, 11]), "emb": emb2d}
    assert store.put_many(group_name, columns, key="user", event_time_ms=T0, sync=True).rows == 2

    keys = ["u0", "u1", "u2999", "u3499", "v1", "zz"]
    refs = [f"{group_name}:{f}" for f in ("clicks", "ctr", "city", "emb", "tags")]
    got = store.get_online_features(refs, keys)
    assert got.values(refs[0]).tolist()[:5] == [0, 1, 2999, 3499, 11]
    assert list(got.statuses(refs[0])) == [0, 0, 0, 0, 0, Status.NOT_FOUND]
    assert got.values(refs[1])[2] == pytest.approx(299.9)
    # A null in the frame is a stored null.
    assert list(got.statuses(refs[2]))[:3] == [Status.NULL, Status.PRESENT, Status.PRESENT]
    assert got.values(refs[3])[3].tolist() == [3499.0] * 4
    assert got.values(refs[3])[4].tolist() == [4, 5, 6, 7]
    assert got.values(refs[4])[:3] == [[], ["t1"], ["t2999", "t2999"]]
    assert got.event_times_ms(refs[0])[2] == T0_MS + 2999 * 1000
    # Older rows do not overwrite newer ones.
    older = frame(10)
    older["ts"] = older["ts"] - pd.Timedelta(days=1)
    older["clicks"] = -1
    assert store.put_many(group_name, older, key="user", event_time="ts").skipped_stale > 0
    assert store.get_online_features(refs[:1], ["u5"]).values(refs[0])[0] == 5


def test_put_many_names_the_failing_row(store, group_name):
    store.create_group(user_spec(group_name))
    df = pd.DataFrame({"user": ["a", "b", "c"], "emb": [[1.0] * 4, [1.0] * 3, [1.0] * 4]})
    with pytest.raises(errors.TypeMismatchError, match="row 1"):
        store.put_many(group_name, df, key="user")
    bad = pd.DataFrame({"user": ["ok", "x" * 2000], "clicks": [1, 2]})
    with pytest.raises(errors.LimitExceededError, match="row 1"):
        store.put_many(group_name, bad, key="user")
    assert store.get_online_features([f"{group_name}:clicks"], ["ok"]).values(f"{group_name}:clicks")[0] == 1


def test_a_client_is_shared_by_threads(client, group_name):
    client.create_group(GroupSpec(name=group_name, key_type="i64", features=[Feature("v", quiver.I64)]))
    failures = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                key = t * 1000 + i
                client.put(group_name, key, {"v": key}, T0)
                got = client.get_online_features([f"{group_name}:v"], [key])
                assert got.values(f"{group_name}:v")[0] == key
        except Exception as e:  # pragma: no cover - reported below
            failures.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    keys = np.array([t * 1000 + 49 for t in range(8)], dtype=np.int64)
    assert client.get_online_features([f"{group_name}:v"], keys).values(f"{group_name}:v").tolist() == keys.tolist()


def test_as_of_and_history_reads(store, group_name):
    s = store
    s.create_group(GroupSpec(name=group_name, key_type="string", features=[Feature("p", quiver.F64)], history=dt.timedelta(days=3650)))
    for hours, price in [(0, 1.0), (2, 2.0), (4, 3.0)]:
        s.put(group_name, "x", {"p": price}, T0 + dt.timedelta(hours=hours))
    ref = f"{group_name}:p"
    got = s.get_as_of([ref], ["x", "x", "x"], [T0 + dt.timedelta(hours=h) for h in (1, 3, 5)])
    assert got.values(ref).tolist() == [1.0, 2.0, 3.0]
    assert got.event_times_ms(ref).tolist() == [T0_MS, T0_MS + 7_200_000, T0_MS + 14_400_000]
    before = s.get_as_of([ref], ["x"], T0 - dt.timedelta(hours=1))
    assert list(before.statuses(ref)) == [Status.NOT_FOUND]
    versions = s.history(group_name, "x", ["p"], T0, T0 + dt.timedelta(hours=3))
    assert [(v.event_time_ms, v.value) for v in versions] == [(T0_MS, 1.0), (T0_MS + 7_200_000, 2.0)]
    with pytest.raises(quiver.QuiverError):
        s.get_as_of([f"{group_name}_none:p"], ["x"], T0)


def test_history_max_versions_on_create_alter_and_describe(store, group_name):
    spec = GroupSpec(name=group_name, key_type="string", features=[Feature("p", quiver.F64)], history_max_versions=3)
    created = store.create_group(spec)
    assert (created.history_retention_s, created.history_max_versions) == (None, 3)
    altered = store.alter_group(group_name, history=dt.timedelta(days=30), history_max_versions=5)
    assert (altered.history_retention_s, altered.history_max_versions) == (30 * 86400, 5)
    assert store.describe_group(group_name) == altered
    assert store.alter_group(group_name, history_max_versions=None).history_max_versions is None
    with pytest.raises(errors.InvalidArgumentError, match="outside 1..=100000"):
        store.alter_group(group_name, history_max_versions=0)


def test_embedded_store_keeps_data_across_reopen(tmp_path):
    path = str(tmp_path / "keep.db")
    with quiver.open(path, size="64MiB") as s:
        s.create_group(GroupSpec(name="g", key_type="bytes", features=[Feature("v", quiver.STRING)]))
        s.put("g", b"\x01", {"v": "kept"}, T0, sync=True)
    with quiver.open(path, size="64MiB") as s:
        assert s.get_online_features(["g:v"], [b"\x01"]).values("g:v") == ["kept"]
    s.close()
    with pytest.raises(errors.ShuttingDownError):
        s.describe_group("g")


def test_connection_errors_are_typed():
    from conftest import free_port

    with pytest.raises(errors.QuiverConnectionError):
        quiver.connect(f"127.0.0.1:{free_port()}", connect_timeout=0.5)


def test_stats(client):
    s = client.stats()
    assert s["ops"]["get_many"]["count"] >= 0 and "engine" in s


def test_put_many_of_columns_holding_only_nulls(store, group_name):
    store.create_group(user_spec(group_name))
    columns = {"user": ["n1", "n2"], "emb": [None, None], "city": [None, None], "hist": [None, None], "ctr": [None, None]}
    assert store.put_many(group_name, columns, key="user", event_time_ms=T0).rows == 2
    refs = [f"{group_name}:{f}" for f in ("emb", "city", "hist", "ctr")]
    got = store.get_online_features(refs, ["n1", "n2"])
    for ref in refs:
        assert list(got.statuses(ref)) == [Status.NULL, Status.NULL], ref
