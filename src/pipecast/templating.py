"""Jinja2 templates from the top-level ``templates/`` folder.

The folder ships inside the core wheel as ``pipecast/_templates`` (hatch force-include,
see pyproject.toml); in an editable install it is read from the source tree. Every value
reaches generated code through an escaping filter (``py`` for Python literals, ``json``),
and ``StrictUndefined`` turns a missing variable into an error instead of an empty string.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2


def template_root() -> Path:
    """The templates folder: the packaged copy if present, else the source tree's."""
    packaged = Path(__file__).parent / "_templates"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / "templates"
    if source.is_dir():
        return source
    raise FileNotFoundError("pipecast templates are missing from this installation; reinstall pipecast")


def py_literal(value: Any) -> str:
    """A Python literal for a JSON-like value, safe to paste into generated source.

    ``repr`` of str/int/float/bool/None/list/dict is valid Python that evaluates back to the
    same value and cannot break out of the literal (quotes, backslashes and newlines are
    escaped), so pipeline content can never become code.
    """
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {type(value).__name__} as a Python literal")


def py_str(text: str) -> str:
    """A Python string literal for ``text``, quoted the way ``ruff format`` (and black) quote it.

    Escapes like ``repr`` (backslashes, the quote, newlines and every non-printable character),
    but prefers double quotes unless the text holds more double than single quotes, so
    generated files pass ``ruff format --check`` unchanged.
    """
    quote = "'" if text.count('"') > text.count("'") else '"'
    # str.translate does the common escapes at C speed (DAG files hold 10,000s of long JSON
    # specs); only text still holding a non-printable character is walked by hand.
    out = text.translate(_ESCAPES[quote])
    if not out.isprintable():
        out = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in out)
    return quote + out + quote


_COMMON = {ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_ESCAPES = {q: {**_COMMON, ord(q): "\\" + q} for q in ("'", '"')}


@cache
def environment(root: str | None = None) -> jinja2.Environment:
    """The Jinja environment of the core templates, or of a backend's own folder ``root``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root or str(template_root())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # generated Python/Dockerfiles, not HTML: values go through filters
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["py"] = py_literal
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False)
    return env


def render(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with the given context."""
    return environment().get_template(name).render(**context)


def render_package(package_file: str, template: str, /, **context: Any) -> str:
    """Render ``template`` from the ``templates/`` folder next to ``package_file`` (a backend's
    own templates: ``render_package(__file__, "dag.py.j2", ...)``), with the same filters."""
    root = Path(package_file).resolve().parent / "templates"
    return environment(str(root)).get_template(template).render(**context)
