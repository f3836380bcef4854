"""A backend's conformance hooks: how to compile for, check and execute its output locally.

Each backend names one :class:`Conformance` subclass in ``Backend.conformance`` (an import
path ``"module:Class"``, imported only when asked for, since executors need test engines such
as moto, ``kfp.local`` or Airflow). The shared conformance suite (``tests/conformance``)
discovers every installed backend through :func:`hooks_for` and runs each case through these
hooks, the way ibis's backend test suite discovers each backend's ``TestConf``; nothing in the
suite names a target. Tools that execute compiled output on local engines read the same hooks.

A hooks class sets data attributes and overrides at most three methods::

    class MyConformance(Conformance):
        settings = {"image": "python:3.11-slim"}   # compile settings (they land in goldens)
        fixtures = ("aws_env",)                     # pytest fixtures the engine needs
        reports_tasks_only = True                   # the engine reports tasks, not groups

        def execute(self, job: Job) -> list[dict[str, Any]] | None:
            ...  # run job.files once per job.runs entry; one SPEC §12 run record each

A run record is ``{"status", "steps": {key: {"status", "attempts", "outputs"}}, "outputs"}``
(SPEC §12); keys starting with ``_`` are free for diagnostics (logs) and are ignored.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pipecast.runtime.secrets import env_names

if TYPE_CHECKING:
    from pipecast.backend import Backend
    from pipecast.loader import Loaded

#: A run record (SPEC §12) as a plain dict.
Record = dict[str, Any]


@dataclass(frozen=True)
class Job:
    """One compiled pipeline to execute, with everything an executor may need.

    Attributes:
        name: a label (the conformance case name); unique within a batch.
        source: the pipeline file the output was compiled from.
        loaded: its validated pipeline (for structural checks).
        files: the compiled output, relative path → text (compiled with :meth:`Conformance.settings_for`).
        runs: the parameters of each run to make, in order.
        secrets: secret name → value the runs must be able to read.
        python_path: folders Python steps import their modules from.
        work: an empty folder the executor may write to.
        fixtures: the values of the pytest fixtures named in :attr:`Conformance.fixtures`.
    """

    name: str
    source: Path
    loaded: Loaded
    files: Mapping[str, str]
    runs: Sequence[Mapping[str, Any]]
    secrets: Mapping[str, str]
    python_path: Sequence[Path]
    work: Path
    fixtures: Mapping[str, Any] = field(default_factory=dict)


class Conformance:
    """The conformance hooks of one backend (the defaults suit a backend without an executor).

    Attributes:
        settings: the target settings every conformance compile uses: fixed, portable values,
            since the output is stored as golden files.
        fixtures: pytest fixtures (by name) the suite requests before :meth:`execute`; their
            values arrive in :attr:`Job.fixtures`.
        reports_tasks_only: the engine reports the tasks that ran, not groups or steps that
            never started; the suite derives those from the pipeline (``records.complete``).
        batches: run the cases in this many batches through :meth:`execute_many` (when the
            engine's start-up dominates, as Airflow's does), shared by the pytest workers;
            0 runs each case on its own. The ``fixtures`` of a batched backend must be
            session-scoped.
    """

    settings: ClassVar[Mapping[str, Any]] = {}
    fixtures: ClassVar[tuple[str, ...]] = ()
    reports_tasks_only: ClassVar[bool] = False
    batches: ClassVar[int] = 0

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def settings_for(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        """The compile settings of a pipeline that reads ``secrets`` (default: :attr:`settings`)."""
        return dict(self.settings)

    def validate(self, job: Job, records: Sequence[Record] | None = None) -> list[str]:
        """Problems the target's own checker finds in ``job.files`` (empty when it accepts them).

        ``records`` are this job's run records when the backend runs batched (a checker may
        read what the engine reported while loading the output). The default asks
        ``Backend.validate_output`` and counts a missing validator as a problem.
        """
        diags = self.backend.validate_output(job.files)
        return [d.render() for d in diags if d.severity == "error" or d.code == "no-validator"]

    def execute(self, job: Job) -> list[Record] | None:
        """Run ``job.files`` on the target's local engine, once per ``job.runs`` entry.

        Returns:
            one run record per run, or ``None`` when the target has no local engine and this
            hook checked the output another way (raising ``AssertionError`` on a problem).
        """
        raise NotImplementedError(
            f"backend {self.backend.name!r} has no local executor: override Conformance.execute"
        )

    def fetch(self, uri: str, scratch: Path) -> Path | None:
        """A readable local copy of an artifact URI the engine reported (``None``: the URI is
        a local path or ``file://`` URI, or unreadable); called while the engine's fixtures
        are live, so the suite can compare artifacts by content, as ``pipecast verify`` does."""
        return None

    def execute_many(self, jobs: Sequence[Job]) -> list[list[Record] | None]:
        """Run several jobs (a batch); one result of :meth:`execute` per job, in order."""
        return [self.execute(job) for job in jobs]


def hooks_for(backend: Backend) -> Conformance:
    """The backend's conformance hooks (``Backend.conformance``; the defaults when it names none)."""
    ref = backend.conformance
    if not ref:
        return Conformance(backend)
    module, _, attr = ref.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Conformance)):
        raise TypeError(f"{backend.name}: Backend.conformance {ref!r} is not a Conformance subclass")
    return cls(backend)


def secret_env(secrets: Mapping[str, str]) -> dict[str, str]:
    """Environment variables that hand ``secrets`` to the runtime's ``env`` secret store."""
    return {env_names(name)[0]: value for name, value in secrets.items()}
