#!/usr/bin/env bash
# Create .venv with pipecast, the four backends and everything the tests and demo need.
# Needs only Python 3.11+ and pip; uv (from PyPI) does the resolving and installing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if ! "$PY" -m uv --version >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check uv
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m uv venv --quiet --python "$PY" .venv
fi
"$PY" -m uv pip install --quiet --python .venv/bin/python \
  -e '.[test]' \
  -e backends/stepfunctions -e backends/vertex -e backends/azureml -e backends/airflow \
  -e 'backends/kubeflow[test]'
echo "setup: .venv ready ($(.venv/bin/python --version))"
