#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the lint and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTHON=${PYTHON:-python3}
"$PYTHON" -m ruff check jaxnotes configs tests benchmarks experiments
"$PYTHON" -m ruff format --check jaxnotes configs tests benchmarks experiments
"$PYTHON" -m pytest -q tests "$@"
