"""The ``pipecast verify --report`` page: both runs' timelines and the comparison.

Rendered from ``templates/verify/report.html.j2`` with autoescaping (every value from a
pipeline or a record is escaped); self-contained, no script, no network request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipecast.verify.records import _key_order, show


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def timeline(record: dict[str, Any]) -> dict[str, Any]:
    """Bars (left and width in percent of the run) of the steps that have times."""
    spans = []
    for key, entry in (record.get("steps") or {}).items():
        start, end = _time(entry.get("started")), _time(entry.get("ended"))
        if start is not None:
            spans.append((key, entry.get("status", ""), start, end if end is not None else start))
    if not spans:
        return {"rows": [], "seconds": 0.0}
    t0 = min(s for _, _, s, _ in spans)
    t1 = max(e for _, _, _, e in spans)
    total = max(t1 - t0, 1e-6)
    rows = [
        {
            "key": key,
            "status": status,
            "left": round(100 * (s - t0) / total, 2),
            "width": max(round(100 * (e - s) / total, 2), 0.5),
            "seconds": round(e - s, 2),
        }
        for key, status, s, e in sorted(spans, key=lambda r: (r[2], _key_order(r[0])))
    ]
    return {"rows": rows, "seconds": round(total, 2)}


def render(result: Any) -> str:
    """The HTML page of a :class:`pipecast.verify.run.Verification`."""
    from pipecast.viz.html import environment

    bad = {(d.where, d.field) for d in result.differences}
    sim, got = result.simulator.record, result.local.record
    rows = []
    ss, gs = sim.get("steps") or {}, got.get("steps") or {}
    for key in sorted(set(ss) | set(gs), key=_key_order):
        a, b = ss.get(key) or {}, gs.get(key) or {}
        fields = ["status"] + (["attempts"] if "attempts" in a or "attempts" in b else [])
        for field in fields:
            rows.append(
                (key, field, str(a.get(field, "-")), str(b.get(field, "-")), (f"step {key}", field) in bad)
            )
        ao, bo = a.get("outputs") or {}, b.get("outputs") or {}
        for name in sorted(set(ao) | set(bo)):
            field = f"output {name}"
            rows.append(
                (key, field, show(ao.get(name, "-")), show(bo.get(name, "-")), (f"step {key}", field) in bad)
            )
    top = [
        ("pipeline", "status", str(sim.get("status")), str(got.get("status")), ("pipeline", "status") in bad)
    ]
    so, go = sim.get("outputs") or {}, got.get("outputs") or {}
    for name in sorted(set(so) | set(go)):
        field = f"output {name}"
        top.append(
            ("pipeline", field, show(so.get(name, "-")), show(go.get(name, "-")), ("pipeline", field) in bad)
        )
    return (
        environment()
        .get_template("verify/report.html.j2")
        .render(
            result=result,
            rows=top + rows,
            sides=[
                ("simulator", result.simulator.seconds, timeline(sim)),
                (result.target, result.local.seconds, timeline(got)),
            ],
        )
    )
