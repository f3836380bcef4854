"""Helpers: pipelines are written as YAML strings into a temporary folder next to a small
steps module, then run with the simulator's Python API."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

STEPS = """
import json, os, sys, time

def emit(value):
    return value

def square(x):
    return x * x

def add(a, b):
    return a + b

def total(xs):
    return sum(xs)

def pair(x):
    return {"n": x, "s": str(x)}

def many():
    return {"i": 3, "f": 2.5, "s": "a b", "b": True, "l": [1, "x"], "d": {"k": [1, 2]}}

def echo_types(i, f, s, b, l, d):
    return [type(v).__name__ for v in (i, f, s, b, l, d)] + [i, f, s, b, l, d]

def write_file(text, out):
    with open(out, "w") as fh:
        fh.write(text)

def write_folder(names, out):
    os.makedirs(out)
    for n in names:
        with open(os.path.join(out, n), "w") as fh:
            fh.write(n.upper())

def read_file(f):
    with open(f) as fh:
        return fh.read()

def read_folder(d):
    return sorted(os.listdir(d)) + [open(os.path.join(d, n)).read() for n in sorted(os.listdir(d))]

def read_files(fs):
    return [open(f).read() for f in fs]

def flaky(counter, fail_times):
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as fh:
        fh.write(str(n + 1))
    if n < fail_times:
        raise RuntimeError(f"flaky failure {n + 1}")
    return n + 1

def boom(message):
    raise ValueError(message)

def status(s):
    return s

def stamp(folder, name, seconds):
    t0 = time.time()
    time.sleep(seconds)
    with open(os.path.join(folder, name), "w") as fh:
        fh.write(f"{t0} {time.time()}")
    return name

def counted(counter, value):
    with open(counter, "a") as fh:
        fh.write("x")
    return value

def sleep_if(flag, seconds, value):
    if os.path.exists(flag):
        time.sleep(seconds)
    return value

def exit3():
    os._exit(3)

def segfault():
    import ctypes
    ctypes.string_at(0)

def memory():
    raise MemoryError()

def spawn_and_hang(pidfile):
    import subprocess
    p = subprocess.Popen(["sleep", "60"])
    with open(pidfile, "w") as fh:
        fh.write(str(p.pid))
    time.sleep(60)

def show_secret(name):
    value = os.environ[name]
    print("the secret is", value)
    return value

def big(n):
    return "x" * n
"""


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs = tmp / "runs"
        (tmp / "steps.py").write_text(STEPS)

    def write(self, text: str, name: str = "pipeline.yaml") -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, text_or_path: str | Path, **options: Any) -> dict[str, Any]:
        from pipecast.api import load_checked
        from pipecast.simulator import run_pipeline

        path = text_or_path if isinstance(text_or_path, Path) else self.write(text_or_path)
        options.setdefault("run_dir", self.runs)
        options.setdefault("containers", "host")
        return run_pipeline(load_checked(path), **options)


@pytest.fixture
def sim(tmp_path: Path) -> Env:
    return Env(tmp_path)


def statuses(record: dict[str, Any]) -> dict[str, str]:
    return {k: e["status"] for k, e in record["steps"].items()}


def outputs(record: dict[str, Any], key: str) -> dict[str, Any]:
    return record["steps"][key].get("outputs", {})
