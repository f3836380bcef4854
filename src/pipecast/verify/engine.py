"""The engine interface: how a backend executes its own compiled output locally.

A backend provides its engine through :meth:`pipecast.backend.Backend.local_engine`
(imported lazily: the engine's tools are optional extras such as ``pipecast[verify-aws]``),
or, for a backend it does not own, through the entry-point group ``pipecast.engines``
(name = target). An engine is used through a session: :meth:`Engine.session` starts what
the target needs once (a moto server, an Airflow home) and its :meth:`EngineSession.run`
executes one run; ``pipecast verify`` opens one session for one run, the conformance suite
one session for all its cases.
"""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecast.diagnostics import Diagnostic, UserError

GROUP = "pipecast.engines"


@dataclass
class EngineJob:
    """One run for an engine.

    Attributes:
        loaded: the checked pipeline (:func:`pipecast.api.load_checked`).
        params: the parameter values the user gave, typed (:func:`given_params`); the target
            applies the declared defaults itself, as it would in the cloud.
        settings: the user's target settings (a mapping); the engine overrides what its local
            stand-ins need (queues, buckets, roots) and says so in its notes.
        fail: fault injection, step name → first N attempts fail (``None``: all).
        secrets: secret name → value, provided to the steps the way the target would.
        python_path: folders the steps' Python code is imported from.
        workdir: a scratch folder of this run (the caller removes it).
        timeout: seconds the run may take before the engine gives up.
        lenient: compile accepting declared approximations.
        patch: rewrites the compiled files before they run (a test breaks an output on purpose).
        progress: called with short status lines while the engine works.
    """

    loaded: Any
    params: dict[str, Any]
    workdir: Path
    settings: Mapping[str, Any] = field(default_factory=dict)
    fail: Mapping[str, int | None] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    python_path: list[Path] = field(default_factory=list)
    timeout: float = 600.0
    lenient: bool = False
    patch: Callable[[dict[str, str]], dict[str, str]] | None = None
    progress: Callable[[str], None] = lambda _msg: None


@dataclass
class EngineResult:
    """What one run on a local engine did.

    Attributes:
        record: a SPEC §12 run record (``status``, ``outputs``, ``steps``); artifact outputs
            as URIs or local paths that :attr:`fetch` can read while the session is open.
        notes: what the user should know about this engine (stand-ins, what was not run).
        files: the compiled files that ran.
        fetch: maps an artifact URI to a local path (``None``: plain local paths and
            ``file://`` URIs only).
        compared: the step keys this engine really ran (``None``: the whole pipeline); when
            set, only those steps are compared, not the pipeline's status or outputs.
        problems: what the target's own checks found wrong (each one a difference).
    """

    record: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    files: Mapping[str, str] = field(default_factory=dict)
    fetch: Callable[[str, Path], Path | None] | None = None
    compared: list[str] | None = None
    problems: list[str] = field(default_factory=list)


class EngineSession(abc.ABC):
    """An open engine (see the module docstring)."""

    @abc.abstractmethod
    def run(self, job: EngineJob) -> EngineResult:
        """Compile (then ``job.patch``) and execute one run; the record of what happened."""


class Engine(abc.ABC):
    """A target's local engine. Subclasses set the class attributes and :meth:`session`."""

    #: The target (backend name).
    target: str = ""
    #: Human description for the command's header ("AWS Step Functions in moto ...").
    title: str = ""
    #: The optional extra that installs the engine's tools: ``pipecast[<extra>]``.
    extra: str = ""
    #: Modules the engine imports; a missing one is reported with :attr:`extra`.
    modules: tuple[str, ...] = ()

    def require(self) -> None:
        """Raise :class:`UserError` naming the extra when one of :attr:`modules` is missing."""
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise UserError(
                Diagnostic(
                    f"verify --target {self.target} needs {', '.join(missing)}, which is not installed",
                    hint=f"pip install 'pipecast[{self.extra}]'" if self.extra else None,
                    code="missing-engine",
                )
            )

    @abc.abstractmethod
    def session(self, workdir: Path) -> Any:
        """A context manager yielding an :class:`EngineSession`; state lives under ``workdir``."""


def engine_for(target: str) -> Engine:
    """The local engine of a target.

    Raises:
        UserError: the target is unknown or has no local engine.
    """
    from pipecast import registry

    backend = registry.get(target)
    engine = backend.local_engine()
    if engine is None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=GROUP):
            if ep.name == target:
                engine = ep.load()()
                break
    if engine is None:
        raise UserError(
            Diagnostic(
                f"target {target!r} has no local engine to verify with",
                hint="verify supports: " + (", ".join(supported()) or "no installed target"),
                code="no-engine",
            )
        )
    return engine


def supported() -> list[str]:
    """Installed targets that have a local engine (``local`` excluded)."""
    from pipecast import registry

    out = []
    for name in registry.available():
        if name == "local":
            continue
        try:
            backend = registry.get(name)
        except UserError:
            continue
        if type(backend).local_engine is not _base_local_engine():
            out.append(name)
    return out


def _base_local_engine() -> Any:
    from pipecast.backend import Backend

    return Backend.local_engine


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) environment variables for the block, then restore them."""
    import os

    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def compile_job(job: EngineJob, target: str, overrides: Mapping[str, Any]) -> tuple[dict[str, str], Any]:
    """Compile ``job`` for ``target`` with the user's settings plus the engine's ``overrides``;
    then apply ``job.patch``. Returns the files and the settings model instance."""
    from pydantic import ValidationError

    from pipecast import registry
    from pipecast.api import _settings_diagnostics, compile_pipeline

    backend = registry.get(target)
    try:
        settings = backend.settings_model.model_validate({**job.settings, **overrides})
    except ValidationError as exc:
        raise UserError(_settings_diagnostics(exc, backend.settings_model, target, "settings")) from None
    result = compile_pipeline(job.loaded, target, settings, lenient=job.lenient)
    files = dict(result.files)
    if job.patch is not None:
        files = job.patch(files)
    return files, settings


def timed_out(target: str, timeout: float, what: str) -> UserError:
    """The error of an engine that did not finish within ``--timeout``."""
    return UserError(
        Diagnostic(
            f"verify --target {target}: {what} did not finish within {timeout:g} s",
            hint="the engine may hang on this pipeline; raise --timeout if it is just slow",
            code="timeout",
        )
    )


def given_params(pipeline: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params`` (strings are parsed by the declared types); the given ones, typed.

    Raises:
        UserError: unknown names, wrong types, required parameters missing.
    """
    from pipecast.passes.validate import check_params

    values = check_params(pipeline, dict(params))
    return {k: values[k] for k in params}
