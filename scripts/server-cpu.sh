#!/usr/bin/env bash
# Server CPU per request: two quiverd binaries (A and B) served the same stores in turn,
# A,B,A,B, each round in a fresh process so that device-backed gets really read the device.
# See docs/BENCHMARKS.md ("Server CPU per request").
#
#   scripts/server-cpu.sh --a BIN --b BIN [--a-args "ARGS"] [--b-args "ARGS"] [--quiver BIN]
#                         [--dir DIR] [--records N] [--rounds N] [--secs N]
#                         [--connections N] [--pipeline N] [--phases device,memory]
#
# Phases: `device` gets N records (8 f32 scalars and a 128-float vector) from an O_DIRECT
# data file, the process restarted per round (the post-write cache is empty, so every get
# reads the device); `memory` gets 100k records from a `--memory` store. For each round it
# prints the gets/s the generator measured, the server's CPU (utime+stime from
# /proc/<pid>/stat over the run) per get, and the generator's CPU per get.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=""; B=""; QUIVER=""; A_ARGS=""; B_ARGS=""
DIR=/var/tmp/quiver-server-cpu
RECORDS=1000000; ROUNDS=2; SECS=10; CONNS=32; PIPE=1; PHASES=device,memory
PORT=${QUIVERD_PORT:-7491}

while [ $# -gt 0 ]; do
    case "$1" in
        --a) A=$2; shift ;;
        --b) B=$2; shift ;;
        --a-args) A_ARGS=$2; shift ;;
        --b-args) B_ARGS=$2; shift ;;
        --quiver) QUIVER=$2; shift ;;
        --dir) DIR=$2; shift ;;
        --records) RECORDS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --pipeline) PIPE=$2; shift ;;
        --phases) PHASES=$2; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "server-cpu: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$A" ] && [ -n "$B" ] || { echo "server-cpu: --a and --b name two quiverd binaries" >&2; exit 2; }
QUIVER=${QUIVER:-$ROOT/target/release/quiver}
mkdir -p "$DIR"
TICK=$(getconf CLK_TCK)
PID=""
CUR=A # which of A and B is being started (for its extra arguments)
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; true' EXIT
SHAPE=(--scalars 8 --vector-dim 128)

cpu_ticks() { # pid -> utime+stime in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

start_server() { # bin args... ; sets PID
    local bin=$1; shift
    local extra=$A_ARGS
    [ "$CUR" = B ] && extra=$B_ARGS
    rm -f "$DIR/quiverd.out"
    # shellcheck disable=SC2086 # the extra arguments are split on purpose
    "$bin" $extra --listen "127.0.0.1:$PORT" "$@" >"$DIR/quiverd.out" 2>"$DIR/quiverd.log" &
    PID=$!
    for _ in $(seq 1 600); do
        grep -q "listening on" "$DIR/quiverd.out" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/quiverd.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "server-cpu: quiverd did not start" >&2; exit 1
}

stop_server() {
    kill -TERM "$PID"; wait "$PID" || true
}

bench() { # records secs extra-args... -> prints "ops ops_per_s gen_cpu_s"
    local records=$1 secs=$2; shift 2
    /usr/bin/time -f "%U %S" -o "$DIR/gen.time" \
        "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --workload read-only \
        --records "$records" "${SHAPE[@]}" --connections "$CONNS" --pipeline "$PIPE" --closed \
        --warmup 0s --duration "${secs}s" --quiet --json "$DIR/report.json" "$@" >/dev/null
    local ops; ops=$(jq '.ops' "$DIR/report.json")
    local rate; rate=$(jq '.ops_per_s' "$DIR/report.json")
    echo "$ops $rate $(awk '{print $1 + $2}' "$DIR/gen.time")"
}

measure() { # label bin records server-args...
    local label=$1 bin=$2 records=$3; shift 3
    CUR=$label
    start_server "$bin" "$@"
    local before; before=$(cpu_ticks "$PID")
    read -r ops rate gen_s < <(bench "$records" "$SECS" --no-load)
    local after; after=$(cpu_ticks "$PID")
    stop_server
    awk -v l="$label" -v ops="$ops" -v rate="$rate" -v t=$((after - before)) -v hz="$TICK" -v g="$gen_s" \
        'BEGIN { printf "%-4s gets/s %9.0f  server CPU/get %6.2f us  generator CPU/get %6.2f us\n",
                 l, rate, t / hz * 1e6 / ops, g * 1e6 / ops }'
}

run_phase() { # phase
    case "$1" in
    device)
        local db="$DIR/device.db"
        if [ ! -f "$db.loaded-$RECORDS" ]; then
            rm -f "$db" "$db".*
            echo "== loading $RECORDS records into $db" >&2
            CUR=A
            start_server "$A" --data "$db" --size 4GiB
            bench "$RECORDS" 1 >/dev/null
            stop_server
            touch "$db.loaded-$RECORDS"
        fi
        echo "== device-backed gets, $CONNS connections x $PIPE in flight, ${SECS} s per run (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
        for r in $(seq 1 "$ROUNDS"); do
            measure A "$A" "$RECORDS" --data "$db" --size 4GiB
            measure B "$B" "$RECORDS" --data "$db" --size 4GiB
        done
        ;;
    memory)
        echo "== memory-resident gets (--memory, 100k records), $CONNS connections x $PIPE in flight (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
        for r in $(seq 1 "$ROUNDS"); do
            for l in A B; do
                local bin=$A; [ $l = B ] && bin=$B
                CUR=$l
                start_server "$bin" --memory --size 1GiB
                bench 100000 1 >/dev/null
                local before; before=$(cpu_ticks "$PID")
                read -r ops rate gen_s < <(bench 100000 "$SECS" --no-load)
                local after; after=$(cpu_ticks "$PID")
                stop_server
                awk -v l="$l" -v ops="$ops" -v rate="$rate" -v t=$((after - before)) -v hz="$TICK" -v g="$gen_s" \
                    'BEGIN { printf "%-4s gets/s %9.0f  server CPU/get %6.2f us  generator CPU/get %6.2f us\n",
                             l, rate, t / hz * 1e6 / ops, g * 1e6 / ops }'
            done
        done
        ;;
    *) echo "server-cpu: unknown phase $1" >&2; exit 2 ;;
    esac
}

IFS=, read -r -a phase_list <<<"$PHASES"
for p in "${phase_list[@]}"; do run_phase "$p"; done
