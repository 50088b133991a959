#!/bin/bash
# Run every sfexport test on a fresh Debian 12 machine, as root:
# install packages, build, install, then run pg_regress and TAP tests
# (clusters owned by the unprivileged "postgres" user).
# This is the command README.md gives and .ci/run calls.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

bash scripts/setup-machine.sh
echo "== build"
make -s clean >/dev/null
make -s 2>&1 | { grep -E "warning:|error:" && exit 1 || true; }
echo "== layers"
# src/ calls only downward (docs/ARCHITECTURE.md, "Layers"): no loop between
# files, no include or call of a layer above
graph=$(python3 scripts/calls-graph.py src) || { echo "$graph"; exit 1; }
echo "$graph" | tail -1
bash scripts/check-layers.sh
if [ "$(id -u)" -eq 0 ]; then
	echo "== make install"
	make -s install >/dev/null
fi
bash scripts/run-tests.sh "$@"
