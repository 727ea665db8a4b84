"""Feast get_online_features latency: Feast over Quiver (one request for all views, and
Feast's per-view path) against Feast over Redis (Feast's own Redis store and redis-server),
and the Python SDK against the Rust client. Run by scripts/bench-feast.sh (which builds
everything in release mode); figures go to docs/BENCHMARKS.md.

Each case is measured in `--rounds` rounds; in a round the systems take turns call by call
(A, B, C, A, B, C, ..., `--calls` calls each after a warm-up), and the report gives per system
the median over rounds of p50 and p99 (latency of one whole get_online_features call, in
microseconds).

Each system's FeatureStore lives in a process of its own (`--cases five` and the one-view
cases), as a serving process holds one: Feast 0.67 keeps one process-wide cache of resolved
feature requests (`feast.utils._get_cached_request_context`) and clears it whenever a call
comes from a FeatureStore with another registry, so two stores called in turn in one process
would each re-resolve every request (rebuilding the feature views from the registry's
protobufs, ~7 ms for the 5-view request) and the figures would measure that, not the stores.
The call is timed inside the worker; the parent only says which call to make.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python" / "tests"))

from conftest import Quiverd, RedisServer  # noqa: E402
from feast_repo import FEATURES, VIEWS, feast_cli, frames, write_repo  # noqa: E402

WIDE = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Array, Float32, Float64
from feast.value_type import ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
wide = FeatureView(
    name="wide", entities=[user], ttl=timedelta(days=7),
    source=FileSource(name="wide", path="data/wide.parquet", timestamp_field="event_timestamp"),
    schema=[Field(name=f"f{i}", dtype=Float64) for i in range(10)]
    + [Field(name="embedding", dtype=Array(Float32), vector_length=128)],
)
'''


def pct(samples, q):
    return float(np.percentile(np.array(samples), q))


def measure(fn, calls):
    for _ in range(max(20, calls // 10)):
        fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def run_cases(cases, rounds, calls):
    """cases: {system: fn}, where fn() makes one call and returns its latency in us; returns
    {system: (p50, p99)}, medians over rounds. Within a round the systems take turns call by
    call (A, B, C, A, B, C, ...), so that on a shared machine each sees the same load; each
    round starts with a warm-up of every system."""
    got = {name: [] for name in cases}
    for _ in range(rounds):
        for fn in cases.values():
            for _ in range(max(20, calls // 10)):
                fn()
        samples = {name: [] for name in cases}
        for _ in range(calls):
            for name, fn in cases.items():
                samples[name].append(fn())
        for name, s in samples.items():
            got[name].append((pct(s, 50), pct(s, 99)))
    return {n: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for n, v in got.items()}


def _serve(conn, repo: str, one_round_trip):
    """A worker process: one FeatureStore over `repo`; answers ("case", name, features, rows)
    by keeping the case, ("call", name) by one timed get_online_features (latency in us)."""
    import warnings

    warnings.simplefilter("ignore")
    from feast import FeatureStore

    fs = FeatureStore(repo_path=repo)
    if one_round_trip is not None:
        fs.config.online_store.one_round_trip = one_round_trip
    cases = {}
    while True:
        msg = conn.recv()
        if msg[0] == "case":
            cases[msg[1]] = (msg[2], msg[3])
            fs.get_online_features(features=msg[2], entity_rows=msg[3])
            conn.send(None)
        elif msg[0] == "call":
            feats, rows = cases[msg[1]]
            t = time.perf_counter_ns()
            fs.get_online_features(features=feats, entity_rows=rows)
            conn.send((time.perf_counter_ns() - t) / 1000)
        else:
            return


class Worker:
    """A FeatureStore in a process of its own (see the module's doc)."""

    def __init__(self, repo: Path, one_round_trip=None):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(theirs, str(repo), one_round_trip), daemon=True)
        self.proc.start()

    def case(self, name, features, rows):
        self.conn.send(("case", name, features, rows))
        self.conn.recv()
        return lambda: self.call(name)

    def call(self, name):
        self.conn.send(("call", name))
        return self.conn.recv()

    def stop(self):
        if self.proc.is_alive():
            try:
                self.conn.send(("stop",))
            except OSError:
                pass
            self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


def wide_repo(base: Path, online_store, users: int):
    rng = np.random.default_rng(1)
    now = pd.Timestamp(dt.datetime.now(dt.timezone.utc))
    df = pd.DataFrame({"user_id": np.arange(users, dtype=np.int64), "event_timestamp": [now] * users})
    for i in range(10):
        df[f"f{i}"] = rng.random(users)
    df["embedding"] = [rng.random(128).astype(np.float32) for _ in range(users)]
    base.mkdir(parents=True)
    (base / "data").mkdir()
    lines = ["project: bench", "registry: data/registry.db", "provider: local", "entity_key_serialization_version: 3", "online_store:"]
    lines += [f"    {k}: {v}" for k, v in online_store.items()] + ["offline_store:", "    type: file"]
    (base / "feature_store.yaml").write_text("\n".join(lines) + "\n")
    (base / "features.py").write_text(WIDE)
    df.to_parquet(base / "data" / "wide.parquet")
    return base, df


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--entities", type=int, default=1000, help="entities written per entity type")
    ap.add_argument("--write-rows", type=int, default=1_000_000, help="rows of the DataFrame write test (0: skip it)")
    ap.add_argument("--only-writes", action="store_true", help="run only the DataFrame write test")
    ap.add_argument("--only-reads", action="store_true", help="skip the DataFrame write test")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--cases",
        default="one-view,five,sdk",
        help="read cases to run, comma-separated: one-view (issue 13), five (issue 21: 5 views), sdk (SDK against the Rust client)",
    )
    args = ap.parse_args()
    if args.only_writes:
        results = {"writes": write_bench(args)}
        print(json.dumps(results, indent=1))
        return

    only = set(args.cases.split(","))
    unknown = only - {"one-view", "five", "sdk"}
    if unknown:
        ap.error(f"--cases: unknown {sorted(unknown)} (one of one-view, five, sdk)")
    from feast import FeatureStore

    import quiver

    quiverd = Quiverd()
    redis = RedisServer()
    results = {}
    try:
        base = Path(tempfile.mkdtemp(prefix="bench-feast-"))
        stores = {
            "quiver": {"type": "quiver.feast.QuiverOnlineStore", "address": quiverd.addr},
            "redis": {"type": "redis", "connection_string": f"127.0.0.1:{redis.port}"},
        }
        rng = np.random.default_rng(3)

        workers = []
        try:
            if "one-view" in only:
                # Issue 13: one view of 10 doubles and a 128-float vector.
                rng = np.random.default_rng(3)
                wide = {}
                for name, cfg in stores.items():
                    path, df = wide_repo(base / f"wide-{name}", cfg, args.entities)
                    feast_cli(path, "apply")
                    FeatureStore(repo_path=str(path)).write_to_online_store("wide", df)
                    wide[name] = Worker(path)
                    workers.append(wide[name])
                feats = [f"wide:f{i}" for i in range(10)] + ["wide:embedding"]
                for n in (1, 100):
                    rows = [{"user_id": int(x)} for x in rng.choice(args.entities, n, replace=False)]
                    cases = {name: w.case(f"wide{n}", feats, rows) for name, w in wide.items()}
                    results[f"one view (10 f64 + f32[128]), {n} entities"] = run_cases(cases, args.rounds, args.calls)
                    print(json.dumps(results, indent=1), flush=True)

            if "five" in only:
                # Issue 21: 5 views over 2 entities.
                rng = np.random.default_rng(4)
                data = frames(drivers=args.entities, customers=args.entities, now=dt.datetime.now(dt.timezone.utc), vector_dim=128)
                paths = {}
                for name, cfg in stores.items():
                    path = write_repo(base / f"five-{name}", cfg, data, 128, prefs_ttl_hours=48)
                    feast_cli(path, "apply")
                    fs = FeatureStore(repo_path=str(path))
                    for v in VIEWS:
                        latest = data[v].sort_values("event_timestamp").groupby(list(data[v].columns[:1]), as_index=False).last()
                        fs.write_to_online_store(v, latest)
                    paths[name] = path
                five = {
                    "quiver, one request": Worker(paths["quiver"], one_round_trip=True),
                    "quiver, per view": Worker(paths["quiver"], one_round_trip=False),
                    "redis": Worker(paths["redis"]),
                }
                workers.extend(five.values())
                feats5 = [f for f in FEATURES if not f.startswith("conv_plus_spend")]
                for n in (1, 100):
                    ids = rng.choice(args.entities, n, replace=False)
                    rows = [{"driver_id": 1001 + int(i), "customer_id": f"c{int(i)}"} for i in ids]
                    cases = {name: w.case(f"five{n}", feats5, rows) for name, w in five.items()}
                    results[f"5 views over 2 entities, {n} entities"] = run_cases(cases, args.rounds, args.calls)
                    print(json.dumps(results, indent=1), flush=True)
        finally:
            for w in workers:
                w.stop()

        if "sdk" in only:
            rng = np.random.default_rng(5)
            # The SDK against the Rust client, A,B,A,B: `quiver bench` (Rust client, one
            # connection, closed loop, 4 s) loads its `bench` group (i64 keys, 10 f32 + f32[128])
            # and times batch gets of 100 entities; then the SDK times get_online_features of 100
            # entities on that group (`--calls` calls). Medians over rounds of each run's p50, p99.
            report = base / "rust-batch.json"
            quiver_cli = os.environ.get("QUIVER_BIN", str(REPO / "target" / "release" / "quiver"))
            records = 10_000
            c = quiver.connect(quiverd.addr)
            refs = [f"bench:f{i}" for i in range(10)] + ["bench:embedding"]
            picks = [rng.choice(records, 100, replace=False).astype(np.int64) for _ in range(64)]
            it = iter(range(10**9))
            rust_runs, sdk_runs = [], []
            for _ in range(args.rounds):
                subprocess.run(
                    [quiver_cli, "bench", "--target", f"quiverd:{quiverd.addr}", "--records", str(records),
                     "--workload", "batch-get", "--batch", "100", "--scalars", "10", "--vector-dim", "128",
                     "--connections", "1", "--warmup", "1s", "--duration", "4s", "--json", str(report)],
                    check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
                rust = json.loads(report.read_text())["latency_us"]
                rust_runs.append((rust["p50"], rust["p99"]))
                s = measure(lambda: c.get_online_features(refs, picks[next(it) % 64]), args.calls)
                sdk_runs.append((pct(s, 50), pct(s, 99)))
            med = lambda runs: (statistics.median(a for a, _ in runs), statistics.median(b for _, b in runs))  # noqa: E731
            results["batch get of 100 entities (10 f32 + f32[128]), one connection"] = {
                "rust client (quiver bench)": med(rust_runs),
                "python sdk": med(sdk_runs),
            }
            print(json.dumps(results, indent=1), flush=True)
    finally:
        quiverd.stop()
        redis.stop()
    if args.write_rows and not args.only_reads:
        results["writes"] = write_bench(args)
    finish(results, args)


def finish(results, args):
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print("\n| case | system | p50 us | p99 us |\n| --- | --- | --- | --- |")
    for case, systems in results.items():
        if case == "writes":
            continue
        for system, (p50, p99) in systems.items():
            print(f"| {case} | {system} | {p50:.0f} | {p99:.0f} |")


def write_bench(args):
    """Issue 13: writes of a DataFrame of `--write-rows` rows (i64 key, event time, 10 f32, a
    128-float vector) through the SDK's put_many, against `quiver load` of the same rows from a
    Parquet file (the CLI's bulk path), into a fresh group each run of a fresh memory quiverd;
    A,B,A,B,... over `--rounds` rounds. Reports rows/s per run and the median ratio."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import quiver
    from quiver.schema import Feature, GroupSpec

    n = args.write_rows
    rng = np.random.default_rng(5)
    now_ms = int(time.time() * 1000)
    vectors = rng.random((n, 128), dtype=np.float32)
    cols = {"key": np.arange(n, dtype=np.int64), "event_time": np.full(n, now_ms, dtype=np.int64)}
    for i in range(10):
        cols[f"f{i}"] = rng.random(n, dtype=np.float32)
    table = pa.table({**cols, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 128)})
    frame = pd.DataFrame(cols)
    frame["embedding"] = list(vectors)  # one numpy row per cell, as a DataFrame holds vectors
    tmp = Path(tempfile.mkdtemp(prefix="bench-writes-"))
    parquet = tmp / "rows.parquet"
    pq.write_table(table, parquet)
    quiver_cli = os.environ.get("QUIVER_BIN", str(REPO / "target" / "release" / "quiver"))
    features = [Feature(f"f{i}", "f32") for i in range(10)] + [Feature("embedding", "f32[128]")]
    runs = {"sdk put_many (DataFrame)": [], "quiver load (Parquet)": []}
    for r in range(args.rounds):
        for system in runs:
            server = Quiverd(size=f"{max(1, n * 1200 // 2**30 + 1)}GiB")
            try:
                c = quiver.connect(server.addr)
                c.create_group(GroupSpec(name="w", key_type="i64", features=features))
                t = time.perf_counter()
                if system.startswith("sdk"):
                    done = c.put_many("w", frame, key="key", event_time="event_time").rows
                else:
                    subprocess.run(
                        [quiver_cli, "--addr", server.addr, "load", "w", str(parquet), "--key-column", "key",
                         "--ts-column", "event_time"],
                        check=True, stdout=subprocess.DEVNULL,
                    )
                    done = n
                secs = time.perf_counter() - t
                last = c.get_online_features(["w:f0", "w:embedding"], [0, n - 1])
                assert done == n and (last["w:embedding"].statuses == 0).all(), "rows are missing"
                assert last["w:f0"].values.tolist() == frame["f0"].iloc[[0, n - 1]].tolist()
                c.close()
            finally:
                server.stop()
            runs[system].append(n / secs)
            print(f"writes round {r}: {system}: {n / secs:,.0f} rows/s ({secs:.2f} s)", flush=True)
    sdk, cli = (statistics.median(v) for v in runs.values())
    return {"rows": n, "rows_per_s": runs, "median_sdk": sdk, "median_cli": cli, "ratio": sdk / cli}


if __name__ == "__main__":
    main()
