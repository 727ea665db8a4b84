"""The Feast online store, end to end with the real `feast` package: `feast apply`,
`feast materialize`, get_online_features (SDK and the Python feature server) over Quiver,
compared with Feast's own Redis online store on the same data (issue 13.2), and the
one-request read of every feature view (issue 21)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

import quiver
from quiver.feast.mapping import group_name

from conftest import free_port
from feast_repo import FEATURES, VIEWS, feast_cli, frames, write_repo

VECTOR_DIM = 8
PRESENT, NOT_FOUND = FieldStatus.PRESENT, FieldStatus.NOT_FOUND
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
START = (NOW - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
END = (NOW + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")

# Entities: some materialized, some unknown to every view, some known to one entity only.
ROWS = [
    {"driver_id": 1001, "customer_id": "c0"},
    {"driver_id": 1005, "customer_id": "c3"},
    {"driver_id": 1003, "customer_id": "nobody"},
    {"driver_id": 999999, "customer_id": "c1"},
    {"driver_id": 1005, "customer_id": "c3"},
    {"driver_id": 1012, "customer_id": "c9"},
]


@pytest.fixture(scope="module")
def data():
    return frames(drivers=20, customers=12, now=NOW, vector_dim=VECTOR_DIM)


@pytest.fixture(scope="module")
def repos(tmp_path_factory, quiverd, redis_server, data):
    """The same feature repo over quiverd and over redis-server, applied and materialized
    with the feast command line."""
    base = tmp_path_factory.mktemp("feast")
    q = write_repo(
        base / "quiver",
        {"type": "quiver.feast.QuiverOnlineStore", "address": quiverd.addr},
        data,
        VECTOR_DIM,
    )
    r = write_repo(
        base / "redis",
        {"type": "redis", "connection_string": f"127.0.0.1:{redis_server.port}"},
        data,
        VECTOR_DIM,
    )
    for repo in (q, r):
        feast_cli(repo, "apply")
        feast_cli(repo, "materialize", START, END)
    return q, r


def responses_equal(a, b, b_is_redis=False):
    """Feast responses equal value for value, status for status, timestamp for timestamp.

    Feast's Redis store answers an entity it has no row for as PRESENT with an empty value
    and a zero timestamp (its HMGET returns nils, which it turns into empty values); Quiver
    answers NOT_FOUND there, as Feast's serving API defines it. With ``b_is_redis`` that is
    the one difference allowed, and it must be exactly that."""
    assert list(a.proto.metadata.feature_names.val) == list(b.proto.metadata.feature_names.val)
    for name, ra, rb in zip(a.proto.metadata.feature_names.val, a.proto.results, b.proto.results):
        assert list(ra.values) == list(rb.values), name
        assert list(ra.event_timestamps) == list(rb.event_timestamps), name
        for i, (sa, sb) in enumerate(zip(ra.statuses, rb.statuses)):
            if sa != sb and b_is_redis:
                assert (sa, sb) == (NOT_FOUND, PRESENT), (name, i)
                assert ra.values[i].WhichOneof("val") is None and ra.event_timestamps[i].seconds == 0
            else:
                assert sa == sb, (name, i)


def test_apply_creates_one_group_per_view(repos, quiverd):
    c = quiver.connect(quiverd.addr)
    names = {g.name for g in c.list_groups(tag="feast")}
    for view in VIEWS:
        assert group_name("quiver_test", view) in names
    prefs = c.describe_group(group_name("quiver_test", "customer_prefs"))
    assert prefs.ttl_s == 24 * 3600 and prefs.key_type == "bytes"
    assert c.describe_group(group_name("quiver_test", "driver_profile")).feature("embedding").type == f"f32[{VECTOR_DIM}]"


@pytest.mark.parametrize("full_names", [False, True])
def test_materialized_values_equal_feast_over_redis(repos, full_names):
    q, r = (FeatureStore(repo_path=str(p)) for p in repos)
    got = q.get_online_features(features=FEATURES, entity_rows=ROWS, full_feature_names=full_names)
    want = r.get_online_features(features=FEATURES, entity_rows=ROWS, full_feature_names=full_names)
    responses_equal(got, want, b_is_redis=True)
    d = got.to_dict()
    key = "driver_stats__trips" if full_names else "trips"
    assert d[key][2] is not None and d[key][3] is None  # materialized / unknown driver
    service = q.get_feature_service("everything")
    responses_equal(
        q.get_online_features(features=service, entity_rows=ROWS),
        r.get_online_features(features=r.get_feature_service("everything"), entity_rows=ROWS),
        b_is_redis=True,
    )


def test_materialize_keeps_the_newest_row_per_entity(repos, data):
    q = FeatureStore(repo_path=str(repos[0]))
    got = q.get_online_features(features=["driver_stats:trips"], entity_rows=[{"driver_id": 1001}]).to_dict()
    stats = data["driver_stats"]
    newest = stats[stats.driver_id == 1001].sort_values("event_timestamp").iloc[-1]
    assert got["trips"] == [int(newest.trips)]


def test_get_online_features_returns_exactly_the_materialized_rows(repos, data):
    """Every entity's every feature (of the views on plain columns) equals the newest source
    row `feast materialize` read, value for value, and an unknown entity reads as nothing."""
    q = FeatureStore(repo_path=str(repos[0]))
    checks = {
        "driver_id": ["driver_stats", "driver_profile", "driver_extra"],
        "customer_id": ["customer_stats", "customer_prefs"],
    }
    for join_key, views in checks.items():
        newest = {
            v: data[v].sort_values("event_timestamp").groupby(join_key, sort=False).tail(1).set_index(join_key)
            for v in views
        }
        ids = list(newest[views[0]].index)
        unknown = 999_999 if join_key == "driver_id" else "nobody"
        entity_ids = [x.item() if hasattr(x, "item") else x for x in ids] + [unknown]
        refs = [f for f in FEATURES if f.split(":")[0] in views]
        got = q.get_online_features(
            features=refs, entity_rows=[{join_key: e} for e in entity_ids], full_feature_names=True
        ).to_dict()
        compared = 0
        for ref in refs:
            view, name = ref.split(":")
            column = got[f"{view}__{name}"]
            assert column[-1] is None, (ref, column[-1])
            for i, e in enumerate(ids):
                want = newest[view].loc[e, name]
                if want is None or (np.isscalar(want) and pd.isna(want)):
                    assert column[i] is None, (ref, e, column[i])
                elif isinstance(column[i], dt.datetime):  # a UnixTimestamp feature, in seconds
                    assert int(column[i].timestamp()) == int(want), (ref, e, column[i], want)
                elif isinstance(want, (np.ndarray, list)):
                    assert list(column[i]) == [x.item() if hasattr(x, "item") else x for x in want], (ref, e)
                elif isinstance(want, np.floating):
                    assert column[i] == float(want), (ref, e, column[i], want)
                elif isinstance(want, np.integer):
                    assert column[i] == int(want), (ref, e, column[i], want)
                else:
                    assert column[i] == want, (ref, e, column[i], want)
                compared += 1
        assert compared == len(refs) * len(ids)


def _post(port: int, body: dict) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/get-online-features",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _serve(repo: Path):
    port = free_port()
    exe = Path(sys.executable).with_name("feast")
    proc = subprocess.Popen(
        [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, FEAST_USAGE="False"),
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("feast serve exited")
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("feast serve did not answer /health")


def test_python_feature_server_serves_the_same(repos):
    body = {
        "features": FEATURES,
        "entities": {k: [row[k] for row in ROWS] for k in ("driver_id", "customer_id")},
        "full_feature_names": True,
    }
    answers = []
    for repo in repos:
        proc, port = _serve(repo)
        try:
            answers.append(_post(port, body))
        finally:
            proc.terminate()
            proc.wait(20)
    # The server lists features in an order of its own (it differs between processes).
    got, want = ({n: r for n, r in zip(a["metadata"]["feature_names"], a["results"])} for a in answers)
    assert sorted(got) == sorted(want) and len(got) == len(FEATURES) + 2
    for name in got:
        g, w = got[name], want[name]
        assert g["values"] == w["values"]
        assert g["event_timestamps"] == w["event_timestamps"]
        # Redis's PRESENT-for-a-missing-entity, as in responses_equal.
        for i, (sg, sw) in enumerate(zip(g["statuses"], w["statuses"])):
            assert sg == sw or (sg, sw, g["values"][i]) == ("NOT_FOUND", "PRESENT", None)
    assert got["driver_stats__trips"]["statuses"][2:4] == ["PRESENT", "NOT_FOUND"]


def test_a_view_removed_on_apply_drops_its_group(tmp_path, quiverd, data):
    repo = write_repo(
        tmp_path / "dropping",
        {"type": "quiver.feast.QuiverOnlineStore", "address": quiverd.addr},
        data,
        VECTOR_DIM,
    )
    (repo / "feature_store.yaml").write_text((repo / "feature_store.yaml").read_text().replace("quiver_test", "dropping"))
    feast_cli(repo, "apply")
    c = quiver.connect(quiverd.addr)
    gone = group_name("dropping", "driver_extra")
    assert gone in {g.name for g in c.list_groups()}
    write_repo(tmp_path / "dropping", {"type": "quiver.feast.QuiverOnlineStore", "address": quiverd.addr}, data, VECTOR_DIM, drop_views=["driver_extra"])
    (repo / "feature_store.yaml").write_text((repo / "feature_store.yaml").read_text().replace("quiver_test", "dropping"))
    feast_cli(repo, "apply")
    names = {g.name for g in c.list_groups()}
    assert gone not in names
    assert group_name("dropping", "driver_stats") in names


# -- issue 21: every feature view of a request in one Quiver request ------------------------


@pytest.fixture(scope="module")
def edge_store(repos):
    """The Quiver repo with extra rows written through Feast: nulls, a value older than its
    view's TTL (1 day for customer_prefs) and entities known to one view only."""
    store = FeatureStore(repo_path=str(repos[0]))
    import pandas as pd

    old = pd.Timestamp(NOW - dt.timedelta(days=2))
    store.write_to_online_store(
        "customer_prefs",
        pd.DataFrame({"customer_id": ["expired"], "event_timestamp": [old], "segment": ["old"], "flags": [[True]]}),
    )
    store.write_to_online_store(
        "driver_stats",
        pd.DataFrame(
            {
                "driver_id": [5000],
                "event_timestamp": [pd.Timestamp(NOW)],
                "conv_rate": [None],
                "acc_rate": [None],
                "trips": [7],
                "rating": [None],
            }
        ),
    )
    return store


EDGE_ROWS = ROWS + [
    {"driver_id": 5000, "customer_id": "expired"},
    {"driver_id": 1002, "customer_id": "expired"},
]


def _both_paths(store, features, rows, full):
    cfg = store.config.online_store
    cfg.one_round_trip = True
    one = store.get_online_features(features=features, entity_rows=rows, full_feature_names=full)
    cfg.one_round_trip = False
    try:
        per_view = store.get_online_features(features=features, entity_rows=rows, full_feature_names=full)
    finally:
        cfg.one_round_trip = True
    return one, per_view


@pytest.mark.parametrize("full_names", [False, True])
def test_one_request_answers_exactly_as_the_per_view_path(edge_store, full_names):
    one, per_view = _both_paths(edge_store, FEATURES, EDGE_ROWS, full_names)
    responses_equal(one, per_view)
    d = one.to_dict()
    seg = "customer_prefs__segment" if full_names else "segment"
    trips = "driver_stats__trips" if full_names else "trips"
    conv = "driver_stats__conv_rate" if full_names else "conv_rate"
    assert d[seg][-1] is None  # older than the view's TTL: not served stale
    assert d[trips][-2] == 7 and d[conv][-2] is None  # a stored null
    # Columns instead of rows, and a feature service.
    columns = {k: [r[k] for r in EDGE_ROWS] for k in ("driver_id", "customer_id")}
    responses_equal(*_both_paths(edge_store, FEATURES, columns, full_names))
    service = edge_store.get_feature_service("everything")
    responses_equal(*_both_paths(edge_store, service, EDGE_ROWS, full_names))


def test_async_path_answers_the_same(edge_store):
    from quiver.feast import request

    sync = edge_store.get_online_features(features=FEATURES, entity_rows=EDGE_ROWS)
    got = asyncio.run(edge_store.get_online_features_async(features=FEATURES, entity_rows=EDGE_ROWS))
    responses_equal(got, sync)
    # Without an on-demand view, the async call takes the compiled request too.
    request._plans.clear()
    plain = [f for f in FEATURES if not f.startswith("conv_plus_spend")]
    got = asyncio.run(edge_store.get_online_features_async(features=plain, entity_rows=EDGE_ROWS))
    assert len(request._plans) == 1, "the async call compiled the request's plan"
    cfg = edge_store.config.online_store
    cfg.one_round_trip = False
    try:
        per_view = edge_store.get_online_features(features=plain, entity_rows=EDGE_ROWS)
    finally:
        cfg.one_round_trip = True
    responses_equal(got, per_view)


# -- the compiled request (quiver.feast.request): no on-demand view in the request ---------

PLAIN = [f for f in FEATURES if not f.startswith("conv_plus_spend")]


def _compiled(store, features, rows, full):
    """Both paths, and how many compiled plans the one request made (0: Feast's path)."""
    from quiver.feast import request

    request._plans.clear()
    one, per_view = _both_paths(store, features, rows, full)
    return one, per_view, len(request._plans)


@pytest.mark.parametrize("full_names", [False, True])
def test_compiled_request_answers_exactly_as_the_per_view_path(edge_store, full_names):
    shapes = [
        EDGE_ROWS,
        EDGE_ROWS[:1],
        EDGE_ROWS[-1:],
        {k: [r[k] for r in EDGE_ROWS] for k in ("customer_id", "driver_id")},
        {k: tuple(r[k] for r in EDGE_ROWS) for k in ("driver_id", "customer_id")},
    ]
    for rows in shapes:
        for features in (PLAIN, ["customer_prefs:segment", "driver_stats:trips"], ["driver_profile:embedding"]):
            one, per_view, plans = _compiled(edge_store, features, rows, full_names)
            responses_equal(one, per_view)
            assert plans == 1, (features, rows)
    # Only the entity a view needs; a feature service without an on-demand view.
    drivers = [{"driver_id": 5000}, {"driver_id": 1001}, {"driver_id": 424242}]
    one, per_view, plans = _compiled(edge_store, ["driver_stats:trips", "driver_extra:photo"], drivers, full_names)
    responses_equal(one, per_view)
    assert plans == 1 and one.to_dict()["driver_stats__trips" if full_names else "trips"][0] == 7
    service = edge_store.get_feature_service("plain")
    one, per_view, plans = _compiled(edge_store, service, EDGE_ROWS, full_names)
    responses_equal(one, per_view)
    assert plans == 1
    # Values the plan does not convert itself (numpy integers) take Feast's path: same answer.
    rows = [{"driver_id": np.int64(1001), "customer_id": "c0"}]
    responses_equal(*_compiled(edge_store, PLAIN, rows, full_names)[:2])
    # Errors stay Feast's: a missing join key, ragged columns.
    for bad in ([{"driver_id": 1001}], {"driver_id": [1001, 1002], "customer_id": ["c0"]}):
        with pytest.raises(Exception) as fast:
            edge_store.get_online_features(features=PLAIN, entity_rows=bad)
        edge_store.config.online_store.one_round_trip = False
        try:
            with pytest.raises(type(fast.value)):
                edge_store.get_online_features(features=PLAIN, entity_rows=bad)
        finally:
            edge_store.config.online_store.one_round_trip = True


def test_a_compiled_request_follows_feast_apply(tmp_path, quiverd, data):
    """A plan belongs to the registry it was compiled from: after `feast apply` removes a view
    and the store refreshes its registry, a request for that view fails as Feast's own path
    does (no stale plan answers), and the views left are read by a new plan."""
    online = {"type": "quiver.feast.QuiverOnlineStore", "address": quiverd.addr}
    repo = write_repo(tmp_path / "replan", online, data, VECTOR_DIM)
    (repo / "feature_store.yaml").write_text((repo / "feature_store.yaml").read_text().replace("quiver_test", "replan"))
    feast_cli(repo, "apply")
    store = FeatureStore(repo_path=str(repo))
    for view in ("driver_stats", "driver_extra"):
        store.write_to_online_store(view, data[view].sort_values("event_timestamp").drop_duplicates(data[view].columns[0], keep="last"))
    feats = ["driver_stats:trips", "driver_extra:photo"]
    one, per_view, plans = _compiled(store, feats, ROWS, False)
    responses_equal(one, per_view)
    assert plans == 1
    write_repo(tmp_path / "replan", online, data, VECTOR_DIM, drop_views=["driver_extra"])
    (repo / "feature_store.yaml").write_text((repo / "feature_store.yaml").read_text().replace("quiver_test", "replan"))
    feast_cli(repo, "apply")
    store.refresh_registry()
    with pytest.raises(Exception) as fast:
        store.get_online_features(features=feats, entity_rows=ROWS)
    store.config.online_store.one_round_trip = False
    try:
        with pytest.raises(type(fast.value)):
            store.get_online_features(features=feats, entity_rows=ROWS)
    finally:
        store.config.online_store.one_round_trip = True
    from quiver.feast import request

    before = set(request._plans)
    responses_equal(*_both_paths(store, ["driver_stats:trips"], ROWS, False))
    assert len(set(request._plans) - before) == 1


def _requests(c: quiver.Client):
    ops = c.stats()["ops"]
    return {name: v["count"] for name, v in ops.items() if name != "stats"}


def test_one_quiver_request_per_get_online_features(edge_store, quiverd):
    c = quiver.connect(quiverd.addr)
    edge_store.get_online_features(features=FEATURES, entity_rows=EDGE_ROWS)  # schemas cached
    before = _requests(c)
    edge_store.get_online_features(features=FEATURES, entity_rows=EDGE_ROWS)
    after = _requests(c)
    delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert delta == {"get_many": 1}
    # The compiled request (no on-demand view) too.
    edge_store.get_online_features(features=PLAIN, entity_rows=EDGE_ROWS)
    mid = _requests(c)
    edge_store.get_online_features(features=PLAIN, entity_rows=EDGE_ROWS)
    after = _requests(c)
    delta = {k: after[k] - mid[k] for k in after if after[k] != mid[k]}
    assert delta == {"get_many": 1}
    asyncio.run(edge_store.get_online_features_async(features=FEATURES, entity_rows=EDGE_ROWS))
    delta = {k: v - after[k] for k, v in _requests(c).items() if v != after[k]}
    assert delta == {"get_many": 1}
    # The per-view path, for contrast: one request per feature view.
    _both_paths(edge_store, FEATURES, EDGE_ROWS, False)
    final = _requests(c)
    assert final["get_many"] - after["get_many"] - 1 == 1 + len(VIEWS)


def test_past_the_servers_limits_the_answers_stay_the_same(tmp_path, data, caplog):
    """A quiverd taking 5 features per request and 3 keys per batch: a request for every view
    (21 references) falls back to the per-view path, saying so once; keys beyond the batch
    limit go in pipelined requests. Answers are unchanged."""
    from conftest import Quiverd

    small = Quiverd(["--max-features-per-request", "5", "--max-batch-keys", "3"])
    try:
        repo = write_repo(tmp_path / "limits", {"type": "quiver.feast.QuiverOnlineStore", "address": small.addr}, data, VECTOR_DIM)
        feast_cli(repo, "apply")
        store = FeatureStore(repo_path=str(repo))
        for view in VIEWS:
            store.write_to_online_store(view, data[view].sort_values("event_timestamp").drop_duplicates(data[view].columns[0], keep="last"))
        caplog.set_level("WARNING", logger="quiver.feast.online_store")
        one, per_view = _both_paths(store, FEATURES, EDGE_ROWS, False)
        responses_equal(one, per_view)
        one_again, _ = _both_paths(store, FEATURES, EDGE_ROWS, False)
        responses_equal(one_again, per_view)
        said = [r for r in caplog.records if "one feature view at a time" in r.getMessage()]
        assert len(said) == 1
        assert one.to_dict()["trips"][0] is not None
    finally:
        small.stop()


# -- the response written as protobuf bytes (quiver.feast.response) ------------------------


def test_entity_keys_are_feasts_own_bytes():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from quiver.feast.response import entity_keys

    columns = {
        "user": [Value(int64_val=v) for v in (0, -1, 2**62, 7)],
        "name": [Value(string_val=v) for v in ("", "ü", "a" * 300, "x")],
        "code": [Value(int32_val=v) for v in (-5, 0, 2**31 - 1, 1)],
        "blob": [Value(bytes_val=v) for v in (b"", b"\x00\xff", b"k", b"z" * 200)],
        "at": [Value(unix_timestamp_val=v) for v in (0, 1_700_000_000, -3, 5)],
    }

    def feast(names):
        return [
            serialize_entity_key(EntityKey(join_keys=names, entity_values=[columns[k][r] for k in names]), entity_key_serialization_version=3)
            for r in range(4)
        ]

    for names in (["user"], ["name"], ["code"], ["blob"], ["at"], ["user", "name"], ["name", "user", "at"], ["blob", "code"]):
        assert entity_keys({k: columns[k] for k in names}, 3) == feast(names), names
    # A type Feast refuses as a key is refused alike.
    with pytest.raises(ValueError):
        entity_keys({"x": [Value(double_val=1.0)]}, 3)


def test_response_bytes_equal_feasts_own_conversion(tmp_path):
    """Every type the store maps, stored nulls, missing and expired values, entities repeated
    and in any order: the response bytes the native get writes (``Handle.get_feast``, through
    ``_read_features_per_fv``) parse to the same response as Feast's
    _populate_response_from_feature_data over online_read's rows, over an embedded store."""
    from types import SimpleNamespace

    from feast import Entity, FeatureView, Field, FileSource
    from feast import utils
    from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import (
        DoubleList, FloatList, Int32List, Int64List, StringList, Value,
    )
    from feast.types import Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp
    from feast.value_type import ValueType

    from quiver.feast import QuiverOnlineStore, QuiverOnlineStoreConfig

    fields = [
        Field(name="f32", dtype=Float32), Field(name="f64", dtype=Float64), Field(name="i64", dtype=Int64),
        Field(name="i32", dtype=Int32), Field(name="ts", dtype=UnixTimestamp), Field(name="s", dtype=String),
        Field(name="b", dtype=Bytes), Field(name="ok", dtype=Bool), Field(name="vec", dtype=Array(Float32), vector_length=3),
        Field(name="fl", dtype=Array(Float32)), Field(name="il", dtype=Array(Int64)), Field(name="i32l", dtype=Array(Int32)),
        Field(name="sl", dtype=Array(String)), Field(name="dl", dtype=Array(Float64)), Field(name="Odd Name", dtype=Int64),
    ]
    entity = Entity(name="e", join_keys=["e"], value_type=ValueType.INT64)
    view = FeatureView(
        name="v", entities=[entity], schema=fields + [Field(name="e", dtype=Int64)], ttl=dt.timedelta(days=1),
        source=FileSource(path="x.parquet", timestamp_field="t"),
    )
    config = SimpleNamespace(
        project="p", entity_key_serialization_version=3,
        online_store=QuiverOnlineStoreConfig(path=str(tmp_path / "online.db"), size="64MiB"),
    )
    store = QuiverOnlineStore()
    store.update(config, [], [view], [], [entity], False)
    full_row = {
        "f32": Value(float_val=-2.25), "f64": Value(double_val=1e300), "i64": Value(int64_val=-(2**63)),
        "i32": Value(int32_val=-(2**31)), "ts": Value(unix_timestamp_val=1_700_000_000), "s": Value(string_val="ü" * 70),
        "b": Value(bytes_val=b"y" * 130), "ok": Value(bool_val=False), "vec": Value(float_list_val=FloatList(val=[1, -0.5, 9])),
        "fl": Value(float_list_val=FloatList(val=[1, 2, 3])), "il": Value(int64_list_val=Int64List(val=[-1, 0, 2**40])),
        "i32l": Value(int32_list_val=Int32List(val=[-7])), "sl": Value(string_list_val=StringList(val=["a", "ü", ""])),
        "dl": Value(double_list_val=DoubleList(val=[1.0, 2.5])),
    }
    empty_lists = {
        "f64": Value(double_val=-0.0), "i64": Value(int64_val=0), "s": Value(string_val=""), "b": Value(bytes_val=b""),
        "ok": Value(bool_val=True), "fl": Value(float_list_val=FloatList(val=[])), "il": Value(int64_list_val=Int64List(val=[])),
        "sl": Value(string_list_val=StringList(val=[])), "dl": Value(),
    }
    nulls = {name: Value() for name in full_row}
    now = dt.datetime.now(dt.timezone.utc)
    key = lambda e: EntityKey(join_keys=["e"], entity_values=[Value(int64_val=e)])  # noqa: E731
    store.online_write_batch(config, view, [
        (key(1), full_row, now.replace(microsecond=123456), None),
        (key(2), empty_lists, now - dt.timedelta(seconds=1, microseconds=1), None),
        (key(3), nulls, now, None),
        (key(4), full_row, now - dt.timedelta(days=2), None),  # older than the view's TTL
    ], None)
    ids = [2, 1, 99, 3, 4, 1, 2]
    join_key_values = {"e": [Value(int64_val=e) for e in ids]}
    for requested in (None, ["s", "vec", "f64"], ["Odd Name"], ["dl", "i32l"]):
        names = requested or [f.name for f in fields]
        for full in (False, True):
            want = GetOnlineFeaturesResponse()
            rows = store.online_read(config, view, [key(e) for e in ids], names)
            utils._populate_response_from_feature_data(names, rows, [[i] for i in range(len(ids))], want, full, view, len(ids))
            mine = GetOnlineFeaturesResponse()
            store._read_features_per_fv(config, [(view, names)], join_key_values, {"e": "e"}, mine, full, False)
            assert mine == want, (requested, full)
            assert len(mine.results) == len(names)
