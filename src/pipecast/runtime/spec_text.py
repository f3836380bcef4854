"""The one place the step runtime decodes text a compiled spec carries (issue 16).

A compiled spec (Airflow and Azure ML ``template`` documents, KFP ``templates``, container
``command`` text, ``when`` gates) is read by a separate program: the step runtime, running in
the step's own process on the target, long after the compile, where no pipeline, IR or
:class:`~pipecast.passes.resolve.Resolved` form exists. It gets strings, so it has to parse
them. It parses with the compiler's own parser (:mod:`pipecast.passes.parse`) so a template
means the same thing at compile time and at run time, and only through this module, so the
runtime has one entry point to the parser (``tests/test_architecture.py`` lists this module
as the runtime's single, argued exemption).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipecast.ir import condition as cond
from pipecast.ir.refs import Ref
from pipecast.passes import parse


def render_template(value: Any, lookup: Callable[[Ref], Any]) -> Any:
    """A spec value with its references filled in: a lone reference keeps its type, a mixed
    string becomes ``str`` (SPEC §4, §19); see :func:`pipecast.passes.parse.render`."""
    return parse.render(value, lookup)


def fill_text(text: str, fill: Callable[[Ref], str]) -> str:
    """``text`` with each reference replaced by ``fill(ref)`` (container command slots)."""
    return "".join(seg if isinstance(seg, str) else fill(seg) for seg in parse.parse_template(text))


def evaluate_text_condition(text: str, lookup: Callable[[Ref], Any]) -> Any:
    """The value of a SPEC §5 ``when`` gate a spec carries as text."""
    return cond.evaluate(parse.parse_condition(text), lookup)
