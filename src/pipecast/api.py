"""The operations the CLI, the tests and other tools call: load and check a pipeline,
read target settings, compile, write outputs.

Everything here raises :class:`pipecast.diagnostics.UserError` for user mistakes.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipecast.backend import Backend, CompileResult, Feature, Settings
from pipecast.diagnostics import Diagnostic, UserError, for_target, raise_if_errors
from pipecast.gcpause import gc_paused
from pipecast.loader import Loaded, load


def load_checked(path: str | Path, params: Mapping[str, str] | None = None) -> Loaded:
    """Load a pipeline and run every validation rule (SPEC §2-§10).

    Args:
        path: the pipeline file (.yaml/.yml/.json/.py).
        params: run-time ``--param`` values to check against the declared parameters.

    Returns:
        The loaded pipeline; warnings are in ``loaded.warnings``.

    Raises:
        UserError: every error found, each located in the file.
    """
    from pipecast.passes.validate import check_params, validate

    loaded = load(path)
    diags = sorted(
        (d.located(loaded.source) for d in validate(loaded)),
        key=lambda d: (d.line or 0, d.column or 0),
    )
    loaded.warnings.extend(raise_if_errors(diags))
    if params is not None:
        check_params(loaded.pipeline, dict(params))
    return loaded


# ---------------------------------------------------------------------------- settings


def _parse_set_value(text: str) -> Any:
    """A ``--set`` value: YAML/JSON scalars and flow collections; anything else stays a string."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):  # ValueError: a date-like word that is no date
        return text
    if isinstance(value, str | int | float | bool | list | dict) or value is None:
        # A bare word like 'on' or a date would change type in YAML 1.1; keep text then.
        if isinstance(value, bool) and text.lower() not in ("true", "false"):
            return text
        return value
    return text


def _set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def read_settings_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML settings file into a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(Diagnostic(f"cannot read settings file {path}: {exc}", file=str(path))) from None
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(Diagnostic(f"TOML syntax error: {exc}", file=str(path))) from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                Diagnostic(f"JSON syntax error: {exc.msg}", file=str(path), line=exc.lineno, column=exc.colno)
            ) from None
    else:
        from pipecast.loader import parse_yaml

        data, _source, problems = parse_yaml(text, str(path))
        raise_if_errors(problems)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(Diagnostic("a settings file holds a mapping of settings", file=str(path)))
    return data


def load_settings(backend: Any, settings_file: Path | None = None, sets: Sequence[str] = ()) -> Settings:
    """Build a backend's settings from a file and ``--set key=value`` options (SPEC §11).

    Args:
        backend: the backend (or its class); its ``settings_model`` validates the result.
        settings_file: a YAML (.yaml/.yml), TOML (.toml) or JSON settings file. A file
            whose top level has a key named like the target (e.g. ``vertex:``) uses that
            section, so one file can hold settings for several targets.
        sets: ``key=value`` strings; dotted keys set nested values; they win over the file.

    Raises:
        UserError: unknown keys (with the nearest valid one) or invalid values.
    """
    from pydantic import ValidationError

    model: type[Settings] = backend.settings_model
    name = getattr(backend, "name", "")
    data: dict[str, Any] = {}
    origin = "--set"
    if settings_file is not None:
        data = read_settings_file(Path(settings_file))
        origin = str(settings_file)
        section = data.get(name)
        if name and isinstance(section, dict) and name not in model.model_fields:
            data = dict(section)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(
                Diagnostic(
                    f"--set {item!r} is not key=value", hint="e.g. --set region=eu-west-1", code="usage"
                )
            )
        _set_dotted(data, key, _parse_set_value(raw))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(_settings_diagnostics(exc, model, name, origin)) from None


def _settings_diagnostics(exc: Any, model: type[Settings], target: str, origin: str) -> list[Diagnostic]:
    from pipecast.model_errors import valid_keys
    from pipecast.passes.analysis import nearest

    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            sub = _submodel(model, loc[:-1])
            keys = valid_keys(sub) if sub is not None else []
            best = nearest(str(loc[-1]), keys)
            prefix = ".".join(str(p) for p in loc[:-1])
            hint = (
                f"did you mean {(prefix + '.' if prefix else '') + best!r}?"
                if best
                else "valid settings: " + (", ".join(keys) or "none")
            )
            msg = f"unknown setting {key!r} for target {target!r}"
        elif kind == "missing":
            msg = f"missing required setting {key!r} for target {target!r}"
            hint = f"add it to the settings file or pass --set {key}=..."
        else:
            text = err["msg"]
            if text.startswith("Value error, "):
                text = text[len("Value error, ") :]
            msg = f"invalid setting {key!r} for target {target!r}: {text} (got {err.get('input')!r})"
            hint = None
        out.append(Diagnostic(msg, hint=hint, file=origin, code="settings"))
    return out


def _submodel(model: type[Any], loc: tuple[Any, ...]) -> type[Any] | None:
    from pydantic import BaseModel

    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = info.annotation
        for arg in getattr(current, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    return current if isinstance(current, type) else None


# ---------------------------------------------------------------------------- compile


def compiled_form(loaded: Loaded, target: str) -> Loaded:
    """The pipeline a target's compile works on: after the common lowerings, and with
    sub-pipelines inlined for targets that inline them (:attr:`Backend.inlines_plain_groups`).
    An engine reading back a run of the compiled output names these steps."""
    from pipecast import registry

    loaded = loaded.lowered()
    return loaded.inlined() if registry.get(target).inlines_plain_groups else loaded


def compile_pipeline(
    loaded: Loaded,
    target: str,
    settings: Settings | Mapping[str, Any] | None = None,
    lenient: bool = False,
) -> CompileResult:
    """Compile a validated pipeline for a target.

    Args:
        loaded: from :func:`load_checked`.
        target: a backend name (``pipecast targets``).
        settings: a settings model instance, a mapping (validated by the backend's
            settings model) or ``None`` for the backend's defaults.
        lenient: accept approximations (SPEC §13) with a warning.

    Raises:
        UserError: unknown target, invalid settings, unsupported features.
    """
    from pipecast import registry

    backend = registry.get(target)
    if settings is None or isinstance(settings, Mapping):
        from pydantic import ValidationError

        try:
            settings = backend.settings_model.model_validate(dict(settings or {}))
        except ValidationError as exc:
            raise UserError(
                _settings_diagnostics(exc, backend.settings_model, backend.name, "settings")
            ) from None
    # The compile keeps nearly all it builds until it returns (gcpause says why and what it costs).
    with gc_paused():
        return _check_and_emit(compiled_form(loaded, backend.name), backend, settings, lenient)


def _check_and_emit(loaded: Loaded, backend: Backend, settings: Settings, lenient: bool) -> CompileResult:
    source = loaded.source

    def located(d: Diagnostic) -> Diagnostic:
        return for_target(d.located(source), backend.name)

    # Before check: a target's check may lower the pipeline, and its own feature check names a
    # group finally it does not support at all (then that error says it).
    if (
        backend.inlines_plain_groups
        and not backend.emits_plain_groups_with_finally
        and backend.support(Feature.GROUP_FINALLY).compiles
    ):
        kept = [n for n in loaded.index.walk() if n.is_group and n.group.is_plain]
        if kept:
            raise UserError(
                [
                    for_target(
                        Diagnostic(
                            f"step {n.name!r} uses a pipeline that has a 'finally': this target runs "
                            "a sub-pipeline inlined into its caller, where nothing can run its finally "
                            "after its steps only",
                            n.yaml_path,
                            hint="move the called pipeline's finally into the caller's 'finally', or "
                            "run it with the simulator",
                            code="unsupported",
                        ).located(source),
                        backend.name,
                    )
                    for n in kept
                ]
            )
    checks = backend.check(loaded.index, lenient=lenient, settings=settings)
    warnings = raise_if_errors([located(d) for d in checks])
    try:
        result = backend.emit(loaded.pipeline, loaded.index, settings)
    except UserError as exc:
        # check() should have found it; still, the user gets the file, line and column.
        raise UserError([located(d) for d in exc.diagnostics]) from None
    diagnostics = [*warnings, *(located(d) for d in result.diagnostics)]
    return CompileResult(files=result.files, diagnostics=diagnostics, summary=result.summary)


def write_outputs(result: CompileResult, out_dir: str | Path) -> list[Path]:
    """Write compiled files atomically under ``out_dir`` (sorted); returns the paths."""
    return write_output_set(result, out_dir)[0]


MANIFEST = ".pipecast-files.json"


def write_output_set(
    result: CompileResult, out_dir: str | Path, key: str | None = None
) -> tuple[list[Path], list[Path]]:
    """Write the whole set of compiled files or none of them; returns ``(written, removed)``.

    Every file is first written (and fsynced) into a temporary folder inside ``out_dir``;
    only when all of them are there are they renamed into place (renames need no space,
    so a full disk leaves the previous set untouched). With ``key`` (``target/pipeline``),
    the files the previous compile of that key wrote and this one does not are removed
    (the list is kept in ``out_dir/.pipecast-files.json``); other files are never touched.

    Raises:
        UserError: ``out_dir`` is a file, or cannot be written (read-only, full disk).
    """
    import shutil
    import tempfile

    from pipecast.io import atomic_write, dump_json, umask

    root = Path(out_dir)
    for rel in result.files:
        # Never write outside the output folder, whatever a backend names a file.
        if not (root / rel).resolve().is_relative_to(root.resolve()) or rel == MANIFEST:
            raise UserError(f"refusing to write {rel!r} outside {root}")
    if root.exists() and not root.is_dir():
        raise UserError(
            Diagnostic(
                f"the output folder {root} is a file",
                hint="pass -o a folder (it is created if missing)",
                code="output",
            )
        )
    written: list[Path] = []
    removed: list[Path] = []
    try:
        root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".pipecast-", dir=root))
        try:
            mode = 0o666 & ~umask()
            for rel in sorted(result.files):
                tmp = stage / rel
                tmp.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    fh.write(result.files[rel])
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, mode)
            previous = _manifest(root).get(key, []) if key else []
            for rel in sorted(result.files):
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / rel, target)
                written.append(target)
            for rel in sorted(set(previous) - set(result.files)):
                stale = root / rel
                if stale.resolve().is_relative_to(root.resolve()) and stale.is_file():
                    stale.unlink()
                    removed.append(stale)
            if key:
                manifest = _manifest(root)
                manifest[key] = sorted(result.files)
                atomic_write(root / MANIFEST, dump_json(manifest))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except OSError as exc:
        where = exc.filename or root
        raise UserError(
            Diagnostic(
                f"cannot write the compiled files to {root}: {where}: {exc.strerror or exc}",
                hint="pass -o a folder you can write to on a disk with free space; nothing of this "
                "compile was written",
                code="output",
            )
        ) from None
    return written, removed


def _manifest(root: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
