"""``when`` expressions (SPEC §5) → KFP trigger conditions (CEL).

A condition task reads its values from its own input parameters:
``inputs.parameter_values['<input>']``, the shape the kfp SDK compiles ``dsl.If`` to.
Parameter values travel as ``google.protobuf.Value``, where every number is a double, so
comparisons of two integers cast both sides with ``int(...)`` (as the kfp SDK does) and
comparisons that involve a float compare doubles with float literals. A value of unknown
type (a loop item of an untyped list) arrives as a protobuf number, a double, so it is
compared like kfp compares a double channel: with double literals (``> 3.0``). kfp casts every
operand so that "CEL does not complain" about mixing a double with a CEL int
(``_resolve_condition_operands`` in kfp's
https://github.com/kubeflow/pipelines/blob/master/sdk/python/kfp/compiler/pipeline_spec_builder.py):
an uncast path is never compared with an int literal. (kfp's own ``double(...)`` promotion
is not used: kfp.local's evaluator does not know it.) Negation is written ``!(...)``, the
form kfp.local's evaluator also understands.

An ``int`` a step produces travels as JSON text (SPEC §22: a double holds it exactly only up
to 2**53), so an int path is always read through ``int(...)`` (CEL converts a string to an
int64, https://github.com/google/cel-spec/blob/master/doc/langdef.md#numeric-values; a native
NUMBER_INTEGER parameter converts the same way). Compared with a float literal, the literal
becomes the int bound that gives the same answer for every int (``x > 2.5`` is ``x >= 3``),
so no double is ever compared with the text. An int path compared with a float path is read
as ``double(int(...))``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from pipecast.ir import condition as c
from pipecast.ir.refs import Ref

ANY = "any"

#: Resolves a path to (the condition task's input name, the value's pipecast type[, the input
#: of a double view of an int, or None]); only the names are read here, the type comes from the
#: typed expression tree.
Lookup = Callable[[Ref], tuple[str, ...]]


def _literal(value: object, as_float: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, int) and as_float:
        return repr(float(value))
    return json.dumps(value)


def _type(expr: c.Expr, lookup: Lookup) -> str:
    """An operand's pipecast type, as the core typed it (the parser types literals, the resolve
    pass types paths); a sub-expression is a ``bool``."""
    if isinstance(expr, c.Path | c.Literal):
        return expr.type or ANY
    return "bool"


def _operand(expr: c.Expr, lookup: Lookup, numeric: str | None) -> str:
    if isinstance(expr, c.Path):
        found = lookup(expr.ref)
        name = found[0]
        type_ = _type(expr, lookup)
        text = f"inputs.parameter_values['{name}']"
        view = found[2] if len(found) > 2 else None
        if view and type_ in ("float", "bool"):
            return f"inputs.parameter_values['{view}']"  # the native view of JSON text
        if type_ == "int" and numeric == "float":
            # A double view of the int (a step's ``<output>-double``, see pipecast_vertex.wire)
            # compares as a double in CEL and in kfp.local's evaluator, which has no double().
            double_view = found[2] if len(found) > 2 else None
            if double_view:
                return f"inputs.parameter_values['{double_view}']"
            return f"double(int({text}))"
        return f"int({text})" if numeric == "int" or type_ == "int" else text
    if isinstance(expr, c.Literal):
        return _literal(expr.value, as_float=numeric == "float")
    return "(" + to_cel(expr, lookup) + ")"


def _numeric(left: c.Expr, right: c.Expr, lookup: Lookup) -> str | None:
    kinds = {_type(left, lookup), _type(right, lookup)}
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float", "any"} and kinds & {"int", "float"} and kinds != {"any"}:
        return "float"
    return None


def to_cel(expr: c.Expr, lookup: Lookup) -> str:
    """Translate a parsed ``when`` expression into a CEL trigger condition."""
    if isinstance(expr, c.Path):
        # A bare boolean path: compare explicitly, as kfp does (CEL has no truthiness).
        found = lookup(expr.ref)
        name = found[2] if len(found) > 2 and found[2] else found[0]
        return f"inputs.parameter_values['{name}'] == true"
    if isinstance(expr, c.Literal):
        return _literal(expr.value, as_float=False)
    if isinstance(expr, c.Not):
        return "!(" + to_cel(expr.operand, lookup) + ")"
    if isinstance(expr, c.BoolOp):
        op = " && " if expr.op == "and" else " || "
        return op.join("(" + to_cel(o, lookup) + ")" for o in expr.operands)
    if isinstance(expr, c.Compare):
        bounded = _int_against_float(expr, lookup)
        if bounded is not None:
            return bounded
        numeric = _numeric(expr.left, expr.right, lookup)
        left = _operand(expr.left, lookup, numeric)
        right = _operand(expr.right, lookup, numeric)
        return f"{left} {expr.op} {right}"
    if isinstance(expr, c.In):
        kinds = {_type(o, lookup) for o in expr.options}
        operand_type = _type(expr.operand, lookup)
        if operand_type == "int" and kinds <= {"int", "float"}:
            # An int is in a list of numbers when it equals one of its integral members.
            ints = [o.value for o in expr.options if float(o.value).is_integer()]  # type: ignore[arg-type]
            operand = _operand(expr.operand, lookup, "int")
            return f"{operand} in [{', '.join(str(int(v)) for v in ints)}]"
        numeric = "int" if kinds == {"int"} and operand_type == "int" else None
        if "float" in kinds or (operand_type == "any" and kinds and kinds <= {"int", "float"}):
            numeric = "float"
        operand = _operand(expr.operand, lookup, numeric)
        options = ", ".join(_literal(o.value, as_float=numeric == "float") for o in expr.options)
        return f"{operand} in [{options}]"
    raise TypeError(f"not a condition node: {expr!r}")


#: ``literal op x`` is ``x mirrored-op literal``.
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_INT64 = 2**63


def _int_against_float(expr: c.Compare, lookup: Lookup) -> str | None:
    """``int-path op float-literal`` as an int comparison with the same answer for every int,
    or ``None`` when ``expr`` is not that shape."""
    left, right, op = expr.left, expr.right, expr.op
    if isinstance(left, c.Literal) and isinstance(right, c.Path):
        left, right, op = right, left, _MIRROR[op]
    if not (isinstance(left, c.Path) and isinstance(right, c.Literal)):
        return None
    value = right.value
    if _type(left, lookup) != "int" or not isinstance(value, float) or isinstance(value, bool):
        return None
    x = _operand(left, lookup, "int")
    if math.isnan(value):
        return "true" if op == "!=" else "false"
    if abs(value) >= _INT64:  # beyond every int64: the answer does not depend on x
        below = value > 0  # every int is below the literal
        answer = {"<": below, "<=": below, ">": not below, ">=": not below, "==": False, "!=": True}[op]
        return "true" if answer else "false"
    if value.is_integer():
        return f"{x} {op} {int(value)}"
    if op in ("==", "!="):
        return "false" if op == "==" else "true"
    if op in ("<", "<="):
        return f"{x} <= {math.floor(value)}"
    return f"{x} >= {math.ceil(value)}"


def negate(cel: str) -> str:
    return f"!({cel})"
