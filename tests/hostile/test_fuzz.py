"""Issue 15 acceptance: a bounded fuzz test. Hypothesis mutates the examples, the
conformance cases, the malformed files and the hostile inputs of issue 15, and every
mutant must give exit code 0 or 1 (never 3), no traceback, a location on every error;
every accepted file compiles for every target or fails with a named error, and every
compiled Airflow file imports.

Bounded to about a minute on the 2-core CI machine: ``PIPECAST_FUZZ_EXAMPLES`` (default 100)
mutants, checked in-process; the Airflow files are imported together at the end in one
DagBag process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipecast import registry
from tests.hostile.cases import CASES

REPO = Path(__file__).resolve().parents[2]
#: Every installed backend (the simulator's ``local`` included): a new one is fuzzed without
#: editing this file.
TARGETS = tuple(registry.available())
EXAMPLES = int(os.environ.get("PIPECAST_FUZZ_EXAMPLES", "100"))
#: Settings a target needs to compile at all (a target not named needs none).
SETTINGS = {
    "vertex": ["project=p", "region=us-central1", "pipeline_root=gs://b/r", "image=img:1"],
    "azureml": ["image=img:1"],
}


def _seeds() -> list[tuple[str, str]]:
    seeds = [(f"{name}.{f.split('.')[-1]}", text) for name, (f, text) in sorted(CASES.items())]
    paths = sorted(REPO.glob("examples/*/pipeline.yaml"))
    paths += sorted((REPO / "tests" / "conformance" / "cases").glob("*.yaml"))
    paths += sorted((REPO / "tests" / "malformed").glob("*.yaml"))[:20]
    for path in paths:
        seeds.append((f"{path.parent.name}-{path.name}", path.read_text()))
    return seeds


SEEDS = _seeds()
#: What a careless or hostile user writes into a value.
HOSTILE = [
    ".nan",
    ".inf",
    "-.inf",
    "1e308",
    "-1",
    "0",
    "''",
    "'{{'",
    "'}}'",
    "'{{$}}'",
    "'{{ x }}'",
    "'{% raw %}'",
    "'a\\nb'",
    '"a\\nb"',
    "'\\\\'",
    "null",
    "[]",
    "{}",
    "'" + "9" * 5000 + "'",
    "[[[[[[[[[[1]]]]]]]]]]",
    "'../x'",
    "'Europe'",
    "'2024-13-45'",
    "true",
    "'é😀'",
    "*a",
    "&a x",
    "!!binary x",
    '"\\x00"',
    "1e40",
    "'100000000000d'",
    "'-5s'",
    "'$.x'",
]


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, str]:
    name, text = draw(st.sampled_from(SEEDS))
    lines = text.splitlines() or [""]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(st.sampled_from(["value", "value", "delete", "duplicate", "truncate", "indent", "chars"]))
        line = lines[i] if lines else ""
        if op == "value" and ":" in line:
            key, _, _ = line.partition(":")
            lines[i] = f"{key}: {draw(st.sampled_from(HOSTILE))}"
        elif op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, line)
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
        elif op == "indent" and lines:
            lines[i] = "  " + line
        elif op == "chars" and lines:
            pos = draw(st.integers(0, len(line)))
            lines[i] = (
                line[:pos]
                + draw(st.sampled_from(["{", "}", ":", "'", '"', "\t", "&", "*", "#"]))
                + line[pos:]
            )
        if not lines:
            lines = [""]
    return name, "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def airflow_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_dags")
    yield folder


def _check_errors(err: str, path: Path) -> None:
    assert "internal error" not in err and "Traceback" not in err, err
    for line in err.splitlines():
        if ": error: " in line:
            assert line.startswith(str(path)) or line.startswith("--set"), line


def test_fuzz_mutated_pipelines(tmp_path_factory, airflow_files, airflow_env):
    from pipecast import api
    from pipecast.cli import main
    from pipecast.diagnostics import UserError

    work = tmp_path_factory.mktemp("fuzz")
    counter = iter(range(10**9))
    accepted: list[str] = []

    def one(name: str, text: str) -> None:
        n = next(counter)
        suffix = ".json" if name.endswith(".json") else ".yaml"
        folder = work / f"m{n}"
        folder.mkdir()
        path = folder / f"p{suffix}"
        path.write_text(text)
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", str(path)])
        assert code in (0, 1), (code, err.getvalue())
        _check_errors(err.getvalue(), path)
        if code != 0:
            return
        accepted.append(name)
        loaded = api.load_checked(path)
        for target in TARGETS:
            backend = registry.get(target)
            try:
                result = api.compile_pipeline(
                    loaded, target, api.load_settings(backend, None, SETTINGS.get(target, [])), lenient=True
                )
            except UserError as exc:
                assert all(d.message for d in exc.diagnostics)
                continue
            if target == "airflow":
                for rel, content in result.files.items():
                    (airflow_files / f"m{n}").mkdir()
                    (airflow_files / f"m{n}" / rel).write_text(content)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutants())
    def check(mutant: tuple[str, str]) -> None:
        one(*mutant)

    for name, text in SEEDS:  # the seed corpus itself, unmutated
        one(name, text)
    check()
    assert accepted, "no mutant was accepted: the fuzz test checks nothing past validate"
    files = sorted(airflow_files.glob("*/*.py"))
    if not files:
        return
    # One DagBag per mutant: mutants of one seed share a dag_id.
    script = (
        "import json, pathlib, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "errors = {}\n"
        "for folder in sorted(pathlib.Path(sys.argv[1]).iterdir()):\n"
        "    bag = DagBag(dag_folder=str(folder), safe_mode=False)\n"
        "    errors.update({str(k): str(v)[-500:] for k, v in bag.import_errors.items()})\n"
        "    assert bag.dag_ids, folder\n"
        "print(json.dumps(errors))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script, str(airflow_files)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    errors = json.loads(res.stdout.strip().splitlines()[-1])
    assert errors == {}, errors
