#!/usr/bin/env bash
# Builds the Python package (python/) into a virtualenv and runs its tests (python/tests):
# the client against a quiverd they start, the embedded store, the cluster client against etcd
# and three quiverd nodes, and the Feast online store against quiverd and against redis-server
# (all started by the tests on free ports).
#
#   bash python/test.sh [pytest args...]
#
# The virtualenv is target/py (QUIVER_PY_VENV overrides). The wheel is built with the dev
# profile, which shares the workspace's target/debug; `pip install ./python` builds the same
# package in release.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${QUIVER_PY_VENV:-target/py}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -r python/requirements-test.txt
# The Feast tests compare with Feast's Redis online store over a real redis-server.
if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "python/test.sh: installing redis-server (apt-get)" >&2
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
command -v redis-server >/dev/null || { echo "python/test.sh: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
# The cluster tests start etcd (Debian's etcd-server).
if ! command -v etcd >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "python/test.sh: installing etcd-server (apt-get)" >&2
    apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null
fi
command -v etcd >/dev/null || { echo "python/test.sh: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
# quiverd for the tests to start; the quiver CLI, whose training sets the SDK's must equal.
cargo build -q -p quiver-server --bin quiverd -p quiver-tools --bin quiver
rm -rf target/wheels
"$venv/bin/maturin" build -q -m python/Cargo.toml --profile dev -o target/wheels
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps target/wheels/quiver_store-*.whl
# From the repository root, so that the installed package (not python/quiver) is imported.
exec "$venv/bin/python" -m pytest -q python/tests "$@"
