#!/usr/bin/env bash
# Replication factor 2 against 1 on one machine (docs/BENCHMARKS.md, "Cluster: replication
# factor 2 against 1"): each round starts an etcd and three quiverd nodes on files at RF 1,
# runs the same bounded load through the cluster client (server/examples/cluster_rf.rs: gets,
# buffered puts, sync puts, SECONDS each), stops them, then does the same at RF 2; rounds
# alternate A,B,A,B. Prints every round's figures, then medians and the RF2/RF1 ratios.
#
#   scripts/cluster-rf.sh [ROUNDS] [SECONDS] [THREADS]     (defaults: 3 rounds, 5 s, 16 threads)
#
# Needs etcd on the PATH (Debian: apt-get install etcd-server). Data files go under
# $QUIVER_BENCH_DIR (default: a temporary directory under target/), 1 GiB per node.
# QUIVERD_ARGS adds flags to every node (e.g. QUIVERD_ARGS="--engine-threads 16").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
SECS="${2:-5}"
THREADS="${3:-16}"
command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
cargo build --release -p quiver-server --bin quiverd --example cluster_rf
bin=target/release
base="${QUIVER_BENCH_DIR:-target/cluster-rf}"
mkdir -p "$base"
work="$(mktemp -d "$base/run.XXXXXX")"
results="$work/results.txt"
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# One measurement: etcd + 3 nodes at replication factor $1, the load, then everything stopped.
run_cluster() {
    local rf="$1" round="$2" dir="$work/rf$1-r$2"
    mkdir -p "$dir"
    local cport peer url
    cport=$(free_port); peer=$(free_port); url="http://127.0.0.1:$cport"
    etcd --name bench --data-dir "$dir/etcd" --listen-client-urls "$url" \
        --advertise-client-urls "$url" --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "bench=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        if command -v curl >/dev/null; then
            curl -s "$url/health" 2>/dev/null | grep -q true && break
        elif (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null; then
            sleep 0.5; break
        fi
        sleep 0.1
    done
    local seeds=() n port
    for n in 1 2 3; do
        port=$(free_port)
        mkdir -p "$dir/n$n"
        QUIVER_LOG=warn "$bin/quiverd" --data "$dir/n$n/quiver.db" --size 1GiB \
            --listen "127.0.0.1:$port" --cluster-etcd "$url" --node-id "$n" \
            --replication-factor "$rf" --initial-nodes 3 ${QUIVERD_ARGS:-} >"$dir/n$n.log" 2>&1 &
        pids+=($!)
        seeds+=("127.0.0.1:$port")
    done
    local load
    load=$(uptime | sed 's/.*load average: //')
    "$bin/examples/cluster_rf" --seeds "$(IFS=,; echo "${seeds[*]}")" \
        --threads "$THREADS" --seconds "$SECS" |
        sed "s/^/rf $rf round $round /" | tee -a "$results"
    echo "rf $rf round $round load average before: $load" | tee -a "$results"
    stop_all
    rm -rf "$dir"
}

echo "== $ROUNDS rounds of RF1 then RF2, $SECS s per workload, $THREADS client threads, quiverd flags: ${QUIVERD_ARGS:-none}"
for r in $(seq "$ROUNDS"); do
    run_cluster 1 "$r"
    run_cluster 2 "$r"
done
echo "== load average after: $(uptime | sed 's/.*load average: //')"
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) > 4 and f[4] == "workload":
        rf, name = int(f[1]), f[5]
        kv = dict(zip(f[6::2], f[7::2]))
        rows.setdefault((name, rf), []).append(kv)
targets = {"read": 0.9, "buffered": 0.5, "sync": 0.5}
print(f"{'workload':<9} {'RF1 ops/s':>10} {'RF2 ops/s':>10} {'ratio':>6} {'target':>7} "
      f"{'RF1 p50/p99 us':>15} {'RF2 p50/p99 us':>15}  per round RF1 | RF2")
for name in ["read", "buffered", "sync"]:
    a, b = rows.get((name, 1), []), rows.get((name, 2), [])
    if not a or not b:
        continue
    med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
    ra, rb = med(a, "ops_per_s"), med(b, "ops_per_s")
    ratio = rb / ra
    verdict = "met" if ratio >= targets[name] else "MISSED"
    print(f"{name:<9} {ra:>10.0f} {rb:>10.0f} {ratio:>6.2f} {targets[name]:>6.1f}x "
          f"{med(a,'p50_us'):>7.0f}/{med(a,'p99_us'):<7.0f} {med(b,'p50_us'):>7.0f}/{med(b,'p99_us'):<7.0f}"
          f"  {' '.join(r['ops_per_s'] for r in a)} | {' '.join(r['ops_per_s'] for r in b)}  {verdict}")
    errs = sum(int(r["errors"]) for r in a + b)
    if errs:
        print(f"  {name}: {errs} failed requests")
EOF
