"""Step functions the runtime tests run (imported in child processes via python_path)."""

import os
import subprocess
import sys
import time
from pathlib import Path


def noop():
    return None


def add(a, b):
    return a + b


def every_type(n):
    return {"s": f"n={n}", "i": n, "f": n, "b": n > 1, "l": [n, "x"], "d": {"k": n}}


def as_dict(n):
    return {"k": n}


def wrong_type():
    return "3"


def missing_key():
    return {"a": 1}


def extra_key():
    return {"a": 1, "b": 2, "c": 3}


def bool_for_int():
    return True


def artifacts(data, model, report):
    text = Path(data).read_text()
    Path(model).write_text(text.upper())
    os.makedirs(report)
    Path(report, "part-0.txt").write_text("zero")
    Path(report, "sub").mkdir()
    Path(report, "sub", "part-1.txt").write_text("one")
    return len(text)


def forgets_artifact(model):
    return None


def count_files(items):
    return sorted(Path(p).read_text() for p in items)


def boom(msg="bad input", **_ignored):
    raise ValueError(msg + "\nsecond line")


def segfault():
    import ctypes

    ctypes.string_at(0)


def hard_exit():
    os._exit(3)


def sleeps_with_child(pidfile):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path(pidfile).write_text(str(child.pid))
    time.sleep(60)


def talks():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return 1


def reads_env(name):
    value = os.environ.get(name, "")
    print(f"the value is {value}")
    return value


def flaky(counter, succeed_on):
    """Fails until the attempt number (kept in a file) reaches ``succeed_on``."""
    path = Path(counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    with open(str(path) + ".times", "a") as fh:
        fh.write(f"{time.monotonic()}\n")
    if n < succeed_on:
        raise RuntimeError(f"attempt {n} failed")
    return n


def scores(scores):
    """A Metrics output (SPEC §15): one int and one float."""
    from pathlib import Path

    Path(scores).write_text('{"rows": 3, "auc": 0.5, "note": "x"}')
