"""The SDK against a cluster: a real etcd and three quiverd nodes on 127.0.0.1 (free ports),
started here and stopped after.

One test walks the whole surface, because a cluster takes seconds to form: groups created on
every node, bulk writes from a DataFrame and an Arrow table and single puts, keys routed to
every master (the map and each node's own counters agree), reads across groups of many
entities split by node, NOT_MASTER from a node asked directly, as-of and history reads, a
training set split by master, deletes. Then the master of the most keys is killed with
SIGKILL while a thread keeps writing through the shared client and a bulk write runs: the
writes block until a replica takes over (retried inside the client), a client that does not
retry gets a retryable typed error, and afterwards every acknowledged write reads back,
deleted keys stay deleted, and the map no longer names the dead node.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Dict, Iterator, List

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import quiver
from quiver import Feature, GroupSpec, Status, errors

from conftest import EtcdServer, Quiverd

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
ENTITIES = 2000
#: Lease TTL of the nodes, in seconds (the shortest quiverd accepts): failover takes about this.
LEASE_TTL_S = "2"


@pytest.fixture()
def cluster() -> Iterator[List[Quiverd]]:
    etcd = EtcdServer()
    nodes: List[Quiverd] = []
    try:
        for node_id in (1, 2, 3):
            nodes.append(
                Quiverd(
                    ["--cluster-etcd", etcd.url, "--node-id", str(node_id), "--lease-ttl-s", LEASE_TTL_S,
                     "--initial-nodes", "3", "--commit", "sync"],
                    size="128MiB",
                )
            )
        yield nodes
    finally:
        for n in nodes:
            n.stop()
        etcd.stop()


def wait_for_map(q: quiver.Client, nodes: int) -> Dict:
    """The map once it exists and every partition has a master among `nodes` nodes."""
    deadline = time.time() + 30
    while True:
        m = q.cluster_map()
        if m["version"] > 0 and len(set(m["masters"])) == nodes and len(m["nodes"]) == nodes:
            return m
        assert time.time() < deadline, f"no map over {nodes} nodes after 30 s: {m['version']}, {m['nodes']}"
        time.sleep(0.1)


def key(i: int) -> str:
    return f"user:{i}"


def test_cluster_routes_reads_and_writes_and_survives_a_master_kill(cluster):
    seeds = [n.addr for n in cluster]
    q = quiver.connect_cluster(seeds, timeout=10, retry_deadline=30)
    assert q.is_cluster and q.is_remote
    before = wait_for_map(q, 3)
    assert before["replication_factor"] == 2 and len(before["masters"]) == 4096

    # Groups go to every node: each node, asked directly, knows them.
    q.create_group(GroupSpec(name="profile", key_type="string",
                             features=[Feature("ctr", quiver.F32), Feature("city", quiver.STRING)],
                             history=dt.timedelta(days=3650)))
    q.create_group(GroupSpec(name="activity", key_type="string",
                             features=[Feature("clicks", quiver.I64), Feature("emb", quiver.vector(4))]))
    q.alter_group("activity", add_feature=Feature("score", quiver.F64))
    for n in cluster:
        with quiver.connect(n.addr) as direct:
            assert {"profile", "activity"} <= {g.name for g in direct.list_groups()}
            assert direct.describe_group("activity").feature("score").type == "f64"

    keys = [key(i) for i in range(ENTITIES)]
    ctr = np.arange(ENTITIES, dtype=np.float32) / 8
    df = pd.DataFrame({"id": keys, "ts": pd.Timestamp(T0), "ctr": ctr, "city": [f"c{i % 7}" for i in range(ENTITIES)]})
    assert q.put_many("profile", df, key="id", event_time="ts", sync=True).rows == ENTITIES
    emb = np.arange(ENTITIES * 4, dtype=np.float32).reshape(ENTITIES, 4)
    table = pa.table({"id": keys, "clicks": pa.array(range(ENTITIES), pa.int64()),
                      "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 4)})
    summary = q.put_many("activity", table, key="id", event_time_ms=T0_MS, sync=True)
    assert (summary.rows, summary.written) == (ENTITIES, 2 * ENTITIES)
    assert q.put("activity", key(0), {"score": 0.5}, T0, sync=True).written == 1

    # Keys were routed to every master, and each node wrote the keys it masters.
    masters = [q.master_of(k) for k in keys]
    per_node = {n: masters.count(n) for n in set(masters)}
    assert set(per_node) == {1, 2, 3} and min(per_node.values()) > ENTITIES // 6, per_node
    stats = q.stats()["nodes"]
    assert set(stats) == {1, 2, 3}
    for node, entry in stats.items():
        assert "stats" in entry, entry
        # Each node answered the puts of the keys it masters (two bulk writes), and holds
        # their rows plus the rows it keeps as a replica.
        puts = entry["stats"]["ops"]["put"]["count"]
        assert puts >= 2 * per_node[node], (node, puts, per_node)
        assert entry["stats"]["engine"]["records"] >= 2 * per_node[node], (node, entry["stats"]["engine"])

    # Reads across two groups of every entity (and one missing), split by node.
    refs = ["profile:ctr", "profile:city", "activity:clicks", "activity:emb", "activity:score"]
    got = q.get_online_features(refs, keys + ["nobody"])
    assert got.values("profile:ctr")[:ENTITIES].tolist() == ctr.tolist()
    assert list(got.values("profile:city")[:3]) == ["c0", "c1", "c2"]
    assert got.values("activity:clicks")[:ENTITIES].tolist() == list(range(ENTITIES))
    assert np.array_equal(got.values("activity:emb")[:ENTITIES], emb)
    assert got.statuses("activity:score")[0] == Status.PRESENT
    assert got.statuses("activity:score")[1] == Status.NOT_FOUND  # a feature never written
    assert got.statuses("profile:ctr")[ENTITIES] == Status.NOT_FOUND

    # With replica reads, a key's replica shares its reads and answers the acknowledged value.
    def reads_served(client):
        ops = {n: e["stats"]["ops"] for n, e in client.stats()["nodes"].items()}
        return {n: o["get"]["count"] + o["get_many"]["count"] for n, o in ops.items()}

    spread = quiver.connect_cluster(seeds, timeout=10, retry_deadline=30, replica_reads=True)
    before_reads = reads_served(spread)
    for _ in range(6):
        assert spread.get_online_features(["profile:ctr"], [keys[0]]).values("profile:ctr").tolist() == [ctr[0]]
    after_reads = reads_served(spread)
    helped = [n for n in after_reads if n != masters[0] and after_reads[n] > before_reads[n]]
    assert len(helped) == 1, (masters[0], before_reads, after_reads)
    again = spread.get_online_features(["profile:ctr", "activity:clicks"], keys)
    assert again.values("profile:ctr").tolist() == ctr.tolist()
    assert again.values("activity:clicks").tolist() == list(range(ENTITIES))
    spread.close()

    # A node asked directly for a key it does not master says so (the typed error).
    other = next(n for n in cluster if n.addr != dict(before["nodes"])[masters[0]])
    with quiver.connect(other.addr) as direct, pytest.raises(errors.NotMasterError) as e:
        direct.get_online_features(["profile:ctr"], [keys[0]])
    assert "map version" in str(e.value)

    # As-of and history reads go to the key's master.
    for i in range(0, 40):
        q.put("profile", keys[i], {"ctr": 1000.0 + i}, T0 + dt.timedelta(hours=2), sync=True)
    old = q.get_as_of(["profile:ctr"], keys[:40], T0 + dt.timedelta(hours=1))
    assert old.values("profile:ctr").tolist() == ctr[:40].tolist()
    new = q.get_as_of(["profile:ctr"], keys[:40], [T0 + dt.timedelta(hours=3)] * 40)
    assert new.values("profile:ctr").tolist() == [1000.0 + i for i in range(40)]
    versions = q.history("profile", keys[3], ["ctr"], T0, T0 + dt.timedelta(days=1))
    assert [(v.event_time_ms, v.value) for v in versions] == [(T0_MS, float(ctr[3])), (T0_MS + 7_200_000, 1003.0)]

    with pytest.raises(errors.NotSupportedError, match="feature_stats"):
        q.feature_stats("profile")

    # Deletes, routed.
    deleted = keys[100:130]
    assert all(q.delete("activity", k, sync=True) for k in deleted)
    assert not q.delete("activity", "nobody")

    # A training set is split by master: each node joins the rows whose keys it masters.
    spine_keys = keys[:300] + [None] + keys[:40]
    spine = pd.DataFrame({
        "id": spine_keys,
        "ts": [T0 + dt.timedelta(hours=1)] * 301 + [T0 + dt.timedelta(hours=3)] * 40,
    })
    t = q.training_set(spine, ["profile:ctr", "profile:city"], key_columns="id", timestamp_column="ts",
                       status_columns=True)
    assert t.column("ctr").to_pylist() == ctr[:300].tolist() + [None] + [1000.0 + i for i in range(40)]
    assert t.column("city").to_pylist()[:3] == ["c0", "c1", "c2"]
    assert t.column("ctr__status").to_pylist()[300] == "not_found"

    # Kill the master of the most keys with SIGKILL while a thread keeps writing through the
    # same client; its writes block while the partitions have no master and are retried.
    victim = max(per_node, key=per_node.get)
    victim_keys = [k for k, m in zip(keys, masters) if m == victim]
    acked: Dict[str, float] = {}
    stop = threading.Event()
    failures: List[BaseException] = []

    def writer() -> None:
        i = 0
        try:
            while not stop.is_set():
                k = victim_keys[i % len(victim_keys)]
                value = 5000.0 + i
                q.put("profile", k, {"ctr": value}, T0_MS + 4 * 3_600_000 + i, sync=True)
                acked[k] = value
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    cluster[victim - 1].kill()

    # A client that does not retry is refused, with a retryable typed error, until the map moves.
    once = quiver.connect_cluster([n.addr for n in cluster if n.proc.poll() is None], retry_deadline=0)
    refused = []
    for k in victim_keys[:20]:
        try:
            once.put("profile", k, {"city": "x"}, T0, sync=True)
        except (errors.UnavailableError, errors.NotMasterError, errors.QuiverConnectionError) as exc:
            refused.append(exc)
    once.close()
    assert refused, "writes to a dead master's partitions are refused while no replica took over"

    # Bulk writes through the failover (retried inside the client until a replica took over).
    kept = [i for i, k in enumerate(keys) if k not in deleted]
    update = pd.DataFrame({"id": [keys[i] for i in kept], "clicks": np.array(kept, dtype=np.int64) + 10_000})
    assert q.put_many("activity", update, key="id", event_time_ms=T0_MS + 1, sync=True).rows == len(kept)
    time.sleep(0.5)
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    assert failures == []
    assert len(acked) > 0

    after = wait_for_map(q, 2)
    assert after["version"] > before["version"]
    assert victim not in after["masters"] and all(victim not in r for r in after["replicas"])

    # Every acknowledged write reads back from the new masters; deleted keys stay deleted.
    got = q.get_online_features(["profile:ctr", "activity:clicks"], keys)
    values = got.values("profile:ctr").tolist()
    for i, k in enumerate(keys):
        if k in acked:
            want = acked[k]
        elif i < 40:
            want = 1000.0 + i
        else:
            want = float(ctr[i])
        assert values[i] == want, (k, values[i], want)
    clicks = got.values("activity:clicks")
    statuses = got.statuses("activity:clicks")
    for i, k in enumerate(keys):
        if k in deleted:
            assert statuses[i] == Status.NOT_FOUND, k
        else:
            assert statuses[i] == Status.PRESENT, k
            assert clicks[i] == i + 10_000, k
    assert set(q.stats()["nodes"]) == {node for node, _ in after["nodes"]}
    q.close()
