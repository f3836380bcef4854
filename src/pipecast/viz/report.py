"""``pipecast report``: one self-contained HTML page for a simulator run.

It reads the run folder the simulator writes (``run.json`` with the journal laid over it,
``logs/``, ``artifacts/``; see :mod:`pipecast.simulator.run`) and the pipeline file the
record names, and shows:

* the pipeline graph coloured by status (a step inside a fan-out shows how its instances
  ended), the critical path outlined;
* a Gantt timeline of every attempt and the retry waits between them;
* a table of step instances: status, attempts, duration, outputs (artifact links relative
  to the page, so the run folder can be moved or zipped whole) and the tails of their logs.

Per-attempt times come from the record's ``attempt_times`` (written by the simulator);
for records without them, attempts are laid out from the step's start, end and retry
policy, and the page says so.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from markupsafe import Markup

from pipecast.diagnostics import Diagnostic, UserError

STATUSES = ("succeeded", "failed", "skipped", "cached", "not_run")
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 16_000
_INDEX_RE = re.compile(r"\[(\d+)\]")


def _time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 120:
        return f"{int(minutes)} m {sec:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} m"


def base_name(key: str) -> str:
    return key.split("[", 1)[0]


def loop_indices(key: str) -> tuple[int, ...]:
    return tuple(int(i) for i in _INDEX_RE.findall(key))


@dataclass
class Attempt:
    n: int
    start: float
    end: float
    ok: bool | None
    estimated: bool = False


@dataclass
class Row:
    """One step instance of the run."""

    key: str
    name: str
    entry: dict[str, Any]
    is_task: bool
    start: float | None
    end: float | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.entry.get("status", "not_run"))

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


# ---------------------------------------------------------------------------- reading


def find_run(run_id: str, run_dir: Path | None) -> Path:
    """The folder of a run (``<run_dir>/<run_id>``), or a run folder given directly."""
    from pipecast.simulator.run import DEFAULT_RUNS, RECORD

    direct = Path(run_id)
    if (direct / RECORD).is_file():
        return direct
    root = Path(run_dir) if run_dir is not None else DEFAULT_RUNS
    folder = root / run_id
    if (folder / RECORD).is_file():
        return folder
    known = sorted(p.name for p in root.iterdir() if (p / RECORD).is_file()) if root.is_dir() else []
    from pipecast.passes.analysis import nearest

    best = nearest(run_id, known)
    if best:
        hint = f"did you mean {best!r}?"
    elif known:
        hint = f"runs in {root}: {', '.join(known[-5:])}"
    else:
        hint = f"no runs in {root}; pass --run-dir, or start one with 'pipecast run FILE'"
    raise UserError(Diagnostic(f"no run {run_id!r} in {root}", hint=hint, code="no-run"))


def _attempts(entry: dict[str, Any], start: float | None, end: float | None, retry: Any) -> list[Attempt]:
    times = entry.get("attempt_times")
    if isinstance(times, list) and times:
        out = []
        for i, t in enumerate(times, 1):
            s, e = _time(t.get("started")), _time(t.get("ended"))
            if s is None:
                continue
            out.append(Attempt(i, s, e if e is not None else (end or s), t.get("ok")))
        return out
    n = int(entry.get("attempts") or 0)
    if n <= 0 or start is None or end is None:
        return []
    # No per-attempt times: equal attempts separated by the policy's waits (jitter: unknown,
    # the waits are scaled to fit the measured span).
    waits = []
    if retry is not None:
        for k in range(1, n):
            waits.append(min(retry.delay * retry.backoff ** (k - 1), retry.max_delay))
    total = end - start
    wait_sum = sum(waits)
    if wait_sum > total * 0.95 and wait_sum > 0:
        waits = [w * total * 0.9 / wait_sum for w in waits]
        wait_sum = sum(waits)
    each = max(0.0, (total - wait_sum) / n)
    out, t = [], start
    ok_last = entry.get("status") in ("succeeded", "cached")
    for i in range(1, n + 1):
        out.append(Attempt(i, t, t + each, ok_last if i == n else False, estimated=True))
        t += each + (waits[i - 1] if i <= len(waits) else 0.0)
    return out


def load_rows(record: dict[str, Any], index: Any | None) -> list[Row]:
    rows = []
    for key, entry in record.get("steps", {}).items():
        name = base_name(key)
        node = None
        if index is not None:
            try:
                node = index.node(name)
            except KeyError:
                node = None
        is_task = node.is_task if node is not None else "attempts" in entry
        start, end = _time(entry.get("started")), _time(entry.get("ended"))
        retry = (
            index.effective(node).retry if index is not None and node is not None and node.is_task else None
        )
        row = Row(key, name, entry, is_task, start, end)
        if is_task:
            row.attempts = _attempts(entry, start, end, retry)
        rows.append(row)
    order = {}
    if index is not None:
        order = {n.name: n.index for n in index.tasks()}
        order.update({n.name: n.index for n in index.walk()})
    rows.sort(
        key=lambda r: (r.start if r.start is not None else float("inf"), order.get(r.name, 1 << 30), r.key)
    )
    return rows


# ---------------------------------------------------------------------------- critical path


def _upstream(index: Any) -> dict[str, set[str]]:
    """Task name → the task names it (transitively, through groups) has to wait for."""
    from pipecast.passes.analysis import FINALLY

    direct: dict[str, set[str]] = {}

    def tasks_in(name: str) -> set[str]:
        node = index.node(name)
        if node.is_task:
            return {name}
        return {n.name for n in index.walk(node.body) if n.is_task} | (
            {n.name for n in index.walk(node.else_body) if n.is_task} if node.else_body else set()
        )

    for scope in index.scopes():
        deps = index.deps(scope)
        for name, ds in deps.items():
            waits = set().union(*(tasks_in(d) for d in ds)) if ds else set()
            direct[name] = waits
    out: dict[str, set[str]] = {}
    for node in index.tasks():
        if node.name == FINALLY and node is index.finally_node:
            out[FINALLY] = {n.name for n in index.walk() if n.is_task}
            continue
        waits = set(direct.get(node.name, set()))
        for group in index.ancestors(node):
            waits |= direct.get(group.name, set())
        out[node.name] = waits
    return out


def critical_path(rows: list[Row], index: Any | None) -> list[str]:
    """The chain of instances that decided when the run ended: from the task that ended
    last, step back to the upstream instance that ended last before it started."""
    tasks = [
        r for r in rows if r.is_task and r.end is not None and r.start is not None and r.status != "not_run"
    ]
    if not tasks or index is None:
        return []
    upstream = _upstream(index)
    loops = {n.name: len(index.loops(n)) for n in index.tasks()}
    by_name: dict[str, list[Row]] = {}
    for r in tasks:
        by_name.setdefault(r.name, []).append(r)
    cur: Row | None = max(tasks, key=lambda r: (r.end, r.key))
    path: list[str] = []
    seen: set[str] = set()
    while cur is not None and cur.key not in seen:
        seen.add(cur.key)
        path.append(cur.key)
        assert cur.start is not None
        idx = loop_indices(cur.key)
        best: Row | None = None
        for name in upstream.get(cur.name, set()):
            shared = min(loops.get(name, 0), loops.get(cur.name, 0))
            for cand in by_name.get(name, []):
                if cand.key in seen or cand.end is None or cand.end > cur.start + 0.05:
                    continue
                if loop_indices(cand.key)[:shared] != idx[:shared]:
                    continue
                if best is None or (cand.end, cand.key) > (best.end or 0.0, best.key):
                    best = cand
        cur = best
    return list(reversed(path))


# ---------------------------------------------------------------------------- Gantt


def _ticks(total: float) -> list[float]:
    if total <= 0:
        return [0.0]
    raw = total / 8
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    out, t = [], 0.0
    while t <= total + 1e-9:
        out.append(round(t, 6))
        t += step
    return out


def gantt_svg(rows: list[Row], origin: float, critical: set[str]) -> str:
    """Every attempt as a bar, retry waits hatched between them; critical path outlined."""
    from html import escape

    shown = [r for r in rows if r.is_task and r.start is not None and r.status != "not_run"]
    end = max((r.end or r.start or origin for r in shown), default=origin)
    total = max(end - origin, 1e-3)
    label_w, width, row_h, top = 190.0, 1100.0, 20.0, 26.0
    scale = (width - label_w - 20) / total
    height = top + row_h * len(shown) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" id="pc-gantt-svg">',
        '<defs><pattern id="g-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f1f2f5"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#b6bcc7" stroke-width="2"/></pattern></defs>',
    ]
    for t in _ticks(total):
        x = label_w + t * scale
        out.append(
            f'<line class="g-grid" x1="{x:.1f}" y1="{top - 6:.1f}" x2="{x:.1f}" y2="{height - 6:.1f}"/>'
            f'<text class="g-axis" x="{x:.1f}" y="{top - 10:.1f}" text-anchor="middle">{escape(_fmt(t) or "0")}</text>'
        )
    for i, r in enumerate(shown):
        y = top + i * row_h
        cls = "g-row" + (" pc-critical" if r.key in critical else "")
        out.append(f'<g class="{cls}" data-key="{escape(r.key)}">')
        label = r.key if len(r.key) <= 28 else r.key[:27] + "…"
        out.append(f'<text class="g-name" x="6" y="{y + 14:.1f}">{escape(label)}</text>')
        if not r.attempts:
            s = r.start or origin
            e = r.end or s
            w = max(2.0, (e - s) * scale)
            out.append(
                f'<rect class="g-attempt st-{escape(r.status)}" x="{label_w + (s - origin) * scale:.1f}" '
                f'y="{y + 4:.1f}" width="{w:.1f}" height="{row_h - 8:.1f}" rx="2">'
                f"<title>{escape(r.key)}: {escape(r.status)}</title></rect>"
            )
        prev_end = None
        for a in r.attempts:
            if prev_end is not None and a.start > prev_end:
                x = label_w + (prev_end - origin) * scale
                out.append(
                    f'<rect class="g-wait" x="{x:.1f}" y="{y + 6:.1f}" width="{(a.start - prev_end) * scale:.1f}" '
                    f'height="{row_h - 12:.1f}"><title>{escape(r.key)}: retry wait {escape(_fmt(a.start - prev_end))}'
                    f"</title></rect>"
                )
            st = "succeeded" if a.ok else ("failed" if a.ok is False else "running")
            if r.status == "cached":
                st = "cached"
            x = label_w + (a.start - origin) * scale
            w = max(2.0, (a.end - a.start) * scale)
            note = " (estimated)" if a.estimated else ""
            out.append(
                f'<rect class="g-attempt st-{st}" x="{x:.1f}" y="{y + 3:.1f}" width="{w:.1f}" height="{row_h - 6:.1f}" rx="2">'
                f"<title>{escape(r.key)} attempt {a.n}: {st}, {escape(_fmt(a.end - a.start))}{note}</title></rect>"
            )
            prev_end = a.end
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------- page


def _rel_link(uri: Any, page_dir: Path) -> str | None:
    """An artifact ``file://`` URI as a link relative to the page (portable with the folder)."""
    if not isinstance(uri, str) or not uri.startswith("file://"):
        return None
    path = Path(unquote(urlparse(uri).path))
    try:
        rel = os.path.relpath(path, page_dir)
    except ValueError:
        return uri
    return Path(rel).as_posix()


def _log_tail(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = data.splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _node_status(rows: list[Row]) -> tuple[str, str]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    for st in ("failed", "not_run", "running", "pending", "succeeded", "cached", "skipped"):
        if counts.get(st):
            status = st
            break
    else:
        status = "not_run"
    if status == "succeeded" and counts.get("cached"):
        status = "succeeded"
    if len(rows) == 1:
        r = rows[0]
        badge = {"succeeded": "ok", "cached": "cached", "skipped": "skipped", "failed": "failed"}.get(
            r.status, r.status.replace("_", " ")
        )
        if r.is_task and int(r.entry.get("attempts") or 0) > 1:
            badge += f" · {r.entry['attempts']} tries"
        return status, badge
    parts = [f"{n} {st.replace('_', ' ')}" for st, n in sorted(counts.items())]
    return status, f"{len(rows)} runs: " + ", ".join(parts)


def _load_pipeline(record: dict[str, Any]) -> tuple[Any, str | None]:
    """The run's pipeline file, loaded again, or why it cannot be."""
    file = record.get("file")
    if not file:
        return None, "the run record names no pipeline file"
    try:
        from pipecast.loader import load

        return load(file), None
    except UserError as exc:
        return None, f"the pipeline file {file} cannot be read any more ({exc.diagnostics[0].message})"


def _graph_parts(loaded: Any, rows: list[Row], crit_set: set[str]) -> tuple[str, dict[str, Any]]:
    """The graph's SVG coloured by the rows' statuses, and its items with their instances."""
    from pipecast.viz import html as vhtml
    from pipecast.viz.layout import svg
    from pipecast.viz.model import build, item_id

    graph = build(loaded.index)
    by_name: dict[str, list[Row]] = {}
    for r in rows:
        by_name.setdefault(r.name, []).append(r)
    status: dict[str, tuple[str, str]] = {}
    crit_nodes = set()
    for name, rs in by_name.items():
        try:
            node = loaded.index.node(name)
        except KeyError:
            continue
        nid = item_id(node)
        status[nid] = _node_status(rs)
        if any(r.key in crit_set for r in rs):
            crit_nodes.add(nid)
    for nid in graph.nodes:
        status.setdefault(nid, ("not_run", "not run"))
    svg_markup = svg(graph, status, crit_nodes)
    items = vhtml.items_data(graph)
    for nid, item in items.items():
        name = item["name"]
        if nid.startswith("e_"):
            continue
        instances = {
            r.key: r.status
            + (f", {r.entry.get('attempts')} attempt(s)" if r.is_task else "")
            + (f", {_fmt(r.duration)}" if r.duration is not None else "")
            for r in by_name.get(name, [])
        }
        item["settings"] = {"instances": instances or {"-": "no record"}, **item["settings"]}
    return svg_markup, items


def _row_outputs(r: Row, page_dir: Path) -> list[dict[str, Any]]:
    """A row's outputs (artifact URIs as links relative to the page) and metrics."""
    outputs: list[dict[str, Any]] = []
    for name, value in sorted((r.entry.get("outputs") or {}).items()):
        listed = value if isinstance(value, list) else [value]
        links = [_rel_link(v, page_dir) for v in listed]
        if listed and all(links):
            outputs.extend(
                {"name": name, "value": v, "link": link} for v, link in zip(listed, links, strict=True)
            )
        else:
            outputs.append({"name": name, "value": value, "link": None})
    for name, found in sorted((r.entry.get("metrics") or {}).items()):
        # SPEC §15: each metric of a Metrics output, as output.metric = number.
        outputs.extend({"name": f"{name}.{k}", "value": v, "link": None} for k, v in sorted(found.items()))
    return outputs


def _table_row(r: Row, folder: Path, page_dir: Path, origin: float, crit_set: set[str]) -> dict[str, Any]:
    """One row of the report's table."""
    logs = []
    for rel in r.entry.get("logs") or []:
        tail = _log_tail(folder / rel)
        logs.append(
            {"name": rel, "link": _rel_link((folder / rel).resolve().as_uri(), page_dir), "tail": tail}
        )
    return {
        "key": r.key,
        "status": r.status,
        "kind": "task" if r.is_task else "group",
        "attempts": r.entry.get("attempts", ""),
        "duration": _fmt(r.duration),
        "start": _fmt(r.start - origin) if r.start is not None else "",
        "outputs": _row_outputs(r, page_dir),
        "logs": logs,
        "error": r.entry.get("error") or "",
        "errors": [e for e in r.entry.get("errors") or [] if e and e != r.entry.get("error")],
        "reason": r.entry.get("reason") or "",
        "critical": r.key in crit_set,
        "cached_from": r.entry.get("cached_from"),
    }


def render_report(folder: Path, out: Path) -> str:
    """The report page of the run in ``folder`` for a page written at ``out``."""
    from pipecast.simulator.run import read_record
    from pipecast.viz import html as vhtml

    record = read_record(folder)
    loaded, problem = _load_pipeline(record)
    index = loaded.index if loaded is not None else None
    rows = load_rows(record, index)
    critical = critical_path(rows, index)
    crit_set = set(critical)
    starts = [r.start for r in rows if r.start is not None]
    origin = _time(record.get("started")) or (min(starts) if starts else 0.0)
    ends = [r.end for r in rows if r.end is not None]
    run_end = _time(record.get("ended")) or (max(ends) if ends else origin)
    page_dir = out.parent.resolve()
    svg_markup, items = _graph_parts(loaded, rows, crit_set) if loaded is not None else ("", {})
    table = [_table_row(r, folder, page_dir, origin, crit_set) for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        if r.is_task:
            counts[r.status] = counts.get(r.status, 0) + 1
    estimated = any(a.estimated for r in rows for a in r.attempts)
    return (
        vhtml.environment()
        .get_template("viz/report.html.j2")
        .render(
            title=f"{record.get('pipeline', 'run')} · {record.get('run_id', folder.name)}",
            heading=record.get("pipeline", "run"),
            description="",
            run_id=record.get("run_id", folder.name),
            status=record.get("status", "unknown"),
            duration=_fmt(run_end - origin),
            params=record.get("params", {}),
            outputs=record.get("outputs", {}),
            counts=sorted(counts.items()),
            problem=problem,
            svg=Markup(svg_markup),
            has_graph=bool(svg_markup),
            data_json=vhtml.script_json(
                {"items": items, "pipeline": record.get("pipeline"), "run_id": record.get("run_id")}
            ),
            gantt=Markup(gantt_svg(rows, origin, crit_set)),
            critical=critical,
            estimated=estimated,
            rows=table,
            params_json={
                k: json.dumps(v, sort_keys=True) for k, v in sorted(record.get("params", {}).items())
            },
            outputs_json={
                k: json.dumps(v, sort_keys=True) for k, v in sorted((record.get("outputs") or {}).items())
            },
        )
    )


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report of the run in ``run_dir`` (a run folder) and return the page's path.

    Args:
        run_dir: the run's folder (``.pipecast/runs/<run_id>``).
        out: where to write it (default ``<run_dir>/report.html``).
    """
    from pipecast.io import atomic_write

    folder = Path(run_dir)
    target = Path(out) if out is not None else folder / "report.html"
    atomic_write(target, render_report(folder, target))
    return target
