#!/usr/bin/env bash
# HTTP /get-online-features of 100 entities: quiverd --http against Feast's own feature server
# (`feast serve`) over redis-server, same data, driven by wrk. Builds quiverd and the quiver CLI
# in release mode, installs wrk and redis-server (apt) and Feast (target/py-bench), then runs
# scripts/bench-http.py; figures go to docs/BENCHMARKS.md ("HTTP get-online-features").
#
#   bash scripts/bench-http.sh [--rounds 3] [--duration 10s] [--connections 8] [--json out.json]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${QUIVER_PY_VENV:-target/py-bench}"
command -v redis-server >/dev/null || apt-get install -y -qq redis-server
command -v wrk >/dev/null || apt-get install -y -qq wrk
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -r python/requirements-test.txt
cargo build -q --release -p quiver-server --bin quiverd -p quiver-tools --bin quiver
QUIVERD_BIN=target/release/quiverd QUIVER_BIN=target/release/quiver exec "$venv/bin/python" scripts/bench-http.py "$@"
