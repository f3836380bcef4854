"""Step functions of the conformance cases. Tiny, deterministic, standard library only.

Every target imports this module inside its step container/worker, so it must not
depend on anything but the Python standard library.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path


def emit(value):
    """Return the input unchanged (one output)."""
    return value


def add(a, b):
    return a + b


def describe(s: str, i: int, f: float, b: bool, l: list, d: dict) -> str:  # noqa: E741
    """Check that every parameter type arrives as itself, and summarise the values."""
    assert isinstance(s, str), type(s)
    assert isinstance(i, int) and not isinstance(i, bool), type(i)
    assert isinstance(f, float | int) and not isinstance(f, bool), type(f)
    assert isinstance(b, bool), type(b)
    assert isinstance(l, list), type(l)
    assert isinstance(d, dict), type(d)
    return f"{s}|{i}|{f}|{b}|{json.dumps(l, sort_keys=True)}|{json.dumps(d, sort_keys=True)}"


def all_types():
    """Parameter outputs of every type."""
    return {
        "s": "hello world",
        "i": 42,
        "f": 2.5,
        "b": True,
        "l": [1, "two", 3.0],
        "d": {"k": "v", "n": 1},
    }


def numbers():
    """Values a wire of doubles or sorted keys would change (SPEC §22 "Numbers are exact")."""
    return {
        "big": 2**53 + 1,
        "l": [1, 2.0, {"f": 2.0, "i": 2}],
        "d": {"z": 2.0, "a": 1, "m": [3.0, 2**53 + 1]},
    }


def write_file(text: str, out: str) -> None:
    Path(out).write_text(text)


def write_folder(n: int, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for k in range(n):
        Path(out, f"part-{k}.txt").write_text(str(k))


def read_file(path: str) -> str:
    return Path(path).read_text()


def count_folder(path: str) -> int:
    return len(os.listdir(path))


def square(x):
    return x * x


def total(values: list) -> float:
    return float(sum(values))


def flaky(run_id: str, key: str, failures: int) -> int:
    """Fail the first ``failures`` attempts of this run (counted in a temp file), then
    return the number of the attempt that succeeded."""
    folder = Path(tempfile.gettempdir(), "pipecast-flaky")
    folder.mkdir(exist_ok=True)
    counter = folder / f"{run_id}-{key}"
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt <= failures:
        raise RuntimeError(f"planned failure on attempt {attempt}")
    return attempt


def fail(message: str) -> None:
    raise RuntimeError(message)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def secret_length(name: str) -> int:
    """The length of a secret's value (never the value itself)."""
    return len(os.environ[name])


def status(status: str) -> str:
    return status


def add3(a, b, c):
    return a + b + c


def double(x):
    return 2 * x


def timed(run_id: str, key: str, seconds: float = 0.0, fail: bool = False) -> dict:
    """Sleep ``seconds`` and report when this step started and ended (step-side timing).

    Every call also appends ``{key, started, ended, failed}`` to
    ``<tempdir>/pipecast-timing/<run_id>.jsonl``, so a failing step leaves its end time too
    (the conformance suite checks SPEC §10 and ``parallelism`` from these lines).
    """
    started = time.time()
    time.sleep(seconds)
    ended = time.time()
    folder = Path(tempfile.gettempdir(), "pipecast-timing")
    folder.mkdir(exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    line = json.dumps({"key": key, "started": started, "ended": ended, "failed": fail})
    with open(folder / f"{safe}.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")
    if fail:
        raise RuntimeError(f"planned failure of {key}")
    return {"run_id": run_id, "key": key, "started": started, "ended": ended}


def score(auc: float, scores: str) -> None:
    """Write a Metrics artifact (SPEC §15) with pipecast.metrics, plus metadata."""
    from pipecast import metrics

    metrics.log(scores, auc=auc, rows=3)
    metrics.annotate(scores, source="cstep")


def describe_structured(cfg: dict) -> dict:
    """A structured input (SPEC §19) as received, with its artifact path read and each value's
    Python type named, so a lost type shows."""
    out = {k: [type(v).__name__, v] for k, v in cfg.items()}
    out["data"] = ["path", Path(cfg["data"]).read_text()]
    return out


def typed(value):
    return f"{type(value).__name__}:{value}"


def upto(n: int) -> list:
    return list(range(n))
