#!/usr/bin/env bash
# Create .venv with exactly the versions in uv.lock: pipecast, every backend under backends/
# (editable) and everything the tests and demo need (the `test` extra).
# Needs only Python 3.11+ and pip; uv (from PyPI) does the installing.
# Updating a dependency: edit a pyproject.toml, run `python3 -m uv lock`, commit uv.lock
# (docs/CONTRIBUTING.md, "Dependencies and the lock file").
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if ! "$PY" -m uv --version >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check 'uv>=0.5'
fi
if ! "$PY" -m uv lock --check --quiet 2>/dev/null; then
  if [ -n "${CI:-}" ]; then
    echo "setup: uv.lock does not match the pyproject.toml files: run 'python3 -m uv lock' and commit uv.lock" >&2
    exit 1
  fi
  # A dependency was added or changed without re-locking: lock it (other pins stay as they are).
  echo "setup: uv.lock was out of date with a pyproject.toml; updated it: commit uv.lock with your change" >&2
  "$PY" -m uv lock --quiet
fi
# --inexact: packages installed by hand stay; every locked package gets its locked version.
"$PY" -m uv sync --locked --inexact --quiet --python "$PY" --all-packages --extra test
echo "setup: .venv ready ($(.venv/bin/python --version))"
