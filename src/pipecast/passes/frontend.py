"""Checks a front end runs on user-written text before a pipeline exists (issue 16).

The Python DSL (:mod:`pipecast.dsl`) builds the IR a pipeline at a time, but it reports a
malformed reference or condition where the user wrote it, in the decorated function. Those
checks parse text, and parsing belongs to the passes: the DSL calls these functions instead of
:mod:`pipecast.passes.parse`, so the parser keeps a single set of callers.
"""

from __future__ import annotations

from pipecast.ir.condition import Expr
from pipecast.ir.refs import Ref
from pipecast.passes import parse


def is_single_reference(text: str) -> bool:
    """Whether ``text`` is one ``{{ reference }}`` (blanks around it allowed).

    Raises:
        RefSyntaxError: a ``{{ }}`` in ``text`` does not parse.
    """
    return parse.single_ref(text) is not None


def condition_of(text: str) -> Expr:
    """The SPEC §5 condition ``text`` written as a string in the DSL.

    Raises:
        ConditionSyntaxError: ``text`` does not parse (with its column).
    """
    return parse.parse_condition(text)


def template_refs(text: str) -> list[Ref]:
    """The references in a mixed string (container ``command``/``args`` text), in order.

    Raises:
        RefSyntaxError: a ``{{ }}`` in ``text`` does not parse.
    """
    return [seg for seg in parse.parse_template(text) if isinstance(seg, Ref)]
