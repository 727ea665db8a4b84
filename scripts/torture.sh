#!/usr/bin/env bash
# Long crash torture and soak of quiverd (see docs/RELIABILITY.md, "Crash torture of quiverd").
#
# Usage: scripts/torture.sh [SECONDS]   (default 1800: each torture test and the soak run that long)
# Environment: QUIVER_TORTURE_SEED replays a run; QUIVER_TORTURE_CYCLES caps the cycles
# (default: no practical cap, the time bound ends the run); CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-1800}
case $SECS in '' | *[!0-9]*) echo "torture.sh: SECONDS must be a whole number, got '$SECS'" >&2; exit 2 ;; esac
export QUIVER_TORTURE_SECS=$SECS
export QUIVER_TORTURE_CYCLES=${QUIVER_TORTURE_CYCLES:-1000000}
export QUIVER_SOAK_SECS=$SECS
# The two torture tests run one after the other so that each has the machine to itself.
cargo test -p quiver-server --test crash_torture -- --nocapture --test-threads 1
cargo test -p quiver-server --test soak -- --nocapture
