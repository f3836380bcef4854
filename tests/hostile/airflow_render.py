"""Load one generated DAG file and render the templated fields of its container tasks the
way Airflow does before it runs a task; print ``{task_id: {field: rendered}}`` as JSON."""

import json
import sys

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
if bag.import_errors:
    print(json.dumps({"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}}))
    sys.exit(0)
context = {"dag_run": {"conf": {"img": "attacker/image"}}, "params": {}, "run_id": "r"}
out = {}
for task in (t for dag_id in sorted(bag.dag_ids) for t in bag.get_dag(dag_id).tasks):
    env = task.dag.get_template_env()
    fields = {}
    for name in ("image", "namespace"):
        if hasattr(task, name):
            fields[name] = task.render_template(getattr(task, name), context, env)
    cmd = getattr(task, "arguments", None) or getattr(task, "command", None)
    if cmd:
        args = list(cmd)
        if "--artifact-root" in args:
            i = args.index("--artifact-root") + 1
            fields["artifact_root"] = task.render_template(args[i], context, env)
    out[f"{task.dag_id}.{task.task_id}"] = fields
print(json.dumps(out))
