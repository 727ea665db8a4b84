"""Feast's side of scripts/training-set-bench.sh: get_historical_features with Feast's file
offline store over the same history (the Parquet files DuckDB reads), for the first ROWS rows of
the spine.

  training_bench_feast.py head DIR ROWS     spine.parquet -> spine_head.parquet (its first ROWS rows)
  training_bench_feast.py run DIR OUT       the training set of spine_head.parquet -> OUT

The feature repository (two entities, two views with the 7-day TTL, file sources whose
created-timestamp column is the write time) is written under DIR/feast on each run and
applied before the clock starts; the time printed is get_historical_features(...).to_df()
plus writing OUT.
"""

import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.types import Float64, Int64
from feast.value_type import ValueType


def head(d, rows):
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_parquet('{d}/spine.parquet') ORDER BY row_id LIMIT {int(rows)})"
        f" TO '{d}/spine_head.parquet' (FORMAT parquet)"
    )


def store(d):
    repo = Path(d) / "feast"
    repo.mkdir(exist_ok=True)
    config = RepoConfig(
        project="training_bench",
        provider="local",
        registry=str(repo / "registry.db"),
        offline_store=DaskOfflineStoreConfig(),  # the "file" offline store
        online_store=SqliteOnlineStoreConfig(path=str(repo / "online.db")),
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    fs = FeatureStore(config=config)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    shop = Entity(name="shop", join_keys=["shop_id"], value_type=ValueType.INT64)
    views = []
    for name, entity, key, (a, b) in (
        ("user", user, "user_id", ("clicks", "score")),
        ("shop", shop, "shop_id", ("orders", "rating")),
    ):
        source = FileSource(
            name=f"{name}_hist",
            path=f"{d}/{name}_hist.parquet",
            timestamp_field="event_time",
            created_timestamp_column="write_time",
            field_mapping={"entity": key},
        )
        views.append(
            FeatureView(
                name=name,
                entities=[entity],
                ttl=timedelta(days=7),
                schema=[Field(name=a, dtype=Int64), Field(name=b, dtype=Float64)],
                source=source,
            )
        )
    fs.apply([user, shop, *views])
    return fs


def run(d, out):
    fs = store(d)
    spine = pd.read_parquet(f"{d}/spine_head.parquet").rename(columns={"ts": "event_timestamp"})
    t = time.perf_counter()
    df = fs.get_historical_features(
        entity_df=spine,
        features=["user:clicks", "user:score", "shop:orders", "shop:rating"],
    ).to_df()
    df.rename(columns={"event_timestamp": "ts"}).to_parquet(out)
    s = time.perf_counter() - t
    print(f"feast: {len(df)} rows in {s:.2f} s ({len(df) / s:.0f} rows/s)", file=sys.stderr)


def main():
    if sys.argv[1] == "head":
        head(sys.argv[2], sys.argv[3])
    else:
        run(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
