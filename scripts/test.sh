#!/usr/bin/env bash
# README command 2: set up (if needed), lint, and run the test suite. Fails when no test runs.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --quick    lint, type check + the tests not marked slow (no end-to-end bundle CLI runs)
# Other arguments go to pytest, e.g. bash scripts/test.sh --quick -x tests/test_disyre.py
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for arg in "$@"; do
  if [ "$arg" = "--quick" ]; then args+=(-m "not slow"); else args+=("$arg"); fi
done
bash scripts/setup.sh
.venv/bin/ruff check .
(cd shared && ../.venv/bin/mypy)
exec .venv/bin/python -m pytest "${args[@]}"
