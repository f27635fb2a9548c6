"""Following a number from where it is used to where it is written.

``Adam(model.parameters(), lr=args.lr)`` is only a finding if we can see that
``args.lr`` defaults to ``0.01``. This module folds simple constant
expressions and follows names through assignments in the same scope or at
module level, function parameter defaults, ``argparse`` ``add_argument``
defaults and ``click.option`` defaults in the same file. It returns the value
and the literal node that holds it, so a fix can edit the number where it is
written.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import libcst as cst

from rnnlint.names import dotted
from rnnlint.nodes import Visitor
from rnnlint.rule import FileContext
from rnnlint.training import Scope, facts

_OPS = {
    cst.Multiply: operator.mul,
    cst.Divide: operator.truediv,
    cst.Add: operator.add,
    cst.Subtract: operator.sub,
    cst.Power: operator.pow,
}


@dataclass(frozen=True)
class Number:
    value: float
    literal: cst.BaseExpression  # the node to rewrite to change the value
    origin: str  # where the value came from, for messages: "" when written in place


def number(ctx: FileContext, expr: cst.BaseExpression | None, scope: Scope | None, depth: int = 0) -> Number | None:
    if expr is None or depth > 8:
        return None
    if isinstance(expr, (cst.Integer, cst.Float)):
        try:
            return Number(float(expr.evaluated_value), expr, "")
        except (ValueError, OverflowError):
            return None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = number(ctx, expr.expression, scope, depth + 1)
        return Number(-inner.value, expr, inner.origin) if inner else None
    if isinstance(expr, cst.BinaryOperation) and type(expr.operator) in _OPS:
        left = number(ctx, expr.left, scope, depth + 1)
        right = number(ctx, expr.right, scope, depth + 1)
        if left is None or right is None:
            return None
        try:
            value = _OPS[type(expr.operator)](left.value, right.value)
        except (ZeroDivisionError, OverflowError):
            return None
        return Number(float(value), expr, left.origin or right.origin)
    if isinstance(expr, cst.Call) and dotted(expr.func) == "float" and len(expr.args) == 1:
        return number(ctx, expr.args[0].value, scope, depth + 1)
    name = dotted(expr)
    if name is None:
        return None
    return _follow(ctx, name, scope, depth)


def _follow(ctx: FileContext, name: str, scope: Scope | None, depth: int) -> Number | None:
    f = facts(ctx)
    module_scope = f.scopes[0]
    for candidate in (scope, module_scope):
        if candidate is None:
            continue
        values = candidate.assigned.get(name)
        if values:
            found = number(ctx, values[-1], candidate, depth + 1)
            if found:
                origin = found.origin or f"{name} = {ctx.code(found.literal)}"
                return Number(found.value, found.literal, origin)
        if "." not in name and isinstance(candidate.node, cst.FunctionDef):
            default = _param_default(candidate.node, name)
            if default is not None:
                found = number(ctx, default, None, depth + 1)
                if found:
                    return Number(found.value, found.literal, f"default of parameter {name}")
            click_found = _click_default(ctx, candidate.node, name)
            if click_found:
                return click_found
    if "." in name:  # args.lr, opt.learning_rate, config.lr
        attribute = name.rsplit(".", 1)[1]
        return _argparse_default(ctx, attribute)
    return None


def _param_default(function: cst.FunctionDef, name: str) -> cst.BaseExpression | None:
    for param in (*function.params.params, *function.params.kwonly_params):
        if param.name.value == name and param.default is not None:
            return param.default
    return None


def _option_dest(call: cst.Call) -> str | None:
    """The destination name of ``add_argument('--lr', '--learning-rate', dest=...)``."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "dest" and isinstance(arg.value, cst.SimpleString):
            return str(arg.value.evaluated_value)
    flags = [
        str(a.value.evaluated_value)
        for a in call.args
        if a.keyword is None and isinstance(a.value, cst.SimpleString)
    ]
    longs = [f for f in flags if f.startswith("--")]
    chosen = longs[0] if longs else (flags[0] if flags else None)
    if chosen is None:
        return None
    return chosen.lstrip("-").replace("-", "_")


def _default_of(call: cst.Call) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "default":
            return arg.value
    return None


def _argparse_default(ctx: FileContext, attribute: str) -> Number | None:
    def collect() -> dict[str, tuple[cst.Call, str]]:
        found: dict[str, tuple[cst.Call, str]] = {}

        class Finder(Visitor):
            def visit_Call(self, node: cst.Call) -> None:
                if isinstance(node.func, cst.Attribute) and node.func.attr.value == "add_argument":
                    dest = _option_dest(node)
                    if dest:
                        found[dest] = (node, "argparse")
                elif dotted(node.func) in ("click.option", "option"):
                    dest = _option_dest(node)
                    if dest:
                        found.setdefault(dest, (node, "click"))

        Finder().walk(ctx.module)
        return found

    options = ctx.memo("constants.cli_options", collect)
    hit = options.get(attribute)
    if hit is None:
        return None
    call, kind = hit
    found = number(ctx, _default_of(call), None, 1)
    if found is None:
        return None
    flag = next((str(a.value.evaluated_value) for a in call.args
                 if a.keyword is None and isinstance(a.value, cst.SimpleString)), attribute)
    return Number(found.value, found.literal, f"{kind} default of {flag}")


def _click_default(ctx: FileContext, function: cst.FunctionDef, name: str) -> Number | None:
    for decorator in function.decorators:
        call = decorator.decorator
        if isinstance(call, cst.Call) and dotted(call.func) in ("click.option", "option"):
            if _option_dest(call) == name:
                found = number(ctx, _default_of(call), None, 1)
                if found:
                    return Number(found.value, found.literal, f"click default of --{name.replace('_', '-')}")
    return None
