#!/usr/bin/env bash
# What per-user permission checks cost a GET, counted in instructions rather than in
# throughput (rounds of throughput on a shared 2-core machine spread +-10%, more than the 2%
# to be shown). See docs/BENCHMARKS.md ("Security").
#
#   scripts/permission-cost.sh [--quiverd BIN] [--quiver BIN] [--rounds N] [--records N]
#                              [--secs N] [--connections N] [--configs "token user"] [--keep DIR]
#
# quiverd --memory runs under callgrind, which counts the user-space instructions of every
# thread (the event loops that parse GETs, the engine pool, the background threads). It runs
# the epoll loops (--io epoll): under valgrind an io_uring loop waiting in io_uring_enter
# keeps valgrind's thread lock, so every other thread stalls until its 100 ms tick (seen:
# 1 s of CPU in 2 minutes of start-up). The permission check is the same code on both loops
# (`Dispatch::on_frame`, `get_allowed`), so its instructions per GET carry over; the ratio is
# taken against the epoll server's instructions per GET. Configurations, in turn, ROUNDS
# times (A,B,A,B):
#   token  the single shared token
#   user   a user holding three roles, with grants on several groups and tags; the benchmark's
#          group is readable only through a grant on its tag `pii`
# Both start with the same registry (the same groups, roles and user). Per configuration:
# quiverd starts under callgrind with instrumentation off; the records are loaded; then, with
# instrumentation on, the same read-only bench runs for SECS and for 2*SECS seconds, with a
# callgrind dump after each and the server's GET count (STATS) around each. Instructions per
# GET = (I2 - I1) / (G2 - G1): what one more GET costs, the fixed costs of a bench run (its
# connections, handshakes and argon2 logins) subtracted. Those whole-server figures still
# move by a few percent between runs (GETs batched per epoll pass, background threads'
# timers), more than the check costs; so the check is also counted where it runs: the
# instructions callgrind files under server/src/security/ inside `Dispatch::on_frame` (the
# check is inlined there), and memcmp (it compares the GET's reference list), per GET of run 2.
# --keep DIR keeps each run's callgrind_annotate listing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUIVERD=$ROOT/target/release/quiverd
QUIVER=$ROOT/target/release/quiver
ROUNDS=2; RECORDS=20000; SECS=10; CONNS=4; CONFIGS="token user"; KEEP=""
PORT=${QUIVERD_PORT:-7495}
while [ $# -gt 0 ]; do
    case "$1" in
        --quiverd) QUIVERD=$2; shift ;;
        --quiver) QUIVER=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --records) RECORDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --configs) CONFIGS=$2; shift ;;
        --keep) KEEP=$2; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "permission-cost: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind > /dev/null || { echo "permission-cost: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
DIR=$(mktemp -d /var/tmp/quiver-permission-cost.XXXXXX)
PID=""
stop_server() {
    kill "$PID" 2>/dev/null || true
    # quiverd shuts down gracefully, slowly under valgrind; then it is killed.
    for _ in $(seq 120); do kill -0 "$PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}
trap '[ -n "$PID" ] && stop_server; rm -rf "$DIR"' EXIT
TOKEN=bench-token
ADMIN=bench-admin-pw
USER_TOKEN=bench:bench-password
SHAPE=(--scalars 8 --vector-dim 0)
start_server() { # sets PID
    rm -f "$DIR"/cg.* "$DIR/quiverd.out"
    QUIVER_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$DIR/cg.%p" "$QUIVERD" --memory --size 64MiB --io epoll \
        --listen "127.0.0.1:$PORT" --auth-token "$TOKEN" --admin-password "$ADMIN" \
        > "$DIR/quiverd.out" 2> "$DIR/valgrind.log" &
    PID=$!
    for _ in $(seq 1200); do grep -q "listening on" "$DIR/quiverd.out" 2>/dev/null && return; sleep 0.5; done
    echo "quiverd did not start under valgrind" >&2; cat "$DIR/valgrind.log" >&2; exit 1
}
q() { "$QUIVER" --addr "127.0.0.1:$PORT" --auth-token "$TOKEN" "$@" > /dev/null; }
# The same registry for both configurations: the benchmark's group tagged `pii` (created here
# with the bench's shape, so that the bench finds it), four more groups, three roles.
make_registry() {
    local features=()
    for i in 0 1 2 3 4 5 6 7; do features+=(--feature "f$i:f32"); done
    q group create bench --key-type i64 "${features[@]}" --tag pii --tag scores
    q group create profile --key-type i64 --feature age:i64 --tag pii
    q group create payments --key-type i64 --feature total:f64 --tag finance
    q group create sessions --key-type string --feature clicks:i64
    q group create audit_trail --key-type string --feature note:string --tag internal
    q role create analyst
    q role grant analyst read tag:pii
    q role grant analyst read group:sessions
    q role create finance
    q role grant finance read tag:finance
    q role grant finance write group:payments
    q role create operator
    q role grant operator admin group:audit_trail
    printf 'bench-password\n' | q user create bench --role analyst --role finance --role operator
}
gets() { # -> the server's GET count
    "$QUIVER" --addr "127.0.0.1:$PORT" --auth-token "$TOKEN" --json stats |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["ops"]["get"]["count"])'
}
bench() { # token secs
    "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --auth-token "$1" "${SHAPE[@]}" \
        --records "$RECORDS" --no-load --workload read-only --quiet --connections "$CONNS" \
        --pipeline 1 --closed --warmup 1s --duration "$2s" --request-timeout 60s > /dev/null
}
instructions() { # dump number -> total instructions in it
    awk '/^(summary|totals):/ {print $2; exit}' "$DIR/cg.$PID.$1"
}
run() { # config -> prints one line
    local config=$1 token=$TOKEN
    start_server
    make_registry
    "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --auth-token "$TOKEN" "${SHAPE[@]}" \
        --records "$RECORDS" --workload read-only --quiet --connections 1 --warmup 0s \
        --duration 1s > /dev/null
    [ "$config" = user ] && token=$USER_TOKEN
    local g0 g1 g2 i1 i2
    callgrind_control -i on "$PID" > /dev/null 2>&1
    g0=$(gets)
    callgrind_control -z "$PID" > /dev/null 2>&1
    bench "$token" "$SECS"
    callgrind_control -d "$PID" > /dev/null 2>&1
    g1=$(gets)
    bench "$token" $((2 * SECS))
    callgrind_control -d "$PID" > /dev/null 2>&1
    g2=$(gets)
    i1=$(instructions 1); i2=$(instructions 2)
    # Inclusive instructions of the frame handler and of the permission check in run 2.
    callgrind_annotate --inclusive=yes --threshold=100 "$DIR/cg.$PID.2" > "$DIR/annotate.txt" 2> /dev/null
    [ -n "$KEEP" ] && cp "$DIR/annotate.txt" "$KEEP/annotate-$config-$round.txt"
    python3 - "$config" "$g0" "$g1" "$g2" "$i1" "$i2" "$DIR/annotate.txt" <<'PY'
import re, sys
config, g0, g1, g2, i1, i2 = sys.argv[1], *map(int, sys.argv[2:7])
n1, n2 = g1 - g0, g2 - g1
def inclusive(name):
    for line in open(sys.argv[7]):
        m = re.match(r"\s*([\d,]+) .*" + name, line)
        if m:
            return int(m.group(1).replace(",", ""))
    return 0
frame = inclusive(r"Dispatch>?::on_frame")
# The permission check is inlined into on_frame: callgrind files its instructions under the
# security module's source files (and memcmp, called to compare the reference list).
check = 0
for line in open(sys.argv[7]):
    m = re.match(r"\s*([\d,]+) .*/src/security/[a-z_]+\.rs:\S*Dispatch::on_frame$", line)
    if m:
        check += int(m.group(1).replace(",", ""))
memcmp = inclusive(r"__memcmp")
print(f"{config:<6} run 1: {n1:6d} GETs {i1 / n1:7.0f}/GET  run 2: {n2:6d} GETs {i2 / n2:7.0f}/GET  "
      f"marginal {(i2 - i1) / (n2 - n1):7.0f}/GET  run 2 per GET: on_frame {frame / n2:6.0f}, "
      f"security code in it {check / n2:4.0f}, memcmp {memcmp / n2:4.0f}")
PY
    stop_server
}
echo "quiverd $QUIVERD under callgrind; $RECORDS records of 8 f32, $CONNS connections, depth 1"
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    for config in $CONFIGS; do run "$config"; done
done
