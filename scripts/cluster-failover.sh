#!/usr/bin/env bash
# Failover cycles of a three-node cluster (docs/BENCHMARKS.md, "Cluster failover"): each
# cycle starts an etcd and three quiverd nodes, kills the master of a key with SIGKILL under
# sync writes from four client threads, and measures the time until writes to the dead
# master's partitions are acknowledged again; every acknowledged write is then read back.
#
#   scripts/cluster-failover.sh [CYCLES] [LEASE_TTL_S]     (defaults: 20 cycles, TTL 2 s)
#
# Needs etcd on the PATH (Debian: apt-get install etcd-server). PROFILE=dev uses the
# debug build (faster to build; failover time is dominated by the lease, not the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES="${1:-20}"
TTL="${2:-2}"
PROFILE="${PROFILE:-release}"
command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
if [ "$PROFILE" = release ]; then
    cargo build --release -p quiver-server --bin quiverd --example cluster_failover
    dir=target/release
else
    cargo build -p quiver-server --bin quiverd --example cluster_failover
    dir=target/debug
fi
"$dir/examples/cluster_failover" --quiverd "$dir/quiverd" --cycles "$CYCLES" --lease-ttl-s "$TTL"
