#!/usr/bin/env bash
# Training sets: quiver training-set against DuckDB's ASOF JOIN over the same history in
# Parquet (rows/s and peak RSS, alternating A,B,A,B), "as served" against event time only, and
# the history's device bytes per version with and without the write time (printed by the
# load). See
# docs/BENCHMARKS.md. The defaults are the scaled-down run; the issue's full size is
#   ENTITIES=100000 VERSIONS=10000000 SPINE_ROWS=1000000 DEVICE_GIB=4 scripts/training-set-bench.sh
# The store is deleted at the end unless KEEP_STORE=1 (SKIP_LOAD=1 then measures it again).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${DIR:-/var/tmp/quiver-training-bench}"
ENTITIES="${ENTITIES:-10000}"
VERSIONS="${VERSIONS:-1000000}"
SPINE_ROWS="${SPINE_ROWS:-100000}"
ROUNDS="${ROUNDS:-2}"
# The store file is zeroed at creation: 1 GiB holds the scaled-down run, 8 GiB the full one
# without defragmentation during the load (4 GiB holds it, with a much slower load).
DEVICE_GIB="${DEVICE_GIB:-1}"
FEAST_ROWS="${FEAST_ROWS:-10000}" # 0 skips Feast
READS="${READS:-20000}"           # as-of reads and gets per round; 0 skips them
CACHE_MIB="${CACHE_MIB:-256}"
QUIVER_VENV="${QUIVER_VENV:-$HOME/.cache/quiver/venv}"

if ! "$QUIVER_VENV/bin/python" -c 'import duckdb' >/dev/null 2>&1; then
    rm -rf "$QUIVER_VENV"
    python3 -m venv "$QUIVER_VENV"
    "$QUIVER_VENV/bin/pip" install -q --disable-pip-version-check duckdb
fi
PY="$QUIVER_VENV/bin/python"
if [ "$FEAST_ROWS" != 0 ] && ! "$PY" -c 'import feast' >/dev/null 2>&1; then
    "$QUIVER_VENV/bin/pip" install -q --disable-pip-version-check feast
fi
cargo build --release -q -p quiver-tools --bin quiver -p quiver-benches --bin quiver-training-bench
BIN=target/release
mkdir -p "$DIR"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "${SKIP_LOAD:-0}" != 1 ]; then # SKIP_LOAD=1 measures the store and files of the last load
    echo "== load: $VERSIONS versions, $ENTITIES entities per group, $SPINE_ROWS spine rows"
    "$BIN/quiver-training-bench" --dir "$DIR" --entities "$ENTITIES" --versions "$VERSIONS" --spine-rows "$SPINE_ROWS" --device-gib "$DEVICE_GIB"
    "$PY" scripts/training_bench_duckdb.py prepare "$DIR"
fi

# Runs a command, prints "<seconds> s, peak RSS <MiB> MiB" for it alone.
measure() {
    "$PY" - "$@" <<'PYEOF'
import resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
s = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{s:.2f} s, peak RSS {rss:.0f} MiB")
PYEOF
}

quiver_set() { # MODE OUT [SPINE]
    measure "$BIN/quiver" --data "$DIR/store.db" training-set --spine "${3:-$DIR/spine.parquet}" \
        --timestamp-column ts --key-column user=user_id --key-column shop=shop_id \
        --feature user:clicks --feature user:score --feature shop:orders --feature shop:rating \
        --mode "$1" --out "$2" --force --cache-mib "$CACHE_MIB"
}

echo "== quiver training-set (event time) vs DuckDB ASOF JOIN, $SPINE_ROWS rows, A,B,A,B"
for round in $(seq "$ROUNDS"); do
    echo "round $round quiver: $(quiver_set event "$DIR/quiver_event.parquet")"
    echo "round $round duckdb: $(measure "$PY" scripts/training_bench_duckdb.py asof "$DIR" "$DIR/duckdb.parquet")"
done
echo "same answers: $("$PY" scripts/training_bench_duckdb.py check "$DIR" "$DIR/quiver_event.parquet" "$DIR/duckdb.parquet")"

echo "== as-served vs event time only, A,B,A,B"
for round in $(seq "$ROUNDS"); do
    echo "round $round as-served: $(quiver_set as-served "$DIR/quiver_served.parquet")"
    echo "round $round event:     $(quiver_set event "$DIR/quiver_event.parquet")"
done
if [ "$FEAST_ROWS" != 0 ]; then
    echo "== Feast get_historical_features (file offline store) vs quiver, first $FEAST_ROWS spine rows, A,B,A,B"
    "$PY" scripts/training_bench_feast.py head "$DIR" "$FEAST_ROWS"
    for round in $(seq "$ROUNDS"); do
        echo "round $round quiver: $(quiver_set event "$DIR/quiver_head.parquet" "$DIR/spine_head.parquet")"
        echo "round $round feast: $(measure "$PY" scripts/training_bench_feast.py run "$DIR" "$DIR/feast.parquet")"
    done
    echo "feast vs duckdb: $("$PY" scripts/training_bench_duckdb.py check "$DIR" "$DIR/feast.parquet" "$DIR/duckdb.parquet")"
    echo "quiver vs feast: $("$PY" scripts/training_bench_duckdb.py check "$DIR" "$DIR/quiver_head.parquet" "$DIR/feast.parquet")"
fi

if [ "$READS" != 0 ]; then
    echo "== as-of reads of a recent time vs plain gets, $READS each per round, one at a time, A,B,A,B"
    "$BIN/quiver-training-bench" --dir "$DIR" --entities "$ENTITIES" --reads "$READS" --rounds "$ROUNDS"
fi

if [ "${KEEP_STORE:-0}" != 1 ]; then
    rm -f "$DIR/store.db" "$DIR/store.db.ckpt"
fi
