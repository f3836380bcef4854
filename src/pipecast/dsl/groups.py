"""Groups as context managers: ``for_each`` (fan-out) and ``when`` (condition, with else).

::

    per_region = for_each(regions, as_="region", parallelism=2, name="per_region")
    with per_region as region:
        t = train(table=ing.outputs.table, region=region)
        per_region.outputs(aucs=t.outputs.auc)

    with when(pick.outputs.best >= min_auc, name="publish") as publish:
        register(...)
    with publish.otherwise():
        alert(...)
"""

from __future__ import annotations

from typing import Any

from pipecast.dsl import _context
from pipecast.dsl._context import Builder, Position, ScopeRec, dsl_error
from pipecast.dsl.refs import (
    Cond,
    Value,
    check_visible,
    did_you_mean_output,
    group_output_value,
    loop_item_type,
    loop_value,
)
from pipecast.dsl.steps import after_names
from pipecast.ir import values
from pipecast.ir.refs import RefSyntaxError
from pipecast.passes.analysis import ANY, element_type, list_of
from pipecast.passes.frontend import is_single_reference


def _builder(what: str) -> Builder:
    builder = _context.active()
    if builder is None:
        raise dsl_error(f"{what} is used inside a @pipeline function only")
    return builder


class GroupOutputs:
    """``group.outputs``: call it to declare outputs, read them as attributes.

    ``per_region.outputs(aucs=t.outputs.auc)`` declares; ``per_region.outputs.aucs`` reads.
    """

    _group: Group

    def __init__(self, group: Group) -> None:
        object.__setattr__(self, "_group", group)

    def __call__(self, **outputs: Any) -> GroupOutputs:
        self._group._declare(outputs)
        return self

    def __getattr__(self, name: str) -> Value:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Value:
        group = self._group
        types = group._output_types()
        if name not in types:
            message = did_you_mean_output(f"group {group.name!r}", name, list(types))
            raise dsl_error(message, hint=f"declare it with {group.name}.outputs({name}=...)")
        return group_output_value(group, name, types[name])

    def __dir__(self) -> list[str]:
        return list(self._group._output_types())


class Group:
    """Base of :class:`ForEach` and :class:`When`."""

    kind = "group"

    def __init__(self, name: str | None, default_name: str, after: Any, description: str | None) -> None:
        self._builder = _builder(self.kind)
        self.where: Position = self._builder.where()
        self._requested = name
        self._default = default_name
        self.name = name or default_name
        self.after = after_names(after)
        self.description = description
        self.scope: ScopeRec | None = None
        self.body: ScopeRec | None = None
        self.outputs_data: dict[str, str] = {}
        self.output_types_: dict[str, str] = {}
        self.state = "new"  # new → open → closed
        self._builder.pending.append(self)

    # ----------------------------------------------------------------- recording
    def _open(self, branch: str) -> ScopeRec:
        builder = self._builder
        if _context.active() is not builder:
            raise dsl_error(f"{self.kind} {self.name!r} belongs to another pipeline build")
        if self.state != "new":
            raise dsl_error(f"'with {self.name}:' is used twice", hint="create a new group for another block")
        self.scope = builder.scope
        self.name = builder.claim(self._requested or self._default, self._requested is not None, self.where)
        builder.pending.remove(self)
        self.scope.items.append(self)
        builder.mark(self.scope.step_path(self.name), self.where)
        self.body = ScopeRec((*self.scope.step_path(self.name),), self.scope, self, branch)
        builder.stack.append(self.body)
        self.state = "open"
        return self.body

    def _close(self, scope: ScopeRec) -> None:
        builder = self._builder
        if builder.stack[-1] is not scope:
            raise dsl_error(f"the blocks of {self.name!r} are not nested properly")
        builder.stack.pop()
        self.state = "closed"

    # ----------------------------------------------------------------- outputs
    @property
    def outputs(self) -> GroupOutputs:
        """Declare outputs by calling, read them by attribute (see :class:`GroupOutputs`)."""
        return GroupOutputs(self)

    def _branch_for_outputs(self) -> tuple[dict[str, str], dict[str, str], ScopeRec]:
        raise NotImplementedError

    def _declare(self, outputs: dict[str, Any]) -> None:
        data, types, body = self._branch_for_outputs()
        builder = self._builder
        where = builder.where()
        for key, value in outputs.items():
            what = f"group {self.name!r}, output {key!r}"
            if not values.IDENT_RE.match(key):
                raise dsl_error(f"{what}: not a valid output name")
            if isinstance(value, Value):
                check_visible(value, builder, body, what)
                inner = value._type
                data[key] = str(value)
            elif isinstance(value, str):
                try:
                    lone = is_single_reference(value)
                except RefSyntaxError as exc:
                    raise dsl_error(f"{what}: {exc}") from None
                inner = ANY if lone else "str"
                data[key] = value
            else:
                raise dsl_error(
                    f"{what}: {value!r} is not a reference",
                    hint="a group output names an output of a step inside the group, e.g. t.outputs.auc",
                )
            types[key] = inner
            builder.mark((*body.path, "outputs"), where)
            builder.mark((*body.path, "outputs", key), where)

    def _output_types(self) -> dict[str, str]:
        return dict(self.output_types_)

    def _data(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pipecast {self.kind} {self.name}>"


class ForEach(Group):
    """``for_each(items, as_="item", parallelism=None, name=None, after=None)``: fan out.

    ``with for_each(...) as item:`` gives the loop item (``item["key"]`` / ``item.key`` for dict
    items). Group outputs collect a list per output, in item order. The default name is
    ``for_<as_>`` (``_2``, ``_3``... when taken).
    """

    kind = "for_each"

    def __init__(
        self,
        items: Any,
        *,
        as_: str = "item",
        parallelism: int | None = None,
        name: str | None = None,
        after: Any = None,
        description: str | None = None,
    ) -> None:
        super().__init__(name, f"for_{as_}".lower()[:63], after, description)
        builder = self._builder
        if not values.IDENT_RE.match(as_):
            raise dsl_error(f"as_={as_!r} is not a valid loop variable name", where=self.where)
        if as_ in builder.scope.loop_vars():
            raise dsl_error(
                f"as_={as_!r} hides the loop variable of an enclosing for_each",
                hint="pick another name with as_='...'",
                where=self.where,
            )
        if parallelism is not None and (
            isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1
        ):
            raise dsl_error(f"parallelism={parallelism!r} must be a positive integer", where=self.where)
        self.as_ = as_
        self.parallelism = parallelism
        what = f"for_each {self.name!r}"
        if isinstance(items, Value):
            check_visible(items, builder, builder.scope, what)
            if element_type(items._type) is None:
                raise dsl_error(
                    f"{what} runs over {items._ref.path}, a {items._type}; for_each needs a list",
                    where=self.where,
                )
            self.items: Any = str(items)
            self.item_type: str = loop_item_type(items._type)
        elif isinstance(items, list | tuple):
            from pipecast.dsl.refs import to_arg

            self.items = to_arg(list(items), "list", builder, what)
            kinds = {values.json_type_of(i) or ANY for i in self.items}
            self.item_type = kinds.pop() if len(kinds) == 1 else ANY
        elif isinstance(items, str) and "{{" in items:
            self.items, self.item_type = items, ANY
        else:
            raise dsl_error(
                f"{what} needs a list: a list literal, a list parameter or a list output, not {items!r}",
                where=self.where,
            )
        self.item = loop_value(self)

    def __enter__(self) -> Value:
        self._open("body")
        return self.item

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.body is not None and self.state == "open":
            self._close(self.body)

    def _branch_for_outputs(self) -> tuple[dict[str, str], dict[str, str], ScopeRec]:
        if self.body is None:
            raise dsl_error(f"declare the outputs of {self.name!r} inside or after its 'with' block")
        return self.outputs_data, self.output_types_, self.body

    def _output_types(self) -> dict[str, str]:
        return {k: list_of(v) for k, v in self.output_types_.items()}

    def _data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"for_each": self.items}
        if self.as_ != "item":
            data["as"] = self.as_
        if self.parallelism is not None:
            data["parallelism"] = self.parallelism
        return data


class When(Group):
    """``when(condition, name=None, after=None)``: run the block only when the condition holds.

    ``condition`` is SPEC §5 text, a boolean reference, or built with operators
    (``pick.outputs.best >= min_auc``, ``&``, ``|``, ``~``, ``.isin([...])``). Add an else
    branch with ``with group.otherwise():`` (or ``with otherwise():`` right after the block).
    Outputs: call ``group.outputs(x=...)`` inside each branch, with the same names.
    The default name is ``when`` (``when_2``...).
    """

    kind = "when"

    def __init__(
        self, condition: Any, *, name: str | None = None, after: Any = None, description: str | None = None
    ) -> None:
        super().__init__(name, "when", after, description)
        builder = self._builder
        cond = Cond.of(condition)
        for value in cond.values:
            check_visible(value, builder, builder.scope, f"the condition of {self.name!r}")
        self.condition = str(cond)
        self.else_body: ScopeRec | None = None
        self.else_outputs: dict[str, str] = {}
        self.else_types: dict[str, str] = {}
        self.else_state = "none"

    def __enter__(self) -> When:
        self._open("then")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.body is not None and self.state == "open":
            self._close(self.body)

    def otherwise(self) -> _Else:
        """The else branch: ``with group.otherwise(): ...``."""
        if self.state != "closed":
            raise dsl_error(f"open the else branch of {self.name!r} after its 'with' block")
        if self.else_state != "none":
            raise dsl_error(f"{self.name!r} already has an else branch")
        return _Else(self)

    def _branch_for_outputs(self) -> tuple[dict[str, str], dict[str, str], ScopeRec]:
        current = self._builder.scope
        if self.else_body is not None and current is self.else_body:
            return self.else_outputs, self.else_types, self.else_body
        if self.body is not None and current is self.body:
            return self.outputs_data, self.output_types_, self.body
        raise dsl_error(
            f"declare the outputs of when-group {self.name!r} inside its branches",
            hint=f"call {self.name}.outputs(...) inside 'with {self.name}:' and inside the else block",
        )

    def _output_types(self) -> dict[str, str]:
        out = dict(self.else_types)
        out.update(self.output_types_)
        return out

    def _data(self) -> dict[str, Any]:
        return {"when": self.condition}


class _Else:
    """Context manager for the else branch of a :class:`When`."""

    def __init__(self, group: When) -> None:
        self.group = group

    def __enter__(self) -> When:
        group = self.group
        builder = group._builder
        if builder.scope is not group.scope:
            raise dsl_error(f"open the else branch of {group.name!r} at the same level as its 'with' block")
        assert group.scope is not None
        path = (*group.scope.step_path(group.name), "else")
        group.else_body = ScopeRec(path, group.scope, group, "else")
        builder.mark(path, builder.where())
        builder.stack.append(group.else_body)
        group.else_state = "open"
        return group

    def __exit__(self, *exc: object) -> None:
        group = self.group
        builder = group._builder
        if group.else_body is not None and builder.stack[-1] is group.else_body:
            builder.stack.pop()
        group.else_state = "closed"


def otherwise() -> _Else:
    """The else branch of the ``when`` block just above: ``with otherwise(): ...``."""
    builder = _builder("otherwise()")
    items = builder.scope.items
    last = items[-1] if items else None
    if not isinstance(last, When) or last.state != "closed":
        raise dsl_error(
            "otherwise() must come right after a 'with when(...):' block",
            hint="or use 'with group.otherwise():' on the when group",
        )
    return last.otherwise()


def for_each(
    items: Any,
    *,
    as_: str = "item",
    parallelism: int | None = None,
    name: str | None = None,
    after: Any = None,
    description: str | None = None,
) -> ForEach:
    """Fan out over a list; see :class:`ForEach`."""
    return ForEach(items, as_=as_, parallelism=parallelism, name=name, after=after, description=description)


def when(
    condition: Any, *, name: str | None = None, after: Any = None, description: str | None = None
) -> When:
    """Run steps only when a condition holds; see :class:`When`."""
    return When(condition, name=name, after=after, description=description)


def group_data(group: Group, build_scope: Any) -> dict[str, Any]:
    """The IR mapping of a group; ``build_scope(scope)`` turns a scope into a steps map."""
    assert group.body is not None
    data: dict[str, Any] = {**group._data(), "steps": build_scope(group.body)}
    if group.outputs_data:
        data["outputs"] = dict(group.outputs_data)
    if group.after:
        data["after"] = list(group.after)
    if group.description is not None:
        data["description"] = group.description
    if isinstance(group, When) and group.else_body is not None:
        branch: dict[str, Any] = {"steps": build_scope(group.else_body)}
        if group.else_outputs:
            branch["outputs"] = dict(group.else_outputs)
        data["else"] = branch
    return data
