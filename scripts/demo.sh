#!/usr/bin/env bash
# Set up (idempotent) and run the main demo on the churn example: validate it, simulate
# it locally, and compile it for every target into build/demo/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PC=.venv/bin/pipecast
EX=examples/churn/pipeline.yaml
echo; echo "== validate"; $PC validate "$EX"
echo; echo "== simulate (container steps run on this host)"; $PC run "$EX" --containers host --run-dir build/demo/runs
for target in stepfunctions vertex azureml airflow; do
  echo; echo "== compile --target $target"
  $PC compile "$EX" --target "$target" -o "build/demo/$target"
done
echo; echo "demo: compiled files are in build/demo/"
