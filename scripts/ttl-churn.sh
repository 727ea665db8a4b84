#!/usr/bin/env bash
# Long TTL-churn run: used space must stay at a steady state beside a cold block
# (docs/RELIABILITY.md, hazard 22).
#
# Usage: scripts/ttl-churn.sh [SECONDS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
case $SECS in '' | *[!0-9]*) echo "ttl-churn.sh: SECONDS must be a whole number, got '$SECS'" >&2; exit 2 ;; esac
export QUIVER_TTL_CHURN_SECS=$SECS
cargo test --release -p quiver-engine --test ttl_churn -- --nocapture
