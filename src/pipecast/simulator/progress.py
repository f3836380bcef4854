"""What ``pipecast run`` shows: a live progress bar on a terminal, and a summary table."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from pipecast.passes.analysis import PipelineIndex
from pipecast.simulator.engine import Hooks, Inst

_STYLE = {"succeeded": "green", "cached": "cyan", "skipped": "dim", "failed": "red", "not_run": "yellow"}


class LiveProgress(Hooks):
    """A rich progress bar (stderr) counting finished task runs; the total grows as
    fan-outs expand."""

    def __init__(self, index: PipelineIndex) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}"),
            console=Console(stderr=True),
            transient=True,
        )
        static = sum(1 for n in index.tasks() if not index.loops(n))
        self._task = self._progress.add_task(index.pipeline.name, total=static, running="")
        self._loop_tasks = sum(1 for n in index.tasks() if index.loops(n))
        self._running: dict[str, None] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def on_loop(self, inst: Inst, items: list[Any]) -> None:
        assert inst.node.body is not None
        inner = sum(1 for _ in _tasks_in(inst))
        self._progress.update(self._task, total=(self._progress.tasks[0].total or 0) + inner * len(items))

    def on_start(self, inst: Inst) -> None:
        self._running[inst.key] = None
        self._show()

    def on_done(self, inst: Inst) -> None:
        if inst.node.is_task:
            self._running.pop(inst.key, None)
            self._progress.advance(self._task)
            self._show()

    def _show(self) -> None:
        names = list(self._running)
        text = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        self._progress.update(self._task, running=text)


def _tasks_in(inst: Inst) -> Any:
    from pipecast.passes.analysis import Scope

    def walk(scope: Scope) -> Any:
        for node in scope.steps.values():
            if node.is_task:
                yield node
            elif node.group.is_loop:
                continue  # counted when that loop expands
            else:
                yield from walk(node.body)  # type: ignore[arg-type]
                if node.else_body is not None:
                    yield from walk(node.else_body)

    return walk(inst.node.body)  # type: ignore[arg-type]


def _seconds(entry: dict[str, Any]) -> float | None:
    try:
        a = datetime.fromisoformat(entry["started"].replace("Z", "+00:00"))
        b = datetime.fromisoformat(entry["ended"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, ValueError):
        return None
    return (b - a).total_seconds()


def print_summary(record: dict[str, Any], limit: int = 100) -> None:
    """The run's status, attempts and duration per step, as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{record['pipeline']} · {record['run_id']}", title_justify="left")
    table.add_column("step")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("note", overflow="fold", max_width=60)
    steps = record.get("steps", {})
    # run.json is written with sorted keys; "order" keeps the pipeline's writing order.
    order = [k for k in record.get("order", []) if k in steps]
    seen = set(order)
    keys = [*order, *(k for k in steps if k not in seen)]
    if len(keys) > limit:
        # A long run: the first rows, and every failed step wherever it is.
        shown = keys[:limit] + [k for k in keys[limit:] if steps[k].get("status") == "failed"]
    else:
        shown = keys
    for key in shown:
        e = steps[key]
        status = e.get("status", "")
        secs = _seconds(e)
        note = e.get("error") or e.get("reason") or ""
        if "cached_from" in e:
            note = f"from run {e['cached_from']['run_id']}"
        if e.get("metrics") and not note:
            # SPEC §15: metrics where the user looks.
            note = "; ".join(
                ", ".join(f"{k}={v:g}" for k, v in sorted(vals.items())) for vals in e["metrics"].values()
            )
        table.add_row(
            key,
            f"[{_STYLE.get(status, 'white')}]{status}[/]",
            str(e.get("attempts", "")) if "attempts" in e else "",
            f"{secs:.2f}s" if secs is not None else "",
            note,
        )
    if len(shown) < len(keys):
        table.add_row(f"... {len(keys) - len(shown)} more", "", "", "", "(--json shows every step)")
    console.print(table)
    counts: dict[str, int] = {}
    for e in steps.values():
        counts[e.get("status", "?")] = counts.get(e.get("status", "?"), 0) + 1
    if len(steps) > 10:
        console.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for v in (record.get("profile") or {}).get("violations", []):
        color = "red" if v["severity"] == "error" else "yellow"
        console.print(f"[{color}]{v['target']} {v['severity']}[/]: {v['step'] or 'pipeline'}: {v['message']}")
    status = record.get("status", "")
    console.print(f"run {record['run_id']}: [{_STYLE.get(status, 'white')}]{status}[/]")
    if record.get("error"):
        console.print(f"  {record['error']}")
    if status == "interrupted":
        console.print(
            f"  the process running it ended mid-run; finish it with 'pipecast run FILE --resume {record['run_id']}'"
        )
