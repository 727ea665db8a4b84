#!/usr/bin/env bash
# Sync puts through quiverd from many connections against the device's fsync rate, A,B,A,B.
# See docs/BENCHMARKS.md ("Sync puts through quiverd").
#
#   scripts/sync-puts.sh --a BIN --b BIN [--a-args "ARGS"] [--b-args "ARGS"] [--quiver BIN]
#                        [--dir DIR] [--rounds N] [--secs N] [--connections N] [--records N]
#
# Each round: the fsync rate of the file system under DIR (a loop of 4 KiB pwrite + fdatasync
# on one file, for SECS seconds, as `quiver-perf put` measures it), then for A and B a fresh
# quiverd on a data file in DIR and `quiver bench --workload update-only --sync` from
# CONNECTIONS connections (one put in flight each, closed loop, SECS seconds, 1 thread per 16
# connections). Prints puts/s, the ratio to the round's fsync rate, and the server's CPU per
# put (utime+stime from /proc/<pid>/stat over the run).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=""; B=""; QUIVER=""; A_ARGS=""; B_ARGS=""
DIR=/var/tmp/quiver-sync-puts
ROUNDS=2; SECS=10; CONNS=64; RECORDS=100000
PORT=${QUIVERD_PORT:-7492}

while [ $# -gt 0 ]; do
    case "$1" in
        --a) A=$2; shift ;;
        --b) B=$2; shift ;;
        --a-args) A_ARGS=$2; shift ;;
        --b-args) B_ARGS=$2; shift ;;
        --quiver) QUIVER=$2; shift ;;
        --dir) DIR=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --records) RECORDS=$2; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "sync-puts: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$A" ] && [ -n "$B" ] || { echo "sync-puts: --a and --b name two quiverd binaries" >&2; exit 2; }
QUIVER=${QUIVER:-$ROOT/target/release/quiver}
mkdir -p "$DIR"
TICK=$(getconf CLK_TCK)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT
THREADS=${THREADS:-$(( (CONNS + 15) / 16 ))}

fsync_rate() { # -> fsyncs per second over SECS
    python3 - "$DIR/fsync-probe.dat" "$SECS" <<'EOF'
import os, sys, time
path, secs = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
block = b"\xa5" * 4096
n, start = 0, time.monotonic()
while time.monotonic() - start < secs:
    os.pwrite(fd, block, (n % 256) * 4096)
    os.fdatasync(fd)
    n += 1
elapsed = time.monotonic() - start
os.close(fd)
os.unlink(path)
print(f"{n / elapsed:.1f}")
EOF
}

start_server() { # bin extra-args
    local bin=$1 extra=$2
    rm -rf "$DIR/store" && mkdir -p "$DIR/store"
    # shellcheck disable=SC2086 # the extra arguments are split on purpose
    "$bin" $extra --listen "127.0.0.1:$PORT" --data "$DIR/store/sync.db" --size 2GiB \
        >"$DIR/quiverd.out" 2>"$DIR/quiverd.log" &
    PID=$!
    for _ in $(seq 1 600); do
        grep -q "listening on" "$DIR/quiverd.out" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/quiverd.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "sync-puts: quiverd did not start" >&2; exit 1
}

measure() { # label bin extra-args fsync-rate
    local label=$1 bin=$2 extra=$3 fsync=$4
    start_server "$bin" "$extra"
    "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --workload read-only --records "$RECORDS" \
        --scalars 8 --vector-dim 0 --connections 4 --closed --warmup 0s --duration 1s --quiet >/dev/null
    local before; before=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --workload update-only --sync --no-load \
        --records "$RECORDS" --scalars 8 --vector-dim 0 --connections "$CONNS" --threads "$THREADS" \
        --pipeline 1 --closed --warmup 1s --duration "${SECS}s" --quiet --json "$DIR/report.json" >/dev/null
    local after; after=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    kill -TERM "$PID"; wait "$PID" || true; PID=""
    jq -r --arg l "$label" --arg f "$fsync" --arg t "$((after - before))" --arg hz "$TICK" \
        '"\($l)  sync puts/s \(.ops_per_s | floor)  x fsync rate \((.ops_per_s / ($f | tonumber)) * 100 | floor / 100)  errors \(.errors)  p99 \(.latency_us.p99) us  server CPU/put \(($t | tonumber) / ($hz | tonumber) * 1e6 / .ops * 100 | floor / 100) us  generator CPU/put \(.generator_cpu_us_per_op * 100 | floor / 100) us"' \
        "$DIR/report.json"
}

echo "== sync puts, $CONNS connections x 1 in flight, ${SECS} s per run (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
for r in $(seq 1 "$ROUNDS"); do
    f=$(fsync_rate)
    echo "round $r: fsync rate of $DIR: $f per s"
    measure A "$A" "$A_ARGS" "$f"
    measure B "$B" "$B_ARGS" "$f"
done
