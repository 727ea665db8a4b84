"""HTTP get-online-features of 100 entities: quiverd's HTTP API against Feast's own Python
feature server (`feast serve`) over Redis, on the same data. Run by scripts/bench-http.sh,
which builds quiverd and the quiver CLI in release mode and installs wrk and Feast.

One feature view `wide` of project `bench` (10 doubles and a 128-float vector, 1,000 users):
Feast writes it into redis-server through its own Redis online store; the same rows go into
quiverd through its `/write-to-online-store`, into a group laid out as the Python package's
Feast store lays it out (`bench__wide`, Feast's entity keys and microsecond timestamps). Both
servers then answer the same request body, `{"features": ["wide:f0", ..., "wide:embedding"],
"entities": {"user_id": [100 ids]}}`, whose answers are compared first (same values and
statuses). wrk drives each server with `--connections` connections over `--threads`
threads for `--duration`, in rounds A, B, A, B...; the report gives per server the median
over rounds of requests/s and of p50 and p99 latency (wrk's, closed loop).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python" / "tests"))

from feast_repo import feast_cli  # noqa: E402

VIEW = '''
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
FEATURES = [f"wide:f{i}" for i in range(10)] + ["wide:embedding"]
DESCRIPTION = 'Feast feature view bench/wide; entity key {"join_keys":[["user_id","INT64"]],"version":3}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, what: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def post(port: int, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def frame(users: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    now = pd.Timestamp(dt.datetime.now(dt.timezone.utc)).floor("us")
    df = pd.DataFrame({"user_id": np.arange(users, dtype=np.int64), "event_timestamp": [now] * users})
    for i in range(10):
        df[f"f{i}"] = rng.random(users)
    df["embedding"] = [rng.random(128).astype(np.float32) for _ in range(users)]
    return df


def feast_repo(base: Path, redis_port: int, df: pd.DataFrame) -> Path:
    base.mkdir(parents=True)
    (base / "data").mkdir()
    (base / "feature_store.yaml").write_text(
        "project: bench\nregistry: data/registry.db\nprovider: local\nentity_key_serialization_version: 3\n"
        f"online_store:\n    type: redis\n    connection_string: 127.0.0.1:{redis_port}\n"
        "offline_store:\n    type: file\n"
    )
    (base / "features.py").write_text(VIEW)
    df.to_parquet(base / "data" / "wide.parquet")
    feast_cli(base, "apply")
    from feast import FeatureStore

    FeatureStore(repo_path=str(base)).write_to_online_store("wide", df)
    return base


def load_quiverd(quiver: str, addr: str, http: int, df: pd.DataFrame) -> None:
    features = [arg for i in range(10) for arg in ("--feature", f"f{i}:f64")]
    features += ["--feature", "embedding:f32[128]", "--feature", "feast_event_time_us:i64"]
    subprocess.run(
        [quiver, "--addr", addr, "group", "create", "bench__wide", "--key-type", "bytes", *features,
         "--ttl", "7d", "--allow-non-finite", "--tag", "feast", "--description", DESCRIPTION],
        check=True, stdout=subprocess.DEVNULL,
    )
    ts = [t.isoformat().replace("+00:00", "Z") for t in df["event_timestamp"]]
    for start in range(0, len(df), 200):
        part = slice(start, start + 200)
        cols = {"user_id": df["user_id"][part].tolist(), "event_timestamp": ts[part]}
        for i in range(10):
            cols[f"f{i}"] = df[f"f{i}"][part].tolist()
        cols["embedding"] = [v.tolist() for v in df["embedding"][part]]
        post(http, "/write-to-online-store", {"feature_view_name": "wide", "df": cols})


def same_answers(a: dict, b: dict) -> None:
    """The two servers' answers hold the same names, statuses, timestamps and values (floats
    compared as float32 where Feast widened them). Feast's feature server lists the features
    in an order of its own (it differs between processes), so columns are matched by name."""
    names_a, names_b = a["metadata"]["feature_names"], b["metadata"]["feature_names"]
    assert sorted(names_a) == sorted(names_b), (names_a, names_b)
    by_name = dict(zip(names_b, b["results"]))
    for name, ca in zip(names_a, a["results"]):
        cb = by_name[name]
        assert ca["statuses"] == cb["statuses"], name
        ta = [t.replace(".000000Z", "Z") for t in ca["event_timestamps"]]
        assert ta == cb["event_timestamps"], (name, ca["event_timestamps"][:2], cb["event_timestamps"][:2])
        va = np.asarray(ca["values"], dtype=np.float64)
        vb = np.asarray(cb["values"], dtype=np.float64)
        assert np.array_equal(va.astype(np.float32), vb.astype(np.float32)), f"values of {name} differ"


def wrk(port: int, body: Path, threads: int, connections: int, duration: str) -> dict:
    lua = body.with_suffix(".lua")
    lua.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"rps\\": %f, \\"p50\\": %d, \\"p99\\": %d, \\"errors\\": %d, \\"requests\\": %d}\\n",\n'
        "    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),\n"
        "    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,\n"
        "    summary.requests))\n"
        "end\n"
    )
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", duration, "--timeout", "10s", "-s", str(lua),
         f"http://127.0.0.1:{port}/get-online-features"],
        check=True, capture_output=True, text=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("JSON "))
    got = json.loads(line[5:])
    if got["errors"]:
        raise RuntimeError(f"wrk saw {got['errors']} errors:\n{out}")
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--entities", type=int, default=100)
    ap.add_argument("--feast-workers", type=int, default=2, help="feast serve --workers")
    ap.add_argument("--http-threads", type=int, default=2, help="quiverd --http-threads")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    quiverd_bin = os.environ.get("QUIVERD_BIN", str(REPO / "target" / "release" / "quiverd"))
    quiver_bin = os.environ.get("QUIVER_BIN", str(REPO / "target" / "release" / "quiver"))
    base = Path(tempfile.mkdtemp(prefix="bench-http-"))
    procs = []
    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_port(redis_port, procs[-1], "redis-server")
        listen, http = free_port(), free_port()
        env = dict(os.environ, QUIVER_LOG="warn")
        procs.append(subprocess.Popen(
            [quiverd_bin, "--memory", "--size", "1GiB", "--listen", f"127.0.0.1:{listen}",
             "--http", f"127.0.0.1:{http}", "--http-threads", str(args.http_threads)],
            stdout=subprocess.DEVNULL, env=env))
        wait_port(http, procs[-1], "quiverd")

        df = frame(args.users)
        repo = feast_repo(base / "repo", redis_port, df)
        load_quiverd(quiver_bin, f"127.0.0.1:{listen}", http, df)
        feast_port = free_port()
        fenv = dict(os.environ, FEAST_USAGE="False", PYTHONWARNINGS="ignore")
        procs.append(subprocess.Popen(
            [str(Path(sys.executable).with_name("feast")), "serve", "-h", "127.0.0.1", "-p", str(feast_port),
             "--workers", str(args.feast_workers), "--no-access-log", "--max-requests", "100000000"],
            cwd=repo, env=fenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(feast_port, procs[-1], "feast serve")

        rng = np.random.default_rng(7)
        ids = [int(x) for x in rng.choice(args.users, args.entities, replace=False)]
        request = {"features": FEATURES, "entities": {"user_id": ids}}
        body = base / "request.json"
        body.write_text(json.dumps(request))
        same_answers(post(http, "/get-online-features", request), post(feast_port, "/get-online-features", request))
        print(f"answers match for {args.entities} entities", flush=True)

        servers = {"quiverd --http": http, "feast serve (Redis)": feast_port}
        for port in servers.values():  # warm-up
            wrk(port, body, args.threads, args.connections, "2s")
        runs = {name: [] for name in servers}
        for r in range(args.rounds):
            for name, port in servers.items():
                got = wrk(port, body, args.threads, args.connections, args.duration)
                runs[name].append(got)
                print(f"round {r + 1} {name}: {got['rps']:.0f} req/s, p50 {got['p50'] / 1000:.2f} ms, p99 {got['p99'] / 1000:.2f} ms", flush=True)
        result = {
            name: {
                "rps": statistics.median(x["rps"] for x in v),
                "p50_ms": statistics.median(x["p50"] for x in v) / 1000,
                "p99_ms": statistics.median(x["p99"] for x in v) / 1000,
                "rounds": v,
            }
            for name, v in runs.items()
        }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(base, ignore_errors=True)
    q, f = result["quiverd --http"], result["feast serve (Redis)"]
    print(f"\n{args.entities} entities, {args.connections} connections, {args.rounds} rounds of {args.duration} (medians)")
    print("| server | req/s | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
    for name, v in result.items():
        print(f"| {name} | {v['rps']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |")
    print(f"quiverd / feast: {q['rps'] / f['rps']:.1f}x the requests/s, p99 {f['p99_ms'] / q['p99_ms']:.1f}x lower")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
