"""The backend interface, the feature vocabulary, and the unsupported-feature rule (SPEC §13).

A backend is a plugin (entry-point group ``pipecast.backends``) that subclasses
:class:`Backend`. Capability is class-level data: ``features`` maps every
:class:`Feature` to a :class:`Support` saying whether the target does it natively,
through the pipecast step runtime, by approximation (allowed only with ``--lenient``),
or not at all. :meth:`Backend.check` turns that table plus the pipeline's feature uses
into diagnostics that name the target, the feature, the step and what to do instead.
"""

from __future__ import annotations

import abc
import enum
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from pipecast.diagnostics import Diagnostic, UserError, for_target

if TYPE_CHECKING:
    from pipecast.ir.models import Pipeline
    from pipecast.passes.analysis import PipelineIndex
    from pipecast.simulator.profiles import Profile


class Feature(enum.StrEnum):
    """Every IR feature a backend may or may not support. Values are user-facing names."""

    PYTHON_STEP = "python steps"
    CONTAINER_STEP = "container steps"
    STOCK_IMAGES = "stock container images"
    PARAMS = "parameters"
    PARAM_OUTPUTS = "parameter outputs"
    ARTIFACTS = "artifacts"
    AFTER = "after (ordering without data)"
    WHEN = "when (conditions)"
    ELSE = "else branches"
    GROUP_OUTPUTS = "group outputs"
    WHEN_OUTPUTS = "when-group outputs (from the branch that ran)"
    AFTER_GROUP = "after a group with no outputs"
    FOR_EACH = "for_each (fan-out)"
    PARALLELISM = "for_each parallelism"
    NESTED_FOR_EACH = "nested for_each"
    RETRY = "retry"
    RETRY_BACKOFF = "retry backoff other than 1 or 2"
    RETRY_JITTER = "retry jitter"
    TIMEOUT = "timeout"
    RESOURCES = "cpu and memory"
    ACCELERATORS = "gpus and accelerators"
    ENV = "environment variables"
    SECRETS = "secrets"
    CACHE = "cache"
    FINALLY = "finally"
    GROUP_FINALLY = "group finally (group.status)"
    SCHEDULE = "schedule"
    SCHEDULE_TIMEZONE = "schedule time zone"
    PIPELINE_OUTPUTS = "pipeline outputs"
    ARTIFACT_PARAMS = "artifact parameters"
    IMPORT = "import steps"
    METRIC_REFS = "metric values in conditions and inputs"
    STRUCTURED_VALUES = "references inside list and mapping inputs"
    COMPONENTS = "components (uses: a component file)"
    SUBPIPELINES = "sub-pipelines (uses: a pipeline file)"


SupportLevel = Literal["native", "runtime", "approximate", "unsupported"]


@dataclass(frozen=True)
class Support:
    """How a target supports a feature.

    Attributes:
        level: ``native`` (the target does it), ``runtime`` (the pipecast step runtime does
            it inside the container), ``approximate`` (an approximation exists: an error
            unless ``--lenient``, then a warning), ``unsupported`` (always an error).
        note: how it is done, or why not.
        instead: for approximate/unsupported, what the user can do instead.
    """

    level: SupportLevel = "native"
    note: str = ""
    instead: str = ""

    @property
    def compiles(self) -> bool:
        return self.level in ("native", "runtime")


NATIVE = Support()


def native(note: str = "") -> Support:
    return Support("native", note)


def runtime(note: str) -> Support:
    return Support("runtime", note)


def approximate(note: str, instead: str) -> Support:
    return Support("approximate", note, instead)


def unsupported(note: str, instead: str) -> Support:
    return Support("unsupported", note, instead)


#: How targets without nested graphs run a sub-pipeline (SPEC §17): compile inlines it
#: (:mod:`pipecast.passes.inline`, :attr:`Backend.inlines_plain_groups`).
INLINED_SUBPIPELINES = native(
    "inlined: the called pipeline's steps join the caller's graph under their dotted names "
    "(prep.clean); the run record keeps the uses: step's own entry"
)


class Settings(BaseModel):
    """Base of every backend's target settings model (SPEC §11): strict, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EmptySettings(Settings):
    pass


# Settings a compile can do without but a deploy cannot are written into the output as
# marked placeholders (``<set project>``), compile warns about each, and deploy refuses
# files that still hold one.
PLACEHOLDER_RE = re.compile(r"<set [a-z_]+>")


def placeholder(setting: str) -> str:
    """A marked placeholder for a setting that was not given."""
    return f"<set {setting}>"


def refuse_placeholders(files: Mapping[str, str]) -> None:
    """Raise :class:`UserError` if a compiled file still holds a placeholder (before deploy)."""
    for rel in sorted(files):
        found = PLACEHOLDER_RE.search(files[rel])
        if found:
            raise UserError(
                Diagnostic(
                    f"{rel} still holds the placeholder {found.group(0)!r}",
                    hint="set the missing setting (for example --set image=...) and compile again",
                    file=rel,
                    code="placeholder",
                )
            )


def require_settings(target: str, settings: Settings, names: tuple[str, ...]) -> None:
    """Raise :class:`UserError` naming every setting in ``names`` that is not given."""
    missing = [k for k in names if getattr(settings, k) is None]
    if missing:
        raise UserError(
            Diagnostic(
                f"{target} deploy needs " + ", ".join(missing),
                hint="set them in the settings file or pass " + " ".join(f"--set {k}=..." for k in missing),
                code="settings",
            )
        )


class Report:
    """Collects what :meth:`Backend.check` finds (sqlglot's ``Generator.unsupported``).

    Every diagnostic gets the target's name; :func:`pipecast.api.compile_pipeline` adds the
    file, line and column from the YAML path, so a backend only names the path.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.diagnostics: list[Diagnostic] = []

    def unsupported(
        self,
        message: str,
        path: tuple[str | int, ...] = (),
        *,
        code: str,
        hint: str,
        step: str | None = None,
        severity: Literal["error", "warning"] = "error",
    ) -> None:
        """Report that the target cannot do what the pipeline (at ``path``) asks, and what to do."""
        prefix = f"step {step!r}: " if step else ""
        self.add(Diagnostic(prefix + message, path, hint=hint, severity=severity, code=code))

    def add(self, *diagnostics: Diagnostic) -> None:
        """Adopt diagnostics made elsewhere (a shared helper's): each names the target, and its
        message starts with the uniform prefix (:func:`pipecast.diagnostics.for_target`)."""
        self.diagnostics.extend(for_target(d, self.target) for d in diagnostics)

    @contextmanager
    def catching(self) -> Iterator[None]:
        """Report the diagnostics of a :class:`UserError` raised inside the block."""
        try:
            yield
        except UserError as exc:
            self.add(*exc.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


@dataclass(frozen=True)
class CompileResult:
    """What :meth:`Backend.compile` returns: files (relative path → text) and warnings."""

    files: dict[str, str]
    diagnostics: list[Diagnostic]
    summary: dict[str, Any]


class Backend(abc.ABC):
    """Base class of every target. Subclasses set the class attributes and implement ``emit``."""

    name: ClassVar[str]
    #: Human title for tables and docs.
    title: ClassVar[str] = ""
    #: Every :class:`Feature` → :class:`Support`; a missing feature counts as unsupported.
    features: ClassVar[Mapping[Feature, Support]] = {}
    settings_model: ClassVar[type[Settings]] = EmptySettings
    #: The target's documentation, linked from docs and tables.
    docs_url: ClassVar[str] = ""
    #: Its conformance hooks, ``"module:Class"`` of a :class:`pipecast.conformance.Conformance`
    #: subclass (how to execute the output locally and read back run records), imported only
    #: by the conformance suite and tools that execute output; empty: compile checks only.
    conformance: ClassVar[str] = ""
    #: Whether the target reads local paths (SPEC §14): only the simulator does; cloud
    #: targets reject an import of a local path at compile time.
    reads_local_files: ClassVar[bool] = False
    #: Whether compile inlines plain groups (sub-pipelines without a ``finally``, SPEC §17)
    #: into their enclosing scope first (:mod:`pipecast.passes.inline`), for targets whose
    #: emitters know only loop and condition groups; run records get the group entries back
    #: (:func:`pipecast.verify.records.restore_inlined_groups`).
    inlines_plain_groups: ClassVar[bool] = True
    #: With :attr:`inlines_plain_groups`: whether the emitter compiles the plain groups the
    #: inlining keeps (a sub-pipeline with a ``finally``, SPEC §17-§18) instead of compile
    #: refusing them.
    emits_plain_groups_with_finally: ClassVar[bool] = False

    def support(self, feature: Feature) -> Support:
        return self.features.get(
            feature, unsupported(f"{self.name} does not declare support for {feature}", "")
        )

    def check(self, index: PipelineIndex, *, lenient: bool = False, settings: Any = None) -> list[Diagnostic]:
        """Every user error (and warning) of this target for this pipeline and these settings.

        The one place a backend reports what the user must change: the features it cannot
        express (from :attr:`features`), then :meth:`check_target` with the user's settings.
        ``emit`` runs only when this found no error. ``settings`` is an instance of
        :attr:`settings_model` (``None``: the defaults).
        """
        from pipecast.passes.features import used_features

        report = Report(self.name)
        for use in used_features(index):
            sup = self.support(use.feature)
            if sup.compiles:
                continue
            where = f"step {use.step!r}" if use.step else "the pipeline"
            if sup.level == "approximate" and lenient:
                report.add(
                    Diagnostic(
                        f"{self.name}: {use.feature} used by {where} is approximated: {sup.note}",
                        use.path,
                        severity="warning",
                        code="approximated",
                    )
                )
                continue
            hint = sup.instead or None
            if sup.level == "approximate":
                hint = (hint + "; or " if hint else "") + "pass --lenient to accept the approximation"
            report.add(
                Diagnostic(
                    f"target {self.name!r} does not support {use.feature} (used by {where})"
                    + (f": {sup.note}" if sup.note else ""),
                    use.path,
                    hint=hint,
                    code="unsupported-feature",
                )
            )
        if not self.reads_local_files:
            from pipecast.passes.imports import local_path_errors

            report.add(*local_path_errors(index, self.name))
        if not report.errors:
            self.check_target(index, self.settings_of(settings), report)
        return report.diagnostics

    def settings_of(self, settings: Any) -> Any:
        """``settings`` as an instance of :attr:`settings_model`: an instance as is, a mapping
        validated, ``None`` the defaults (for callers of ``emit``/``deploy`` that pass either)."""
        if isinstance(settings, self.settings_model):
            return settings
        return self.settings_model.model_validate(dict(settings or {}))

    def check_target(self, index: PipelineIndex, settings: Any, report: Report) -> None:
        """What only this target limits (sizes, quotas, names), reported with
        :meth:`Report.unsupported`; runs after the feature checks found no error."""
        return None

    #: What :meth:`build_for_emit` built: ``(index, settings, value)``.
    _built: tuple[Any, Any, Any] | None = None

    def build_for_emit(
        self, index: PipelineIndex, settings: Any, report: Report, build: Callable[[], Any]
    ) -> None:
        """For a target whose limits are known only once its output (or a lowered form of it) is
        built: call from :meth:`check_target`. ``build()`` runs once, with the user's settings;
        a :class:`UserError` it raises is reported (located like every check), and what it
        returns is kept for :meth:`built` in ``emit``, so a compile builds once and ``emit``
        reports nothing new."""
        self._built = None
        with report.catching():
            self._built = (index, settings, build())

    def built(self, index: PipelineIndex, settings: Any) -> Any:
        """What :meth:`build_for_emit` built for this index and these settings (once), else
        ``None`` (``emit`` called without ``check``: build it there)."""
        kept, self._built = self._built, None
        if kept is not None and kept[0] is index and kept[1] == settings:
            return kept[2]
        return None

    @abc.abstractmethod
    def emit(self, pipeline: Pipeline, index: PipelineIndex, settings: Any) -> CompileResult:
        """Compile a validated pipeline. Pure: no clock, no randomness, no network."""

    def validate_output(self, files: Mapping[str, str]) -> list[Diagnostic]:
        """Check compiled files with the target's own tools (used by tests and ``--check``)."""
        return []

    def deploy(self, pipeline: Pipeline, files: Mapping[str, str], settings: Any, **options: Any) -> Any:
        """Create or update the pipeline on the target (optional)."""
        raise NotImplementedError(f"target {self.name!r} has no deploy yet")

    def local_engine(self) -> Any:
        """The engine that runs this target's output locally (``pipecast verify``), or ``None``.

        Returns a :class:`pipecast.verify.engine.Engine`; import it inside the method, since
        its tools are optional extras.
        """
        return None

    def summary_lines(self, summary: Mapping[str, Any]) -> list[str]:
        """Lines ``pipecast compile`` prints under its one-line summary, from ``CompileResult.summary``
        (figures a user of this target should see, such as a limit being approached)."""
        return []

    def profile(self) -> Profile | None:
        """The target's run-time limits the simulator checks (``pipecast run --profile <name>``):
        a new :class:`pipecast.simulator.profiles.Profile`, or ``None`` when it declares none."""
        return None

    def default_filename(self, pipeline: Pipeline) -> str:
        return f"{pipeline.name}.json"
