#!/usr/bin/env bash
# Device-backed GETs through quiverd on a loop device against fio's 4 KiB random reads at
# depth 32 on the same device, A,B,A,B (issue 18). See docs/BENCHMARKS.md ("Loop device
# against fio").
#
#   scripts/loop-vs-fio.sh [--quiverd BIN] [--quiver BIN] [--dir DIR] [--records N]
#                          [--rounds N] [--secs N] [--connections N] [--device-gib N]
#
# Needs root, losetup and fio (apt-get install fio). A file of --device-gib GiB under DIR is
# attached as a loop device with direct I/O (so the host's page cache sits under neither
# side). quiverd formats it, N records (8 f32 scalars and a 128-float vector) are loaded, and
# then per round: fio (io_uring, O_DIRECT, randread, bs 4k, iodepth 32, one job) over the
# whole device for SECS seconds, then a fresh quiverd (nothing cached: every GET reads the
# device) and `quiver bench --workload read-only` from CONNECTIONS connections with one GET
# in flight each, closed loop, SECS seconds. Prints each round, the medians and their ratio,
# and the server's CPU per GET. The loop device is detached on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUIVERD=""; QUIVER=""
DIR=/var/tmp/quiver-loop-fio
RECORDS=1000000; ROUNDS=2; SECS=15; CONNS=32; GIB=4
PORT=${QUIVERD_PORT:-7493}

while [ $# -gt 0 ]; do
    case "$1" in
        --quiverd) QUIVERD=$2; shift ;;
        --quiver) QUIVER=$2; shift ;;
        --dir) DIR=$2; shift ;;
        --records) RECORDS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --device-gib) GIB=$2; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "loop-vs-fio: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
QUIVERD=${QUIVERD:-$ROOT/target/release/quiverd}
QUIVER=${QUIVER:-$ROOT/target/release/quiver}
for tool in fio losetup jq; do
    command -v "$tool" >/dev/null || { echo "loop-vs-fio: $tool is not installed" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "loop-vs-fio: losetup needs root" >&2; exit 2; }
[ -x "$QUIVERD" ] && [ -x "$QUIVER" ] || {
    echo "loop-vs-fio: build first: cargo build --release -p quiver-server --bin quiverd -p quiver-tools --bin quiver" >&2
    exit 2
}
mkdir -p "$DIR"
TICK=$(getconf CLK_TCK)
PID=""; DEV=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ -n "$DEV" ]; then losetup -d "$DEV" || true; fi
}
trap cleanup EXIT
SHAPE=(--scalars 8 --vector-dim 128)

BACKING="$DIR/backing.img"
rm -f "$BACKING"
truncate -s "${GIB}G" "$BACKING"
DEV=$(losetup -f --show --direct-io=on "$BACKING")
echo "== $DEV: ${GIB} GiB over $BACKING (direct I/O), $RECORDS records, ${SECS} s per run"

start_server() {
    rm -f "$DIR/quiverd.out"
    "$QUIVERD" --listen "127.0.0.1:$PORT" --data "$DEV" >"$DIR/quiverd.out" 2>"$DIR/quiverd.log" &
    PID=$!
    for _ in $(seq 1 600); do
        grep -q "listening on" "$DIR/quiverd.out" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/quiverd.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "loop-vs-fio: quiverd did not start" >&2; exit 1
}

stop_server() {
    kill -TERM "$PID"; wait "$PID" || true; PID=""
}

bench() { # secs extra-args...
    local secs=$1; shift
    "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --workload read-only \
        --records "$RECORDS" "${SHAPE[@]}" --connections "$CONNS" --pipeline 1 --closed \
        --warmup 0s --duration "${secs}s" --quiet --json "$DIR/report.json" "$@" >/dev/null
}

echo "== loading (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
start_server
bench 1
stop_server

fio_iops=(); get_rates=()
for r in $(seq 1 "$ROUNDS"); do
    fio --name=randread --filename="$DEV" --direct=1 --rw=randread --bs=4k --iodepth=32 \
        --ioengine=io_uring --numjobs=1 --time_based --runtime="$SECS" \
        --output-format=json --output="$DIR/fio.json" >/dev/null
    iops=$(jq '.jobs[0].read.iops' "$DIR/fio.json")
    fio_iops+=("$iops")
    start_server
    before=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    bench "$SECS" --no-load
    after=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    stop_server
    ops=$(jq '.ops' "$DIR/report.json"); rate=$(jq '.ops_per_s' "$DIR/report.json")
    p99=$(jq '.latency_us.p99' "$DIR/report.json")
    missing=$(jq '.not_found + .errors' "$DIR/report.json")
    [ "$missing" = 0 ] || echo "loop-vs-fio: $missing GETs found nothing or failed (see $DIR/report.json)" >&2
    get_rates+=("$rate")
    awk -v r="$r" -v i="$iops" -v g="$rate" -v t=$((after - before)) -v hz="$TICK" -v ops="$ops" -v p="$p99" \
        -v l="$(cut -d' ' -f1 /proc/loadavg)" \
        'BEGIN { printf "round %d: fio %9.0f IOPS   quiverd %9.0f GETs/s (%.2fx)  server CPU/GET %6.2f us  GET p99 %s us  load %s\n",
                 r, i, g, g / i, t / hz * 1e6 / ops, p, l }'
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mf=$(median "${fio_iops[@]}"); mg=$(median "${get_rates[@]}")
awk -v f="$mf" -v g="$mg" 'BEGIN { printf "medians: fio %.0f IOPS, quiverd %.0f GETs/s: %.2fx (target 0.8x)\n", f, g, g / f }'
