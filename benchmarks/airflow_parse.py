"""DagBag parse time: a pipecast-generated 1,000-task DAG vs the same DAG written by hand.

Run: ``.venv/bin/python benchmarks/airflow_parse.py [--tasks 1000] [--repeat 5]``.

Both DAGs have the same 1,000 python steps in a chain of 10-step layers (every step waits for
one step of the previous layer). The hand-written one is what a careful Airflow user writes:
one ``PythonOperator`` per task with a module-level callable and ``>>`` edges. Each file is
parsed ``--repeat`` times by a fresh ``DagBag`` in a child process (so module caches do not
help either side); the table shows the median. Goal: the generated file parses no slower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=True)
took = time.perf_counter() - t
assert not bag.import_errors, bag.import_errors
print(json.dumps({"seconds": took, "tasks": sum(len(d.tasks) for d in bag.dags.values())}))
"""


def pipeline(n: int) -> dict:
    steps: dict[str, dict] = {}
    for i in range(n):
        inputs: dict[str, object] = {"i": i}
        step = {"run": {"python": "bench_steps:work"}, "inputs": inputs, "outputs": {"output": "int"}}
        if i >= 10:
            inputs["up"] = "{{ steps.s" + str(i - 10) + ".outputs.output }}"
        steps[f"s{i}"] = step
    return {"pipecast": 1, "name": "bench-generated", "steps": steps}


def hand_written(n: int) -> str:
    lines = [
        "import datetime",
        "",
        "from airflow.providers.standard.operators.python import PythonOperator",
        "from airflow.sdk import DAG",
        "",
        "",
        "def work(i, up=None):",
        "    return i",
        "",
        "",
        "with DAG(",
        '    dag_id="bench-hand",',
        "    schedule=None,",
        "    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),",
        "    catchup=False,",
        ") as dag:",
    ]
    for i in range(n):
        lines.append(
            f'    s{i} = PythonOperator(task_id="s{i}", python_callable=work, op_kwargs={{"i": {i}}})'
        )
        if i >= 10:
            lines.append(f"    s{i - 10} >> s{i}")
    return "\n".join(lines) + "\n"


def parse_times(path: Path, repeat: int, env: dict[str, str]) -> tuple[float, int]:
    times, tasks = [], 0
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", PARSE, str(path)], capture_output=True, text=True, env=env, check=True
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(data["seconds"])
        tasks = data["tasks"]
    return statistics.median(times), tasks


def main() -> None:
    import yaml

    from pipecast.api import compile_pipeline, load_checked

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipecast-bench-") as tmp:
        root = Path(tmp)
        dags = root / "dags"
        dags.mkdir()
        src = root / "pipeline.yaml"
        src.write_text(yaml.safe_dump(pipeline(args.tasks)))
        result = compile_pipeline(load_checked(src), "airflow", {})
        ((name, text),) = result.files.items()
        generated = dags / name
        generated.write_text(text)
        hand = dags / "bench_hand.py"
        hand.write_text(hand_written(args.tasks))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow.db'}",
        }
        rows = []
        for label, path in (("hand-written PythonOperators", hand), ("pipecast generated", generated)):
            median, tasks = parse_times(path, args.repeat, env)
            rows.append((label, tasks, path.stat().st_size, median))
    print(f"{'DAG file':<30} {'tasks':>6} {'bytes':>9} {'DagBag parse (median s)':>24}")
    for label, tasks, size, median in rows:
        print(f"{label:<30} {tasks:>6} {size:>9} {median:>24.3f}")
    ratio = rows[1][3] / rows[0][3]
    print(f"\ngenerated / hand-written: {ratio:.2f}x  (goal: <= 1.00, 5% noise allowed)")


if __name__ == "__main__":
    main()
