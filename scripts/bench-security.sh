#!/usr/bin/env bash
# What TLS and per-user permission checks cost GETs: quiverd --memory, `quiver bench`
# read-only over 32 connections (closed loop, pipeline 1), each configuration in a fresh
# quiverd, in turn, ROUNDS times; then handshakes per second with and without TLS.
# See docs/BENCHMARKS.md ("Security").
#
#   scripts/bench-security.sh [--quiverd BIN] [--quiver BIN] [--example BIN] [--rounds N]
#                             [--secs N] [--records N] [--connections N]
#                             [--configs "tls plain-uring tls-epoll"] [--no-handshakes]
#
# Configurations (all by default, in this order, each round):
#   plain-uring  token auth, plaintext, io_uring loops (the default server)
#   plain-epoll  token auth, plaintext, epoll loops
#   tls          token auth, TLS on the io_uring loops (the default server with TLS)
#   tls-epoll    token auth, TLS on the epoll loops (--io epoll)
#   token-epoll  = plain-epoll, the baseline of user-epoll (same run order as the others)
#   user-epoll   a user with grants (per-request permission checks), plaintext epoll
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUIVERD=$ROOT/target/release/quiverd
QUIVER=$ROOT/target/release/quiver
EXAMPLE=$ROOT/target/release/examples/handshake_rate
ROUNDS=2; SECS=10; RECORDS=100000; CONNS=32
CONFIGS="plain-uring plain-epoll tls tls-epoll token-epoll user-epoll"; HANDSHAKES=1
PORT=${QUIVERD_PORT:-7493}
while [ $# -gt 0 ]; do
    case "$1" in
        --quiverd) QUIVERD=$2; shift ;;
        --quiver) QUIVER=$2; shift ;;
        --example) EXAMPLE=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --secs) SECS=$2; shift ;;
        --records) RECORDS=$2; shift ;;
        --connections) CONNS=$2; shift ;;
        --configs) CONFIGS=$2; shift ;;
        --no-handshakes) HANDSHAKES=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench-security: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
DIR=$(mktemp -d /var/tmp/quiver-bench-security.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT

# A CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=bench-ca -keyout "$DIR/ca.key" -out "$DIR/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$DIR/ext.cnf"
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
    -CAcreateserial -days 2 -extfile "$DIR/ext.cnf" -out "$DIR/server.pem" 2>/dev/null

TOKEN=bench-token
USER_TOKEN=bench:bench-password
ADMIN=bench-admin-pw

start_server() { # config -> PID
    local args=(--memory --size 2GiB --listen "127.0.0.1:$PORT" --auth-token "$TOKEN"
                --admin-password "$ADMIN")
    case "$1" in
        plain-uring) ;;
        plain-epoll|token-epoll|user-epoll) args+=(--io epoll) ;;
        tls) args+=(--tls-cert "$DIR/server.pem" --tls-key "$DIR/server.key") ;;
        tls-epoll) args+=(--io epoll --tls-cert "$DIR/server.pem" --tls-key "$DIR/server.key") ;;
        *) echo "bench-security: unknown configuration $1" >&2; exit 2 ;;
    esac
    QUIVER_LOG=warn "$QUIVERD" "${args[@]}" > "$DIR/quiverd.out" &
    PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$DIR/quiverd.out" 2>/dev/null && return; sleep 0.1; done
    echo "quiverd did not start" >&2; exit 1
}

client_flags() { # config -> flags of quiver for it
    case "$1" in
        tls|tls-epoll) echo "--tls --ca $DIR/ca.pem" ;;
        *) echo "" ;;
    esac
}

# The user of user-epoll: admin on the group `bench` only (it creates it, puts, gets).
make_user() {
    local q=("$QUIVER" --addr "127.0.0.1:$PORT" --auth-token "$TOKEN")
    "${q[@]}" role create bench_owner > /dev/null
    "${q[@]}" role grant bench_owner admin group:bench > /dev/null
    printf 'bench-password\n' | "${q[@]}" user create bench --role bench_owner > /dev/null
}

run() { # config -> prints one line
    local config=$1 token=$TOKEN
    start_server "$config"
    if [ "$config" = user-epoll ]; then make_user; token=$USER_TOKEN; fi
    local tls
    tls=$(client_flags "$config")
    # shellcheck disable=SC2086 # the TLS flags are split on purpose
    "$QUIVER" bench --target "quiverd:127.0.0.1:$PORT" --auth-token "$token" $tls \
        --records "$RECORDS" --scalars 8 --vector-dim 0 --workload read-only --quiet \
        --connections "$CONNS" --pipeline 1 --closed --warmup 2s --duration "${SECS}s" \
        --json "$DIR/run.json" > "$DIR/run.txt"
    python3 - "$config" "$DIR/run.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[2]))
lat = doc["latency_us"]
print(f"{sys.argv[1]:<12} gets/s {doc['ops_per_s']:9.0f}  p50 {lat['p50']:8.1f} us  "
      f"p99 {lat['p99']:8.1f} us  errors {doc['errors']}")
PY
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

for round in $(seq "$ROUNDS"); do
    echo "round $round"
    for config in $CONFIGS; do run "$config"; done
done
[ "$HANDSHAKES" = 1 ] || exit 0

echo "handshakes (8 threads, ${SECS}s each, token auth)"
for config in plain-epoll tls; do
    start_server "$config"
    ca=()
    [ "$config" = tls ] && ca=(--ca "$DIR/ca.pem")
    printf '%-12s ' "$config"
    "$EXAMPLE" "127.0.0.1:$PORT" "${ca[@]}" --token "$TOKEN" --threads 8 --secs "$SECS"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
echo "handshakes (8 threads, ${SECS}s, user:password, argon2id verification per login)"
start_server plain-epoll
make_user
printf '%-12s ' user-login
"$EXAMPLE" "127.0.0.1:$PORT" --token "$USER_TOKEN" --threads 8 --secs "$SECS"
