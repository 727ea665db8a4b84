"""A Feast feature repository written to a directory: 5 feature views over 2 entities (driver
by int64 id, customer by string id), one on-demand view over two of them, a feature service,
Parquet sources. Shared by the Feast tests and scripts/bench-feast.py.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

DEFINITIONS = '''
from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp
from feast.value_type import ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)


def source(name):
    return FileSource(name=name, path="data/" + name + ".parquet", timestamp_field="event_timestamp")


driver_stats = FeatureView(
    name="driver_stats", entities=[driver], ttl=timedelta(days=7), source=source("driver_stats"),
    schema=[Field(name="conv_rate", dtype=Float32), Field(name="acc_rate", dtype=Float64),
            Field(name="trips", dtype=Int64), Field(name="rating", dtype=Int32)],
)
driver_profile = FeatureView(
    name="driver_profile", entities=[driver], ttl=timedelta(days=7), source=source("driver_profile"),
    schema=[Field(name="name", dtype=String), Field(name="active", dtype=Bool),
            Field(name="tags", dtype=Array(String)),
            Field(name="embedding", dtype=Array(Float32), vector_length=VECTOR_DIM)],
)
driver_extra = FeatureView(
    name="driver_extra", entities=[driver], ttl=timedelta(days=7), source=source("driver_extra"),
    schema=[Field(name="scores", dtype=Array(Float64)), Field(name="photo", dtype=Bytes),
            Field(name="signup", dtype=UnixTimestamp), Field(name="ids", dtype=Array(Int64))],
)
customer_stats = FeatureView(
    name="customer_stats", entities=[customer], ttl=timedelta(days=7), source=source("customer_stats"),
    schema=[Field(name="spend", dtype=Float64), Field(name="orders", dtype=Int64)],
)
customer_prefs = FeatureView(
    name="customer_prefs", entities=[customer], ttl=timedelta(hours=PREFS_TTL_HOURS), source=source("customer_prefs"),
    schema=[Field(name="segment", dtype=String), Field(name="flags", dtype=Array(Bool))],
)


@on_demand_feature_view(
    sources=[driver_stats, customer_stats],
    schema=[Field(name="conv_plus_spend", dtype=Float64)],
)
def conv_plus_spend(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_plus_spend"] = inputs["conv_rate"].astype("float64") + inputs["spend"]
    return out


everything = FeatureService(
    name="everything",
    features=[driver_stats, driver_profile, driver_extra, customer_stats, customer_prefs, conv_plus_spend],
)
plain = FeatureService(name="plain", features=[driver_stats, customer_prefs[["segment"]]])
'''

VIEWS = ["driver_stats", "driver_profile", "driver_extra", "customer_stats", "customer_prefs"]

FEATURES = [
    "driver_stats:conv_rate",
    "driver_stats:acc_rate",
    "driver_stats:trips",
    "driver_stats:rating",
    "driver_profile:name",
    "driver_profile:active",
    "driver_profile:tags",
    "driver_profile:embedding",
    "driver_extra:scores",
    "driver_extra:photo",
    "driver_extra:signup",
    "driver_extra:ids",
    "customer_stats:spend",
    "customer_stats:orders",
    "customer_prefs:segment",
    "customer_prefs:flags",
    "conv_plus_spend:conv_plus_spend",
]


def yaml(online_store: Dict[str, object], project: str = "quiver_test") -> str:
    lines = [f"project: {project}", "registry: data/registry.db", "provider: local", "entity_key_serialization_version: 3"]
    lines.append("online_store:")
    lines += [f"    {k}: {v}" for k, v in online_store.items()]
    lines += ["offline_store:", "    type: file"]
    return "\n".join(lines) + "\n"


def frames(drivers: int, customers: int, now: dt.datetime, vector_dim: int, seed: int = 7) -> Dict[str, pd.DataFrame]:
    """Source data: per entity two rows (an older one materialization must not keep), some
    nulls, and timestamps with microseconds."""
    rng = np.random.default_rng(seed)
    out = {}

    def times(n, hours_ago):
        base = pd.Timestamp(now - dt.timedelta(hours=hours_ago)).tz_convert("UTC")
        return [base + pd.Timedelta(microseconds=int(x)) for x in rng.integers(0, 10**9, n)]

    d_ids = np.arange(1001, 1001 + drivers, dtype=np.int64)
    c_ids = [f"c{i}" for i in range(customers)]
    rows: Dict[str, List[pd.DataFrame]] = {v: [] for v in VIEWS}
    for hours_ago in (30, 3):
        n = drivers
        rows["driver_stats"].append(
            pd.DataFrame(
                {
                    "driver_id": d_ids,
                    "event_timestamp": times(n, hours_ago),
                    "conv_rate": rng.random(n).astype(np.float32),
                    "acc_rate": [None if i % 7 == 3 else float(x) for i, x in enumerate(rng.random(n))],
                    "trips": rng.integers(0, 1000, n),
                    "rating": rng.integers(1, 6, n).astype(np.int32),
                }
            )
        )
        rows["driver_profile"].append(
            pd.DataFrame(
                {
                    "driver_id": d_ids,
                    "event_timestamp": times(n, hours_ago),
                    "name": [None if i % 11 == 5 else f"driver {i} ü" for i in range(n)],
                    "active": rng.random(n) > 0.5,
                    "tags": [[f"t{j}" for j in range(i % 4)] for i in range(n)],
                    "embedding": [rng.random(vector_dim).astype(np.float32) for _ in range(n)],
                }
            )
        )
        rows["driver_extra"].append(
            pd.DataFrame(
                {
                    "driver_id": d_ids,
                    "event_timestamp": times(n, hours_ago),
                    "scores": [rng.random(3).tolist() for _ in range(n)],
                    "photo": [bytes([i % 256, 0, 255]) for i in range(n)],
                    "signup": rng.integers(1_500_000_000, 1_700_000_000, n),
                    "ids": [list(range(i % 5)) for i in range(n)],
                }
            )
        )
        m = customers
        rows["customer_stats"].append(
            pd.DataFrame(
                {
                    "customer_id": c_ids,
                    "event_timestamp": times(m, hours_ago),
                    "spend": rng.random(m) * 100,
                    "orders": rng.integers(0, 50, m),
                }
            )
        )
        rows["customer_prefs"].append(
            pd.DataFrame(
                {
                    "customer_id": c_ids,
                    "event_timestamp": times(m, hours_ago / 10),
                    "segment": [f"s{i % 3}" for i in range(m)],
                    "flags": [[bool(i % 2), True] for i in range(m)],
                }
            )
        )
    for v in VIEWS:
        out[v] = pd.concat(rows[v], ignore_index=True)
    return out


def write_repo(
    path: Path,
    online_store: Dict[str, object],
    data: Dict[str, pd.DataFrame],
    vector_dim: int,
    prefs_ttl_hours: int = 24,
    drop_views: Optional[List[str]] = None,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    (path / "feature_store.yaml").write_text(yaml(online_store))
    text = DEFINITIONS.replace("VECTOR_DIM", str(vector_dim)).replace("PREFS_TTL_HOURS", str(prefs_ttl_hours))
    for v in drop_views or []:
        text = text.replace(f"\n{v} = FeatureView(", f"\n_{v}_gone = (lambda **kw: None)(")
        text = text.replace(f"{v}, ", "")
    (path / "features.py").write_text(textwrap.dedent(text))
    for name, df in data.items():
        df.to_parquet(path / "data" / f"{name}.parquet")
    return path


def feast_cli(repo: Path, *args: str) -> str:
    """Runs the real `feast` command line in the repository."""
    exe = Path(sys.executable).with_name("feast")
    env = dict(os.environ, FEAST_USAGE="False", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [str(exe), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"feast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout
