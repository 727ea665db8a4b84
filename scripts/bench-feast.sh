#!/usr/bin/env bash
# Feast get_online_features over Quiver (one request for all views; Feast's per-view path)
# against Feast over Redis, and the Python SDK's batch get: builds quiverd and the Python
# package in release mode into target/py-bench, then runs scripts/bench-feast.py.
#
#   bash scripts/bench-feast.sh [--rounds 3] [--calls 300] [--entities 1000] [--json out.json]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-bench
command -v redis-server >/dev/null || apt-get install -y -qq redis-server
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -r python/requirements-test.txt
cargo build -q --release -p quiver-server --bin quiverd -p quiver-tools --bin quiver
rm -rf target/wheels-release
"$venv/bin/maturin" build -q --release -m python/Cargo.toml -o target/wheels-release
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps target/wheels-release/quiver_store-*.whl
QUIVERD_BIN=target/release/quiverd QUIVER_BIN=target/release/quiver exec "$venv/bin/python" scripts/bench-feast.py "$@"
