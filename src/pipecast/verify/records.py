"""Two run records side by side: completing an engine's record, artifacts by content, and
the differences.

Engines that report tasks only (kfp.local's trace, Airflow task instances) get the entries
they cannot see from the pipeline's own structure (:func:`complete`), the same way for
every target. Artifacts are compared by content (:func:`digest_artifacts`): a URI names
where a file went, which differs by target, not what it holds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipecast.passes import imports
from pipecast.passes.analysis import PipelineIndex, is_artifact_type
from pipecast.passes.resolve import RefNode, StepOutput

_INDEX = re.compile(r"\[\d+\]")

#: Maps an artifact URI to a readable local path (``None``: cannot be read).
Fetch = Callable[[str, Path], Path | None]


def base_name(key: str) -> str:
    """``cell[0][2]`` → ``cell``."""
    return _INDEX.sub("", key)


def complete(record: dict[str, Any], keys: list[str], index: PipelineIndex) -> dict[str, Any]:
    """Add the entries an executor cannot report: tasks that never ran, and groups.

    A task absent from the executor's report did not run: ``skipped`` when the run
    succeeded (a false condition), ``not_run`` when it failed. A group's status follows its
    inner tasks (failed if one failed, succeeded if one ran or the engine lists the group's
    condition as held in ``record["_held"]``, else skipped; in a failed run, ``not_run`` when
    nothing inside was skipped: the group never started). Added entries
    are marked ``"derived": True`` (their outputs are unknown, not missing).
    """
    steps = record.setdefault("steps", {})
    for key in keys:
        if key in steps:
            continue
        name = base_name(key)
        if name in index.finals:
            continue  # a group's finally that did not run has no entry (SPEC §18, the simulator's)
        node = index.nodes.get(name)
        if node is not None and node.is_group:
            inner_names = {n.name for n in index.walk(node.body)}
            if node.else_body is not None:
                inner_names |= {n.name for n in index.walk(node.else_body)}
            # Inside a loop, only the inner entries of this group's own item (``check[0]`` reads
            # ``train[0]``, never ``train[1]``).
            suffix = key[len(name) :]
            depth = len(_INDEX.findall(suffix))
            inner = [
                v.get("status")
                for k, v in steps.items()
                # A loop's inner task without an index is an unexpanded mapped task (Airflow
                # reports one, skipped, for an empty list): no item ran.
                if base_name(k) in inner_names
                and (k != base_name(k) or not node.group.is_loop)
                and "".join(_INDEX.findall(k[len(base_name(k)) :])[:depth]) == suffix
            ]
            status = (
                "failed"
                if "failed" in inner
                else "succeeded"
                if any(s == "succeeded" for s in inner)
                else "skipped"
            )
            if node.group.is_loop and not inner and _source_skipped(index, node, key, steps):
                steps[key] = {"status": "skipped", "derived": True}  # whatever its guard did
                continue
            if status == "skipped" and key in (record.get("_held") or ()):
                status = "succeeded"  # the engine saw its condition hold; every step inside skipped
            plain_or_loop = node.group.is_loop or node.group.is_plain
            if status == "skipped" and plain_or_loop and record.get("status") == "succeeded":
                # No item at all (an empty list), or items whose steps were all skipped (the
                # engine reported them, so the loop ran), or a plain group (a sub-pipeline
                # without when) whose steps were all skipped: the group completed (SPEC §22 /
                # issues 14, 19), unless an enclosing group was skipped.
                outer = [steps.get(a.name, {}).get("status") for a in index.ancestors(node)]
                status = "skipped" if "skipped" in outer else "succeeded"
            if status == "skipped" and record.get("status") != "succeeded" and "skipped" not in inner:
                # Nothing inside ran and no condition skipped it: the run had failed before the
                # group started (SPEC §10), as the simulator records it.
                status = "not_run"
        else:
            status = "skipped" if record.get("status") == "succeeded" else "not_run"
        entry: dict[str, Any] = {"status": status, "derived": True}
        if node is not None and node.is_group and status == "succeeded":
            # Outputs an engine cannot report for a group: those of the steps it read them from.
            if node.group.is_loop:
                values = loop_outputs(index, node, key[len(name) :], steps)
            else:
                values = group_outputs(index, node, key[len(name) :], steps)
            if values is not None:
                entry = {"status": status, "outputs": values}
        steps[key] = entry
    return record


def _source_skipped(index: PipelineIndex, node: Any, key: str, steps: dict[str, Any]) -> bool:
    """Whether a loop's list is the output of a step the run skipped: the loop is skipped
    with it (SPEC §22, as the simulator records it), not an empty loop that completed."""
    items = node.resolved.for_each
    if not isinstance(items, RefNode) or items.ref.kind != "step" or items.ref.name not in index.nodes:
        return False
    producer = index.nodes[items.ref.name]
    depth = sum(1 for a in index.ancestors(producer) if a.group.is_loop)
    source = producer.name + "".join(_INDEX.findall(key[len(node.name) :])[:depth])
    return bool(steps.get(source, {}).get("status") == "skipped")


def _indices(key: str) -> list[int]:
    return [int(i) for i in re.findall(r"\[(\d+)\]", key)]


def loop_outputs(
    index: PipelineIndex, node: Any, suffix: str, steps: dict[str, Any]
) -> dict[str, Any] | None:
    """A ``for_each`` group's outputs collected from its items' entries (keys ending in
    ``suffix`` plus the item index), in item order, leaving out the items whose producer was
    skipped (docs/semantics.md); ``None`` when an item's value is unknown. The items are those
    some inner step reported (an empty loop reports none: every output is ``[]``)."""
    inner_names = {n.name for n in index.walk(node.body)}
    depth = len(_indices(suffix))
    items: set[int] = set()
    for k in steps:
        found = _indices(k)
        if base_name(k) in inner_names and len(found) > depth and found[:depth] == _indices(suffix):
            items.add(found[depth])
    values: dict[str, Any] = {}
    for out_name, value in index.resolved.step(node).outputs.items():
        if not isinstance(value, StepOutput):
            return None
        producer = index.nodes[value.producer]
        collected = []
        for i in sorted(items):
            item = f"{suffix}[{i}]"
            if producer.is_group:
                got = (
                    loop_outputs(index, producer, item, steps)
                    if producer.group.is_loop
                    else group_outputs(index, producer, item, steps)
                )
                if got is None or value.output not in got:
                    return None
                collected.append(got[value.output])
                continue
            entry = steps.get(value.producer + item) or {}
            if entry.get("status") == "skipped":
                continue
            outputs = entry.get("outputs") or {}
            if entry.get("status") != "succeeded" or value.output not in outputs:
                return None
            collected.append(outputs[value.output])
        values[out_name] = collected
    return values


def group_outputs(
    index: PipelineIndex, node: Any, suffix: str, steps: dict[str, Any]
) -> dict[str, Any] | None:
    """A non-loop group's outputs read from its steps' entries (keys ending in ``suffix``,
    the group's own loop indices): those of the branch whose producers reported some (a
    ``when`` group's then-branch, else its ``else``); ``None`` when neither did. An output
    whose producer was skipped is left out (docs/semantics.md, "Skipped producers")."""
    resolved = index.resolved.step(node)
    for outputs in (resolved.outputs, resolved.else_outputs):
        if not outputs or not all(isinstance(v, StepOutput) for v in outputs.values()):
            continue
        values = {}
        for out_name, value in outputs.items():
            assert isinstance(value, StepOutput)
            got = (steps.get(value.producer + suffix) or {}).get("outputs") or {}
            if value.output in got:
                values[out_name] = got[value.output]
        if values:
            return values
    return None


def read_back(pipeline: Any, read: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The SPEC §12 record of a run of ``pipeline`` compiled for a target that inlines
    sub-pipelines: ``read`` builds it from the engine's report given the pipeline the
    compile worked on (:func:`pipecast.passes.inline.inline_plain_groups`), and the keys
    the spec names come back (:func:`restore_inlined_groups`)."""
    from pipecast.passes.inline import inline_plain_groups

    compiled = inline_plain_groups(pipeline)
    record = read(compiled)
    if compiled is pipeline:
        return record
    return restore_inlined_groups(record, PipelineIndex(pipeline))


def restore_inlined_groups(record: dict[str, Any], index: PipelineIndex) -> dict[str, Any]:
    """A record of a target that compiled ``index``'s pipeline with its plain groups inlined
    (:mod:`pipecast.passes.inline`), keyed as SPEC §17 says.

    Step names the compile flattened (``prep__clean``) get their dotted names back
    (``prep.clean[1]``), and each inlined group (a sub-pipeline ``uses:`` step) gets its own
    entry (``prep[1]``) back from its steps' entries: ``failed`` if one failed, else
    ``succeeded`` if one ran, else ``not_run`` if one never started, else ``skipped`` (but
    ``succeeded`` outside any ``when`` group: it ran, its steps skipped themselves); its
    outputs are the entries' outputs its ``outputs`` read.
    """
    from pipecast.passes.inline import flat_names

    names = {flat: dotted for dotted, flat in flat_names(index.pipeline).items()}
    steps = record.get("steps")
    if not names or not isinstance(steps, dict):
        return record
    renamed: dict[str, Any] = {}
    for key, entry in steps.items():
        base = base_name(key)
        renamed[names.get(base, base) + key[len(base) :]] = entry
    for node in reversed(list(index.walk())):  # innermost first: a group reads nested groups
        if not (node.is_group and node.group.is_plain) or node.name in renamed:
            continue
        inner = {n.name for n in index.walk(node.body)}
        depth = sum(1 for a in index.ancestors(node) if a.group.is_loop)
        by_suffix: dict[str, list[dict[str, Any]]] = {}
        for key, entry in renamed.items():
            base = base_name(key)
            if base in inner and isinstance(entry, dict):
                suffix = "".join(_INDEX.findall(key[len(base) :])[:depth])
                by_suffix.setdefault(suffix, []).append(entry)
        for suffix, entries in sorted(by_suffix.items()):
            statuses = {e.get("status") for e in entries}
            status = (
                "failed"
                if "failed" in statuses
                else "succeeded"
                if statuses & {"succeeded", "cached"}
                else "not_run"
                if "not_run" in statuses
                else "skipped"
            )
            if status == "skipped" and not any(a.group.when is not None for a in index.ancestors(node)):
                # Every step inside skipped itself (their own conditions): the sub-pipeline ran
                # and completed, as the simulator records it. Inside a when group, the steps may
                # have been skipped with that group instead, so the entry stays skipped there.
                status = "succeeded"
            group: dict[str, Any] = {"status": status}
            if status == "succeeded":
                group["outputs"] = group_outputs(index, node, suffix, renamed) or {}
            renamed[node.name + suffix] = group
    record["steps"] = renamed
    return record


# ------------------------------------------------------------------------------ artifacts


def _local(uri: str, base_dir: Path | None = None) -> Path | None:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if uri.startswith("/"):
        return Path(uri)
    if base_dir is not None and uri and imports.is_local(uri):
        # A relative path a target passed through as given (an import step's URI, SPEC §14):
        # relative to the pipeline file's folder, never to the working directory.
        return imports.local_path(uri, base_dir)
    return None


def content_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, or of a folder's sorted relative names and contents."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    else:
        h.update(path.read_bytes())
    return "sha256:" + h.hexdigest()


def _digest(value: Any, fetch: Fetch | None, scratch: Path, base_dir: Path | None = None) -> Any:
    if isinstance(value, list):
        return [_digest(v, fetch, scratch, base_dir) for v in value]
    if not isinstance(value, str):
        return value
    # The engine's own reading first (an Azure ML mount is a folder holding the file).
    path = fetch(value, scratch) if fetch is not None else None
    if path is None:
        path = _local(value, base_dir)
    if path is None or not path.exists():
        return {"artifact": "unreadable", "uri": value}
    return {"artifact": content_digest(path)}


def output_types(index: PipelineIndex) -> dict[str, dict[str, str]]:
    """Step name → output → declared type; ``""`` → the pipeline outputs' types."""
    out: dict[str, dict[str, str]] = {}
    nodes = list(index.walk()) + ([index.finally_node] if index.finally_node else [])
    for node in nodes:
        out[node.name] = {name: index.output_type(node, name) or "any" for name in index.output_names(node)}
    top: dict[str, str] = {}
    for name, value in index.resolved.outputs.items():
        if isinstance(value, RefNode):
            top[name] = value.type
    out[""] = top
    return out


def digest_artifacts(
    record: dict[str, Any],
    index: PipelineIndex,
    scratch: Path,
    fetch: Fetch | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """A copy of ``record`` whose artifact outputs are ``{"artifact": "sha256:..."}``;
    a relative local path is read from ``base_dir`` (the pipeline file's folder)."""
    types = output_types(index)
    scratch.mkdir(parents=True, exist_ok=True)

    def convert(outputs: Any, owner: str) -> Any:
        if not isinstance(outputs, dict):
            return outputs
        known = types.get(owner, {})
        return {
            k: _digest(v, fetch, scratch, base_dir) if is_artifact_type(known.get(k, "any")) else v
            for k, v in outputs.items()
        }

    out = dict(record)
    out["outputs"] = convert(record.get("outputs") or {}, "")
    out["steps"] = {
        key: {**entry, "outputs": convert(entry["outputs"], base_name(key))}
        if isinstance(entry, dict) and "outputs" in entry
        else entry
        for key, entry in (record.get("steps") or {}).items()
    }
    return out


# ------------------------------------------------------------------------------ differences


@dataclass(frozen=True)
class Difference:
    """One field where the two runs disagree."""

    where: str  # "pipeline" or "step train[1]"
    field: str  # "status", "attempts", "output auc"
    simulator: Any
    target: Any

    def render(self, target: str) -> str:
        return f"{self.where}: {self.field}: simulator {show(self.simulator)}, {target} {show(self.target)}"

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "field": self.field, "simulator": self.simulator, "target": self.target}


MISSING = "<missing>"


def show(value: Any) -> str:
    if isinstance(value, dict) and "artifact" in value:
        digest = str(value["artifact"])
        return digest[:19] if digest.startswith("sha256:") else f"<{digest}: {value.get('uri')}>"
    if value in (MISSING, "<not reported>"):
        return str(value)
    import json

    return json.dumps(value, sort_keys=True, default=str)


def same(a: Any, b: Any) -> bool:
    """Equal as run-record values: numbers within 1e-9, booleans only to booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a == b and type(a) is type(b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) < 1e-9
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


#: Statuses whose attempts and outputs are compared.
RAN = ("succeeded", "failed")


def differences(sim: dict[str, Any], got: dict[str, Any]) -> list[Difference]:
    """Every field on which two (completed, digested) run records disagree, in key order."""
    out: list[Difference] = []
    if sim.get("status") != got.get("status"):
        out.append(Difference("pipeline", "status", sim.get("status"), got.get("status")))
    so, go = sim.get("outputs") or {}, got.get("outputs") or {}
    for name in sorted(set(so) | set(go)):
        a, b = so.get(name, MISSING), go.get(name, MISSING)
        if not same(a, b):
            out.append(Difference("pipeline", f"output {name}", a, b))
    ss, gs = sim.get("steps") or {}, got.get("steps") or {}
    for key in sorted(set(ss) | set(gs), key=_key_order):
        a_entry, b_entry = ss.get(key), gs.get(key)
        where = f"step {key}"
        if a_entry is None or b_entry is None:
            out.append(
                Difference(
                    where,
                    "status",
                    (a_entry or {}).get("status", MISSING),
                    (b_entry or {}).get("status", MISSING),
                )
            )
            continue
        if a_entry.get("status") != b_entry.get("status"):
            out.append(Difference(where, "status", a_entry.get("status"), b_entry.get("status")))
            continue
        if a_entry.get("status") not in RAN:
            continue
        if "attempts" in a_entry and "attempts" in b_entry and a_entry["attempts"] != b_entry["attempts"]:
            out.append(Difference(where, "attempts", a_entry["attempts"], b_entry["attempts"]))
        if a_entry.get("status") != "succeeded" or b_entry.get("derived"):
            continue  # a derived entry's outputs are unknown (consumers of them are compared)
        ao, bo = a_entry.get("outputs") or {}, b_entry.get("outputs") or {}
        for name in sorted(set(ao) | set(bo)):
            a, b = ao.get(name, MISSING), bo.get(name, MISSING)
            if not same(a, b):
                out.append(Difference(where, f"output {name}", a, b))
    return out


def _key_order(key: str) -> tuple[Any, ...]:
    return (base_name(key), [int(i) for i in re.findall(r"\[(\d+)\]", key)])
