#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: lint, types, core, simulator, runtime, the
# backends and the conformance suite. Extra arguments go to pytest, e.g. `-m stepfunctions`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-tools.sh
# Lint, format and the complexity ratchet (C901, max-complexity in pyproject.toml).
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy src backends/*/src
# Two workers (the CI machine has 2 cores); session fixtures (moto, Airflow home) are per
# worker, and the conformance suite shares its Airflow batches between workers.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
