"""``when`` conditions (SPEC §5) as Choice rules.

https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html

| SPEC                      | Choice rule                                         |
|---------------------------|-----------------------------------------------------|
| ``a and b`` / ``a or b``  | ``And`` / ``Or``                                    |
| ``not a``                 | ``Not``                                             |
| ``p == 1`` (numbers)      | ``NumericEquals`` (``<``: ``NumericLessThan`` ...)  |
| ``p == 'x'`` (strings)    | ``StringEquals`` (``<``: ``StringLessThan`` ...)    |
| ``p == true``, bare ``p`` | ``BooleanEquals``                                   |
| ``p != v``                | ``Not`` of the ``==`` rule                          |
| ``p < q`` (two paths)     | the ``...Path`` variant (``NumericLessThanPath``)   |
| ``p in [a, b]``           | ``Or`` of ``==`` rules                              |
| ``1 < p`` (literal left)  | operands swapped, operator mirrored                 |

A path whose type is not known statically (``any``) compared with another such path is
guarded by ``IsNumeric``/``IsString``/``IsBoolean`` so each comparison only sees its type.
Literal-only comparisons are folded at compile time.
"""

from __future__ import annotations

from typing import Any

from pipecast.ir import condition as c

from .paths import ref_path

_OPS = {
    "==": "Equals",
    "<": "LessThan",
    "<=": "LessThanEquals",
    ">": "GreaterThan",
    ">=": "GreaterThanEquals",
}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_GUARD = {"Numeric": "IsNumeric", "String": "IsString", "Boolean": "IsBoolean"}


def _family(operand: c.Path | c.Literal) -> str | None:
    """The Choice comparison family of an operand, from the type the core gave it (the
    parser types literals, the resolve pass types paths)."""
    type_name = operand.type
    if type_name in ("int", "float"):
        return "Numeric"
    if type_name == "str":
        return "String"
    if type_name == "bool":
        return "Boolean"
    return None


def _pipeline_name_literal(expr: c.Expr, pipeline_name: str) -> c.Expr:
    if isinstance(expr, c.Path) and expr.ref.kind == "pipeline" and expr.ref.name == "name":
        return c.Literal(pipeline_name, "str")
    return expr


TRUE_RULE: dict[str, Any] = {"IsPresent": True, "Variable": "$.pipeline"}


def _const(value: bool) -> dict[str, Any]:
    return dict(TRUE_RULE) if value else {"Not": dict(TRUE_RULE)}


def to_rule(expr: c.Expr, pipeline_name: str) -> dict[str, Any]:
    """A Choice rule (without ``Next``) that holds exactly when ``expr`` is true."""
    if isinstance(expr, c.BoolOp):
        key = "And" if expr.op == "and" else "Or"
        return {key: [to_rule(op, pipeline_name) for op in expr.operands]}
    if isinstance(expr, c.Not):
        return {"Not": to_rule(expr.operand, pipeline_name)}
    if isinstance(expr, c.Literal):
        return _const(bool(expr.value))
    if isinstance(expr, c.Path):
        if expr.ref.kind == "pipeline" and expr.ref.name == "name":
            return _const(bool(pipeline_name))
        return {"Variable": ref_path(expr.ref), "BooleanEquals": True}
    if isinstance(expr, c.In):
        return {"Or": [to_rule(c.Compare("==", expr.operand, opt), pipeline_name) for opt in expr.options]}
    if isinstance(expr, c.Compare):
        return _compare(expr, pipeline_name)
    raise TypeError(f"not a condition node: {expr!r}")


def _compare(expr: c.Compare, pipeline_name: str) -> dict[str, Any]:
    left = _pipeline_name_literal(expr.left, pipeline_name)
    right = _pipeline_name_literal(expr.right, pipeline_name)
    op = expr.op
    if isinstance(left, c.Literal) and isinstance(right, c.Literal):
        return _const(bool(c.evaluate(c.Compare(op, left, right), lambda r: None)))
    if isinstance(left, c.Literal):
        left, right, op = right, left, _MIRROR[op]
    if op == "!=":
        return {"Not": _compare(c.Compare("==", left, right), pipeline_name)}
    if not isinstance(left, c.Path):
        raise TypeError(f"comparison operand is not a path: {left!r}")
    var = ref_path(left.ref)
    if isinstance(right, c.Literal):
        family = _family(right)
        if family is None:
            raise TypeError(f"cannot compare with {right.value!r}")
        if family == "Boolean" and op != "==":
            raise TypeError("booleans compare with == and != only")
        return {"Variable": var, family + _OPS[op]: right.value}
    if not isinstance(right, c.Path):
        raise TypeError(f"comparison operand is not a path: {right!r}")
    other = ref_path(right.ref)
    family = _family(left) or _family(right)
    families = [family] if family else ["Numeric", "String", "Boolean"]
    rules = []
    for fam in families:
        if fam == "Boolean" and op != "==":
            continue
        rule: dict[str, Any] = {"Variable": var, fam + _OPS[op] + "Path": other}
        if family is None:
            rule = {
                "And": [{"Variable": var, _GUARD[fam]: True}, {"Variable": other, _GUARD[fam]: True}, rule]
            }
        rules.append(rule)
    return rules[0] if len(rules) == 1 else {"Or": rules}
