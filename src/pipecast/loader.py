"""Load a pipeline file (YAML, JSON or a Python DSL file) into the IR, keeping source
locations so errors can say ``file:line:col`` and the YAML path.

YAML is read with PyYAML's safe composer and converted to data here, node by node, so
that every key keeps its position, duplicate keys are caught (with both lines), alias
expansion is bounded (a "billion laughs" file fails fast) and scalars follow the YAML
1.2 core schema (``no``/``on`` stay strings, ``2024-01-01`` stays a string; see
docs/semantics.md). Model validation errors become :class:`~pipecast.diagnostics.Diagnostic`
objects with the YAML path, the position and a readable message; every error is reported
in one pass.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipecast.diagnostics import Diagnostic, SourceMap, UserError, YamlPath
from pipecast.gcpause import gc_paused
from pipecast.ir.models import Pipeline
from pipecast.passes.analysis import PipelineIndex

#: Upper bound on the number of nodes built from one file, aliases expanded. Real
#: pipelines have a few thousand; a "billion laughs" file hits this in milliseconds.
MAX_NODES = 200_000
MAX_DEPTH = 100
SUPPORTED_VERSIONS = (1,)
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Loaded:
    """A loaded pipeline with where it came from.

    Attributes:
        pipeline: the validated IR.
        path: the file it was read from.
        source: YAML path → position, for error messages.
        warnings: non-fatal findings of the loader.
    """

    pipeline: Pipeline
    path: Path
    source: SourceMap = field(default_factory=SourceMap)
    warnings: list[Diagnostic] = field(default_factory=list)

    @cached_property
    def index(self) -> PipelineIndex:
        return PipelineIndex(self.pipeline)

    def lowered(self) -> Loaded:
        """The same pipeline after the IR → IR lowerings every target and the simulator run on
        (:mod:`pipecast.passes.lower`); ``self`` when nothing changes."""
        from pipecast.passes.lower import guard_readers, pipeline_refs_as_inputs

        pipeline = pipeline_refs_as_inputs(self.pipeline)
        # Unchanged so far: guard_readers reads the index validation built (and resolved).
        pipeline = guard_readers(pipeline, self.index if pipeline is self.pipeline else None)
        if pipeline is self.pipeline:
            return self
        return Loaded(pipeline, self.path, self.source, list(self.warnings))

    def inlined(self) -> Loaded:
        """The same pipeline with its plain groups (sub-pipelines) inlined
        (:mod:`pipecast.passes.inline`); ``self`` when it has none."""
        from pipecast.passes.inline import inline_plain_groups

        pipeline = inline_plain_groups(self.pipeline)
        if pipeline is self.pipeline:
            return self
        return Loaded(pipeline, self.path, self.source, list(self.warnings))


#: The largest pipeline file read (bytes); a bigger one is refused before it is read.
MAX_FILE_BYTES = 50 * 2**20


def _check_file(p: Path) -> None:
    """Refuse what is not a regular file (``/dev/zero``, a FIFO, a folder) or is too big."""
    import stat

    st = p.stat()  # FileNotFoundError passes through
    name = str(p)
    if stat.S_ISDIR(st.st_mode):
        raise UserError(
            Diagnostic(f"{name} is a folder", hint="pass the pipeline file itself", code="no-file", file=name)
        )
    if not stat.S_ISREG(st.st_mode):
        raise UserError(
            Diagnostic(
                f"{name} is not a regular file (a device, a pipe or a socket)",
                hint="save the pipeline to a file and pass its path",
                code="no-file",
                file=name,
            )
        )
    if st.st_size > MAX_FILE_BYTES:
        raise UserError(
            Diagnostic(
                f"{name} is {st.st_size:,} bytes; pipeline files are limited to {MAX_FILE_BYTES:,}",
                hint="split the pipeline, or generate it with the Python DSL",
                code="too-big",
                file=name,
            )
        )


def load(path: str | Path, *, _ctx: Any = None, _display: str | None = None) -> Loaded:
    """Load a pipeline file by its suffix (``.yaml``/``.yml``, ``.json`` or ``.py``).

    ``uses:`` steps (SPEC §16-§17) are replaced by what they use (:mod:`pipecast.passes.uses`);
    ``_ctx``/``_display`` are that module's, for the files it loads.

    Raises:
        UserError: unreadable file, syntax errors, duplicate keys, or a pipeline that does
            not fit the format (every problem at once, each with its location).
    """
    p = Path(path)
    name = _display or str(p)
    if p.suffix == ".py":
        return _load_python(p)
    try:
        _check_file(p)
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(Diagnostic(f"no such file: {name}", file=name, code="no-file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(Diagnostic(f"cannot read {name}: {exc}", file=name, code="no-file")) from None
    if p.suffix == ".json":
        data, source, problems = parse_json(text, name)
    elif p.suffix in YAML_SUFFIXES or not p.suffix:
        data, source, problems = parse_yaml(text, name)
    else:
        raise UserError(
            Diagnostic(
                f"cannot tell the format of {name!r} from its suffix {p.suffix!r}",
                file=name,
                hint="use .yaml/.yml, .json or .py",
                code="file-type",
            )
        )
    return from_data(data, p, source, problems, _ctx=_ctx)


def from_data(
    data: Any, path: Path, source: SourceMap, problems: list[Diagnostic] | None = None, *, _ctx: Any = None
) -> Loaded:
    """Validate already-parsed data into a :class:`Loaded` (shared by YAML and JSON)."""
    from pipecast.passes import uses

    problems = list(problems or [])
    name = source.file
    warnings: list[Diagnostic] = []
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {_kind(data)}"
        problems.append(
            Diagnostic(
                f"a pipeline file holds a mapping of keys (pipecast, name, steps, ...); this one is {kind}",
                hint="start from the example in SPEC §1 or run 'pipecast schema'",
            )
        )
        raise UserError(_sorted([d.located(source) for d in problems]))
    version_problem = _check_version(data)
    if version_problem is not None:
        raise UserError(_sorted([d.located(source) for d in [*problems, version_problem]]))
    if uses.has_uses(data):
        resolved = Path(path).resolve()
        ctx = _ctx if _ctx is not None else uses.Context(resolved.parent).enter(resolved, None)
        expander = uses.Expander(resolved, source, ctx)
        data = expander.expand(data)
        warnings = expander.warnings
        if expander.problems:
            raise UserError(_sorted([*(d.located(source) for d in problems), *expander.problems]))
    try:
        with gc_paused():
            pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        problems.extend(diagnostics_from_validation(exc, data))
    if problems:
        raise UserError(_sorted([d.located(source) for d in problems]))
    del name
    return Loaded(pipeline, path, source, warnings=warnings)


def _check_version(data: dict[str, Any]) -> Diagnostic | None:
    if "pipecast" not in data:
        return Diagnostic(
            "missing the format version: add 'pipecast: 1' at the top of the file",
            (),
            code="version",
        )
    version = data["pipecast"]
    if version in SUPPORTED_VERSIONS and not isinstance(version, bool):
        return None
    return Diagnostic(
        f"unsupported format version {version!r}: this pipecast reads 'pipecast: 1'",
        ("pipecast",),
        hint="set 'pipecast: 1', or upgrade pipecast if the file was written for a newer version",
        code="version",
    )


def _load_python(p: Path) -> Loaded:
    if not p.is_file():
        raise UserError(Diagnostic(f"no such file: {p}", file=str(p), code="no-file"))
    try:
        from pipecast.dsl import load_python_pipeline  # type: ignore[attr-defined]
    except ImportError:
        raise UserError(
            Diagnostic(
                f"cannot load {p}: the Python DSL is not available in this installation",
                file=str(p),
                hint="export the pipeline to YAML, or install a pipecast with pipecast.dsl",
                code="dsl",
            )
        ) from None
    pipeline, source = load_python_pipeline(p)
    return Loaded(pipeline, p, source)


# ---------------------------------------------------------------------------- YAML


# libyaml's parser is ~5x faster than the pure-Python one on large files; both give nodes
# with the same marks, and tags are resolved by the Python resolver either way.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader with YAML 1.2 core-schema scalars (set up below)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
for _tag, _re, _first in (
    ("tag:yaml.org,2002:bool", _BOOL_RE, "tTfF"),
    ("tag:yaml.org,2002:null", _NULL_RE, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT_RE, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT_RE, "-+0123456789."),
    ("tag:yaml.org,2002:merge", re.compile(r"^<<$"), "<"),
):
    _Loader.add_implicit_resolver(_tag, _re, list(_first))

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class _Builder:
    """Turns a composed YAML node tree into plain data plus a :class:`SourceMap`."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        #: Values built again through an alias (``*name``): what a YAML bomb multiplies.
        self.count = 0
        self.visited: set[int] = set()
        self.problems: list[Diagnostic] = []
        self.open: set[int] = set()  # collections being built: an alias to one is a cycle

    def build(self, node: yaml.Node, path: YamlPath, depth: int = 0) -> Any:
        if id(node) in self.visited:
            self.count += 1
            if self.count > MAX_NODES:
                raise _TooBig()
        else:
            self.visited.add(id(node))
        if depth > MAX_DEPTH:
            raise _TooBig(deep=True, node=node, path=path)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.open:
            self._problem("an alias refers to a value that contains it (a cycle)", path, node)
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            out = []
            for i, item in enumerate(node.value):
                self._mark((*path, i), item)
                out.append(self.build(item, (*path, i), depth + 1))
            return out
        finally:
            self.open.discard(id(node))

    def _mark(self, path: YamlPath, node: yaml.Node) -> None:
        # The first writing wins: a path reached again through an alias keeps its
        # position at the place the user wrote it.
        self.source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))

    def _mapping(self, node: yaml.MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        positions = self.source.positions
        value_positions = self.source.value_positions
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    if isinstance(src, yaml.MappingNode):
                        merged.extend(src.value)
                    else:
                        self._problem("'<<' merges mappings only", path, key_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem("keys must be plain names, not lists or mappings", path, key_node)
                continue
            # Keys are names in this format: keep their text ('on', '1', 'null' stay strings).
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                self._problem(
                    f"duplicate key {key!r} (first written on line {seen[key]})",
                    (*path, key),
                    key_node,
                    hint="remove one of them; YAML would silently keep only the last",
                    code="duplicate-key",
                )
            seen[key] = line
            sub = (*path, key)
            if sub not in positions:  # the first writing wins (see _mark)
                positions[sub] = (line, key_node.start_mark.column + 1)
            if sub not in value_positions:
                value_positions[sub] = _value_pos(value_node)
            if value_node.__class__ is yaml.ScalarNode and value_node.tag == _STR:
                # The common case, inline: a plain string value (same as build() would do).
                if id(value_node) in self.visited:
                    self.count += 1
                    if self.count > MAX_NODES:
                        raise _TooBig()
                else:
                    self.visited.add(id(value_node))
                if depth + 1 > MAX_DEPTH:
                    raise _TooBig(deep=True, node=value_node, path=sub)
                out[key] = value_node.value
            else:
                out[key] = self.build(value_node, sub, depth + 1)
        for key_node, value_node in merged:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or key in out:
                continue  # explicit keys win over merged ones (YAML merge semantics)
            self._mark((*path, key), key_node)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: YamlPath) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return text.lower() == "true"
        if tag == "tag:yaml.org,2002:int":
            try:
                if text.startswith("0o"):
                    return int(text[2:], 8)
                return int(text, 16) if text.startswith("0x") else int(text)
            except ValueError:
                if len(text) > _MAX_INT_DIGITS:
                    self._problem(
                        f"an integer of {len(text)} digits (more than {_MAX_INT_DIGITS:,} are refused)",
                        path,
                        node,
                        hint=_BIG_INT_HINT,
                    )
                    return text
        if tag == "tag:yaml.org,2002:float":
            try:
                low = text.lower()
                if low.endswith(".inf"):
                    return -math.inf if low.startswith("-") else math.inf
                return math.nan if low == ".nan" else float(text)
            except ValueError:
                pass
        self._problem(
            f"unsupported YAML tag {tag!r} on {text!r}",
            path,
            node,
            hint="pipeline files hold plain JSON values; remove the tag or quote the value",
        )
        return text

    def _problem(
        self,
        message: str,
        path: YamlPath,
        node: yaml.Node,
        *,
        hint: str | None = None,
        code: str = "yaml",
    ) -> None:
        self.problems.append(
            Diagnostic(
                message,
                path,
                hint=hint,
                code=code,
                file=self.source.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )
        )


def _value_pos(node: yaml.Node) -> tuple[int, int, int]:
    """Position of a value's first character of content: (line, column, quote offset)."""
    style = getattr(node, "style", None)
    same_line = node.start_mark.line == node.end_mark.line
    offset = 1 if style in ("'", '"') else 0
    return (node.start_mark.line + 1, node.start_mark.column + 1, offset if same_line else -1)


class _TooBig(Exception):
    """Too deep (``node``/``path``: where), or too many alias repeats (an alias reuses its
    anchor's node, so where it was used is unknown)."""

    def __init__(self, deep: bool = False, node: yaml.Node | None = None, path: YamlPath = ()) -> None:
        super().__init__()
        self.deep = deep
        self.node = node
        self.path = path


def parse_yaml(text: str, name: str = "<pipeline>") -> tuple[Any, SourceMap, list[Diagnostic]]:
    """Parse YAML text into data, its source map and non-fatal problems (duplicate keys, tags).

    Raises:
        UserError: syntax errors, several documents, or alias expansion beyond the bound.
    """
    with gc_paused():
        return _parse_yaml(text, name)


def _parse_yaml(text: str, name: str) -> tuple[Any, SourceMap, list[Diagnostic]]:
    source = SourceMap(name)
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
        raise UserError(
            Diagnostic(
                f"YAML syntax error: {what}",
                hint="check indentation, colons and quotes around this line",
                code="syntax",
                file=name,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(Diagnostic(f"YAML error: {exc}", code="syntax", file=name)) from None
    if root is None:
        return None, source, []
    builder = _Builder(source)
    source.positions[()] = (root.start_mark.line + 1, root.start_mark.column + 1)
    try:
        data = builder.build(root, ())
    except _TooBig as exc:
        what = (
            f"nests deeper than {MAX_DEPTH} levels"
            if exc.deep
            else f"repeats more than {MAX_NODES} values through aliases ('*name'); only the values aliases "
            "repeat count toward this limit"
        )
        mark = exc.node.start_mark if exc.node is not None else None
        raise UserError(
            Diagnostic(
                f"the document {what}; refusing to load it",
                exc.path,
                hint="flatten the nested lists or objects"
                if exc.deep
                else "write the values out, or use fewer nested aliases",
                code="too-big",
                file=name,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )
        ) from None
    return data, source, builder.problems


# ---------------------------------------------------------------------------- JSON


def parse_json(text: str, name: str = "<pipeline>") -> tuple[Any, SourceMap, list[Diagnostic]]:
    """Parse JSON text; positions come from composing it as YAML (JSON is nearly a subset)."""
    big: list[str] = []
    try:
        plain = json.loads(text, object_pairs_hook=_pairs_hook, parse_int=lambda s: _json_int(s, big))
    except json.JSONDecodeError as exc:
        raise UserError(
            Diagnostic(
                f"JSON syntax error: {exc.msg}", code="syntax", file=name, line=exc.lineno, column=exc.colno
            )
        ) from None
    except RecursionError:
        line, column = _json_too_deep(text)
        raise UserError(
            Diagnostic(
                f"the document nests deeper than {MAX_DEPTH} levels; refusing to load it",
                hint="flatten the nested lists or objects",
                code="too-big",
                file=name,
                line=line,
                column=column,
            )
        ) from None
    if big:
        path = _path_of(plain, _BigInt) or ()
        at = re.search(r"(?<![\d.\w\"])-?" + big[0], text)
        line, column = _line_col(text, at.start()) if at else (None, None)
        raise UserError(
            Diagnostic(
                f"an integer of {len(big[0])} digits (more than {_MAX_INT_DIGITS:,} are refused)",
                path,
                hint=_BIG_INT_HINT,
                code="too-big",
                file=name,
                line=line,
                column=column,
            )
        )
    try:
        data, source, problems = parse_yaml(text, name)
    except UserError:
        data = None
    if data != plain or isinstance(plain, _Dup):
        # YAML read it differently (rare JSON corner cases): trust JSON, lose positions.
        return _strip_dups(plain), SourceMap(name), _json_dups(plain, ())
    return data, source, problems


#: Python refuses to read longer integers (``sys.get_int_max_str_digits()``'s default).
_MAX_INT_DIGITS = 4300
_BIG_INT_HINT = "write the number as a string (in quotes), or use a float if precision does not matter"


class _BigInt(str):
    """An integer too long to read, kept as text so the error can say where it is."""


def _json_int(digits: str, big: list[str]) -> int | str:
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        big.append(digits.lstrip("-"))
        return _BigInt(digits)
    return int(digits)


def _path_of(value: Any, kind: type) -> YamlPath | None:
    """The path of the first value of type ``kind`` inside ``value``."""
    if isinstance(value, kind):
        return ()
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        sub = _path_of(item, kind)
        if sub is not None:
            return (key, *sub)
    return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _json_too_deep(text: str) -> tuple[int | None, int | None]:
    """Where JSON text first opens a list or object deeper than :data:`MAX_DEPTH`."""
    depth = 0
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH + 1:  # the top-level value is depth 0, as in the YAML builder
                return _line_col(text, i)
        elif ch in "]}":
            depth -= 1
    return None, None


class _Dup(dict):  # type: ignore[type-arg]
    """A JSON object that had a duplicate key (only used when YAML could not read the file)."""

    dups: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dups = []
    for key, value in pairs:
        if key in out:
            dups.append(key)
        out[key] = value
    if dups:
        d = _Dup(out)
        d.dups = dups
        return d
    return out


def _json_dups(value: Any, path: YamlPath) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if isinstance(value, dict):
        for key in getattr(value, "dups", []):
            out.append(Diagnostic(f"duplicate key {key!r}", (*path, key), code="duplicate-key"))
        for key, item in value.items():
            out.extend(_json_dups(item, (*path, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_json_dups(item, (*path, i)))
    return out


def _strip_dups(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_dups(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_dups(v) for v in value]
    return value


# ---------------------------------------------------------------------------- errors


def diagnostics_from_validation(exc: ValidationError, data: Any) -> list[Diagnostic]:
    """Readable diagnostics from a pydantic error, with YAML paths and nearest-key hints."""
    from pipecast.model_errors import describe_validation_error

    out = []
    seen = set()
    for err in exc.errors(include_url=False):
        diag = describe_validation_error(err, data)
        if diag is None:
            continue
        key = (diag.path, diag.message)
        if key not in seen:
            seen.add(key)
            out.append(diag)
    return out


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=lambda d: (d.line or 0, d.column or 0))


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
