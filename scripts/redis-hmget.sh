#!/usr/bin/env bash
# Memory-resident gets through quiverd against Redis's HMGET of the same fields, A,B,A,B
# (issue 18). See docs/BENCHMARKS.md ("Memory-resident gets against Redis HMGET").
#
#   scripts/redis-hmget.sh [--quiverd BIN] [--quiver BIN] [--records N] [--rounds N]
#                          [--secs N] [--connections N] [--depths 1,16] [--threads N]
#
# Starts redis-server (`--save "" --appendonly no`) and quiverd (`--memory`) on free
# 127.0.0.1 ports, loads the same N records of 10 f32 features into both with `quiver bench`,
# then per depth and round runs `quiver bench --workload read-only --closed` against Redis
# (HMGET of the 10 fields) and against quiverd (GET of the 10 features), CONNECTIONS
# connections with DEPTH requests in flight each, and prints ops/s, p99 and the ratio of the
# medians. --threads sets the generator's threads (default: one per connection).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUIVERD=""; QUIVER=""
RECORDS=100000; ROUNDS=2; SECS=10; CONNS=50; DEPTHS=1,16; THREADS=()
DIR=$(mktemp -d /tmp/quiver-redis-hmget.XXXXXX)

while [ $# -gt 0 ]; do
    case "$1" in
        --quiverd) QUIVERD=$2; shift ;;
        --quiver) QUIVER=$2; shift ;;
        --records) RECORDS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --depths) DEPTHS=$2; shift ;;
        --threads) THREADS=(--threads "$2"); shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "redis-hmget: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
QUIVERD=${QUIVERD:-$ROOT/target/release/quiverd}
QUIVER=${QUIVER:-$ROOT/target/release/quiver}
for tool in redis-server jq python3; do
    command -v "$tool" >/dev/null || { echo "redis-hmget: $tool is not installed" >&2; exit 2; }
done
[ -x "$QUIVERD" ] && [ -x "$QUIVER" ] || {
    echo "redis-hmget: build first: cargo build --release -p quiver-server --bin quiverd -p quiver-tools --bin quiver" >&2
    exit 2
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
QPID=""; RPID=""
cleanup() {
    for p in $QPID $RPID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$DIR/redis.log" 2>&1 &
RPID=$!
QPORT=$(free_port)
"$QUIVERD" --listen "127.0.0.1:$QPORT" --memory --size 2GiB >"$DIR/quiverd.out" 2>"$DIR/quiverd.log" &
QPID=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$DIR/quiverd.out" 2>/dev/null && redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done

SHAPE=(--records "$RECORDS" --scalars 10 --vector-dim 0)
run() { # target depth secs extra... -> "ops_per_s p99_us"
    local target=$1 depth=$2 secs=$3; shift 3
    "$QUIVER" bench --target "$target" --workload read-only "${SHAPE[@]}" --connections "$CONNS" \
        --pipeline "$depth" --closed --warmup 1s --duration "${secs}s" --quiet --json "$DIR/r.json" ${THREADS[@]+"${THREADS[@]}"} "$@" >/dev/null
    local missing; missing=$(jq '.not_found + .errors' "$DIR/r.json")
    [ "$missing" = 0 ] || echo "redis-hmget: $missing reads of $target found nothing or failed" >&2
    echo "$(jq '.ops_per_s' "$DIR/r.json") $(jq '.latency_us.p99' "$DIR/r.json")"
}
echo "== loading $RECORDS records of 10 f32 into both"
run "redis:127.0.0.1:$RPORT" 1 1 >/dev/null
run "quiverd:127.0.0.1:$QPORT" 1 1 >/dev/null

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
IFS=, read -r -a depth_list <<<"$DEPTHS"
for depth in "${depth_list[@]}"; do
    echo "== $CONNS connections x $depth in flight, ${SECS} s per run (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    q=(); r=()
    for round in $(seq 1 "$ROUNDS"); do
        read -r rr rp < <(run "redis:127.0.0.1:$RPORT" "$depth" "$SECS" --no-load)
        read -r qr qp < <(run "quiverd:127.0.0.1:$QPORT" "$depth" "$SECS" --no-load)
        printf 'round %d: redis %9.0f ops/s p99 %8.0f us   quiverd %9.0f ops/s p99 %8.0f us   %.2fx\n' \
            "$round" "$rr" "$rp" "$qr" "$qp" "$(echo "$qr / $rr" | bc -l)"
        r+=("$rr"); q+=("$qr")
    done
    mr=$(median "${r[@]}"); mq=$(median "${q[@]}")
    printf 'medians: redis %.0f, quiverd %.0f ops/s: %.2fx (target 2x)\n' "$mr" "$mq" "$(echo "$mq / $mr" | bc -l)"
done
