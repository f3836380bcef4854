"""The simulated timeline of a dry run: when each task ran in virtual time, the total
duration, and the critical path (the chain of steps that decided when the run ended)."""

from __future__ import annotations

from typing import Any

from pipecast.simulator.engine import Engine, Inst


def timeline(engine: Engine) -> dict[str, Any]:
    rows = []
    for key, inst in engine.insts.items():
        if inst.node.is_task and inst.started is not None and inst.status != "not_run":
            rows.append(
                {
                    "step": key,
                    "start": round(inst.started, 3),
                    "end": round(inst.ended or inst.started, 3),
                    "status": inst.status,
                    "attempts": inst.attempts,
                }
            )
    rows.sort(key=lambda r: (r["start"], r["end"], r["step"]))
    end = max((float(r["end"]) for r in rows), default=0.0)  # type: ignore[arg-type]
    return {"duration": end, "tasks": rows, "critical_path": critical_path(engine)}


def _last_task(inst: Inst | None) -> Inst | None:
    seen = 0
    while inst is not None and inst.node.is_group and seen < 10_000:
        inst = inst.last_child
        seen += 1
    return inst


def critical_path(engine: Engine) -> list[str]:
    """Walk back from the task that ended last through what made each step ready."""
    tasks = [
        i for i in engine.insts.values() if i.node.is_task and i.ended is not None and i.status != "not_run"
    ]
    if not tasks:
        return []
    cur: Inst | None = max(tasks, key=lambda i: (i.ended, i.node.index))
    path: list[str] = []
    guard = set()
    while cur is not None and id(cur) not in guard:
        guard.add(id(cur))
        if cur.node.is_task and cur.status in ("succeeded", "failed", "cached"):
            path.append(cur.key)
        cur = _last_task(cur.cause) if cur.cause is not None else None
    return list(reversed(path))


def render_timeline(data: dict[str, Any], width: int = 40, limit: int = 60) -> str:
    """A text Gantt chart (first ``limit`` tasks) with the critical path."""
    rows = data["tasks"]
    total = data["duration"] or 1.0
    lines = [f"simulated duration: {data['duration']:g}s, {len(rows)} task runs"]
    name_w = min(30, max((len(r["step"]) for r in rows[:limit]), default=4))
    for r in rows[:limit]:
        a = int(r["start"] / total * width)
        b = max(a + 1, int(r["end"] / total * width))
        bar = " " * a + ("#" if r["status"] in ("succeeded", "cached") else "x") * (b - a)
        lines.append(
            f"  {r['step'][:name_w]:<{name_w}} |{bar:<{width}}| {r['start']:g}s-{r['end']:g}s {r['status']}"
        )
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more")
    if data["critical_path"]:
        cp = data["critical_path"]
        shown = cp if len(cp) <= 12 else [*cp[:5], "...", *cp[-5:]]
        lines.append(f"critical path ({len(cp)} steps): " + " -> ".join(shown))
    return "\n".join(lines)
