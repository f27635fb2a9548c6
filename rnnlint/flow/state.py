"""Recurrent state carried from one training iteration to the next, and what cuts it (RNN030).

``out, hidden = model(x, hidden)`` in a loop that calls ``backward()`` carries
``hidden`` into the next iteration's graph unless something in that loop cuts
it: a ``.detach()``, ``.data``, a repackaging helper of the project, a fresh
state made each iteration, or ``no_grad()`` around it. A model may keep its
state on ``self`` instead (``out, self.hidden = self.lstm(x, self.hidden)``),
carried by whatever loop trains it, here or in another file. This module
finds both and says what is known of the state (its form, whether it may be
None); RNN030 judges and fixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from rnnlint.flow import library
from rnnlint.flow.loops import Placed, assignments, block, calls_inside, contains, definition, placed
from rnnlint.flow.resolve import flow_of, site_of
from rnnlint.flow.training import Scope, training_code
from rnnlint.flow.values import INSTANCE
from rnnlint.names import assigned_names, dotted
from rnnlint.nodes import Visitor, find_all, keyword_arg


@dataclass(frozen=True)
class Carry:
    """``out, hidden = model(x, hidden)`` inside a loop: ``names`` flow back in."""

    call: cst.Call
    names: tuple[str, ...]  # ("hidden",) or ("h", "c") for ``model(x, (h, c))``
    where: Placed


class CarriedState:
    """The questions RNN030 asks of one file's training loops."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        #: functions of the file that call ``backward()``: a loop that calls one trains too
        self.backward_helpers = {s.node.name.value for s in training_code(ctx).scopes
                                 if isinstance(s.node, cst.FunctionDef) and any(e.kind == "backward" for e in s.events)}

    def crossing(self, scope: Scope, carry: "Carry") -> tuple[cst.CSTNode, cst.CSTNode] | None:
        """The loop (and its body statement leading to the carry) across whose ``backward()`` the state is
        carried with nothing cutting it; None when it is cut, fresh, or carried within one sequence."""
        if not self.recurrent_callee(carry.call.func, scope, strict=False) or self.model_detaches(carry.call.func):
            return None
        if any(isinstance(node, cst.With) and self.without_grad(node) for node, _ in carry.where.path):
            return None  # evaluation under no_grad(): the state has no graph to cut
        for loop, child in carry.where.loops:  # innermost first
            if all(self.recreated(loop, child, n) for n in carry.names):
                return None  # a fresh state each iteration of this loop: nothing is carried further out
            if not self.has_backward(scope, loop):
                continue  # carried through time steps of one sequence: the graph is meant to span them
            if all(self.detached(scope, loop, n) for n in carry.names):
                return None
            return loop, child
        return None

    def carries(self, scope: Scope):
        for where in placed(self.ctx, scope):
            if not where.loops:
                continue
            for targets, value in assignments(where.statement):
                if not isinstance(value, cst.Call):
                    continue
                for position, arg in enumerate(value.args):
                    if arg.star:
                        continue
                    names = state_names(arg.value)
                    if not names or not all(n in targets for n in names):
                        continue
                    if arg.keyword is None and position == 0 and len(names) == 1:
                        continue  # ``x = layer(x)``: the input, not a state
                    if len(targets) < 2 and not self.recurrent_callee(value.func, scope, strict=True):
                        continue  # ``h = f(x, h)`` only counts for a known recurrent module
                    yield Carry(value, names, where)

    def recreated(self, loop: cst.CSTNode, child: cst.CSTNode, name: str) -> bool:
        """Is ``name`` assigned a value not derived from itself, unconditionally, in the loop body (or bound
        by the loop's own target: ``for x, h in batches:`` gives a new ``h`` each iteration)?"""
        if isinstance(loop, cst.For) and name in assigned_names(loop.target):
            return True
        statements = block(loop)
        while statements:
            stmt = statements.pop(0)
            if stmt is child:
                continue
            if isinstance(stmt, cst.With):
                statements[:0] = block(stmt)
                continue
            for targets, value in assignments(stmt):
                if name in targets and not mentions(value, name):
                    return True
        return False

    def without_grad(self, node: cst.With) -> bool:
        for item in node.items:
            call = item.item
            if isinstance(call, cst.Call):
                name = self.ctx.qualname(call.func)
                if name in library.NO_GRAD_CONTEXTS or (name == "torch.set_grad_enabled" and call.args
                                        and dotted(call.args[0].value) == "False"):
                    return True
        return False

    def has_backward(self, scope: Scope, loop: cst.CSTNode) -> bool:
        if any(e.kind == "backward" and contains(self.ctx, loop, e.call) for e in scope.events):
            return True
        for call in calls_inside(self.ctx, loop):
            name = dotted(call.func) or ""
            if name.removeprefix("self.") in self.backward_helpers:
                return True
        return False

    def retains_graph(self, scope: Scope, loop: cst.CSTNode) -> bool:
        for e in scope.events:
            if e.kind == "backward" and contains(self.ctx, loop, e.call):
                arg = keyword_arg(e.call, "retain_graph")
                if arg is not None and dotted(arg.value) == "True":
                    return True
        return False

    def detached(self, scope: Scope, loop: cst.CSTNode, name: str) -> bool:
        """Does anything in the loop cut ``name`` from the graph?"""
        for where in placed(self.ctx, scope):
            inner = [node for node, _ in where.path]
            if not any(node is loop for node in inner):
                continue
            for targets, value in assignments(where.statement):
                if name in targets and self.detaching(value, scope):
                    return True
            iterated = [n.iter for n in inner[inner.index(loop) + 1:] if isinstance(n, cst.For)]
            for call in calls_inside(self.ctx, where.statement):
                func = call.func
                if isinstance(func, cst.Attribute) and func.attr.value == "detach_":
                    if mentions(func.value, name) or any(mentions(it, name) for it in iterated):
                        return True  # hidden.detach_(); for h in hidden: h.detach_()
                elif self.is_detach_helper(dotted(func), scope) and any(mentions(a.value, name) for a in call.args):
                    return True  # an in-place helper: detach_hidden(hidden)
        return False

    def detaching(self, value: cst.BaseExpression, scope: Scope) -> bool:
        """Does ``value`` produce a state cut from the graph?"""
        found = False
        rule = self

        class Finder(Visitor):
            def visit_Attribute(self, node: cst.Attribute) -> None:
                nonlocal found
                if node.attr.value == "data":
                    found = True

            def visit_Call(self, node: cst.Call) -> None:
                nonlocal found
                func = node.func
                if isinstance(func, cst.Attribute) and func.attr.value in library.DETACH_METHODS:
                    found = True
                elif rule.is_detach_helper(dotted(func), scope):
                    found = True

        Finder().walk(value)
        return found

    def is_detach_helper(self, name: str | None, scope: Scope) -> bool:
        """``repackage_hidden(h)``: a function of the project that detaches."""
        if not name:
            return False
        last = name.rsplit(".", 1)[-1]
        if "repackage" in last or "detach" in last or self.ctx.imports.resolve_dotted(name) == "torch.autograd.Variable":
            return True
        if name.startswith("self."):
            return any(
                isinstance(s.node, cst.FunctionDef) and s.node.name.value == last and s.cls is scope.cls
                and self.detaching(s.node.body, s)
                for s in training_code(self.ctx).scopes
            )
        found = definition(self.ctx, name)
        return found is not None and found.kind == "function" and detach_calls(found.calls)

    def model_classes(self, func: cst.BaseExpression) -> list[str]:
        name = dotted(func)
        if name is None:
            return []
        return training_code(self.ctx).models.get(name.removesuffix(".forward"), [])

    def recurrent_callee(self, func: cst.BaseExpression, scope: Scope, strict: bool) -> bool:
        """Is the called model recurrent? ``strict``: only when known, no file-level fallback."""
        classes = self.model_classes(func)
        if classes:
            return any(self.ctx.is_recurrent(c) for c in classes)
        name = dotted(func)
        if name and not name.startswith("self.") and self.ctx.is_recurrent(name):
            return True
        if strict:
            return False
        if scope.cls is not None and self.ctx.is_recurrent(scope.cls.name.value):
            return True
        return training_code(self.ctx).mentions_recurrent

    def model_detaches(self, func: cst.BaseExpression) -> bool:
        """A model class of this file whose ``forward`` detaches (a stateful module that cuts for you)."""
        classes = {c.rsplit(".", 1)[-1] for c in self.model_classes(func)}
        return any(
            isinstance(s.node, cst.FunctionDef) and s.node.name.value == "forward" and s.cls is not None
            and s.cls.name.value in classes and self.detaching(s.node.body, s)
            for s in training_code(self.ctx).scopes
        )

    def state_kind(self, scope: Scope, carry: Carry) -> tuple[str, bool]:
        """("tensor" | "tuple" | "either", may the state be None?) from what is known of it."""
        name = carry.names[0]
        kinds: set[str] = set()
        for cls in self.model_classes(carry.call.func):
            resolved = self.ctx.imports.resolve_dotted(cls)
            if resolved in library.TUPLE_STATE:
                kinds.add("tuple")
            elif resolved in library.TENSOR_STATE:
                kinds.add("tensor")
        scopes = [scope]
        if name.startswith("self."):
            scopes = [s for s in training_code(self.ctx).scopes if s.cls is scope.cls]
        values = [value for s in scopes for value in s.assigned.get(name, [])]
        maybe_none = not values  # a parameter, or set elsewhere: the caller may pass None
        for value in values:
            if isinstance(value, cst.Name) and value.value == "None":
                maybe_none = True
            elif isinstance(value, (cst.Tuple, cst.List)):
                kinds.add("tuple")
            elif isinstance(value, cst.Call) and (dotted(value.func) or "").rsplit(".", 1)[-1] in library.FRESH_TENSORS:
                kinds.add("tensor")
        node = scope.node
        if isinstance(node, cst.FunctionDef):
            for param in (*node.params.params, *node.params.kwonly_params):
                if param.name.value == name and isinstance(param.default, cst.Name) and param.default.value == "None":
                    maybe_none = True
        kind = kinds.pop() if len(kinds) == 1 else "either"
        return kind, maybe_none


def state_names(expr: cst.BaseExpression) -> tuple[str, ...]:
    """``hidden`` -> ("hidden",); ``(h, c)`` -> ("h", "c"); anything else -> ()."""
    name = dotted(expr)
    if name is not None:
        return (name,)
    if isinstance(expr, cst.Tuple) and expr.elements:
        names = tuple(dotted(e.value) for e in expr.elements)
        if all(names):
            return names  # type: ignore[return-value]
    return ()


def stateful(cls: cst.ClassDef) -> tuple[str, cst.CSTNode, cst.Call] | None:
    """``(attr, statement, call)`` of ``..., self.attr = self.rnn(x, self.attr)`` in ``cls.forward``, when
    forward does not detach ``self.attr`` itself."""
    forward = next((s for s in block(cls) if isinstance(s, cst.FunctionDef) and s.name.value == "forward"), None)
    if forward is None:
        return None
    for statement in block(forward):  # forward's own statements: one inside a time loop carries per step
        for targets, value in assignments(statement):
            if not isinstance(value, cst.Call) or not (dotted(value.func) or "").startswith("self."):
                continue
            for arg in value.args[1:]:
                attr = dotted(arg.value) or ""
                if attr.startswith("self.") and attr in targets and not detaches(forward, attr):
                    return attr[5:], statement, value
    return None


def detaches(function: cst.FunctionDef, attr: str) -> bool:
    """Does ``function`` cut the graph of ``attr`` (``attr.detach()``, ``attr.detach_()``, ``attr.data``, or a
    detach inside an expression that reads it: ``tuple(h.detach() for h in attr)``)?"""
    for call in find_all(function, cst.Call):
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in library.DETACH_METHODS and \
                dotted(call.func.value) == attr:
            return True
    for node in find_all(function, cst.Attribute):
        if node.attr.value == "data" and dotted(node.value) == attr:
            return True
    for comp in find_all(function, (cst.GeneratorExp, cst.ListComp)):
        if ".detach()" in cst.Module(body=[]).code_for_node(comp) and any(
                dotted(n) == attr for n in find_all(comp, cst.Attribute)):
            return True
    return False


def carrying_calls(ctx) -> list[tuple[cst.Call, tuple, str, str]]:
    """Calls in training loops of ``ctx``'s file of a model that keeps its state on ``self``, with no reset
    or detach of that state in the loop: ``(call, (file, class), attr, "train.py:22")``."""
    def compute():
        flow, _ = flow_of(ctx)
        found = []
        for scope in training_code(ctx).scopes:
            if not any(e.kind == "backward" for e in scope.events):
                continue
            for where in placed(ctx, scope):
                loops = [loop for loop, _ in where.loops
                         if any(e.kind == "backward" and contains(ctx, loop, e.call) for e in scope.events)]
                if not loops:
                    continue
                for call in find_all(where.statement, cst.Call):
                    if not isinstance(call.func, cst.Name):
                        continue
                    for value in flow.values(call.func, site_of(ctx, call), models=True):
                        if value.kind != INSTANCE or value.node is None:
                            continue
                        state = stateful(value.node)
                        if state is None or resets(ctx, loops[0], call.func.value, state[0], value):
                            continue
                        line = flow.line(ctx.path.resolve(), call) or 1
                        found.append((call, (value.path, value.node.name.value), state[0],
                                      f"{flow.display(ctx.path.resolve())}:{line}"))
                        break
        return found

    return ctx.memo("state.carrying", compute)


def resets(ctx, loop: cst.CSTNode, model: str, attr: str, value) -> bool:
    """Does the loop body reset or detach ``model.attr``: assign it, detach it, or call a method of the
    model that assigns ``self.attr`` (``model.reset_state(bs)``, ``model.init_hidden()``)?"""
    flow = ctx.index.flow()
    facts_of_class = flow.file(value.path)
    methods = facts_of_class.methods.get(value.node, {}) if facts_of_class is not None else {}
    for call in calls_inside(ctx, loop):
        name = dotted(call.func) or ""
        if name in (f"{model}.{attr}.detach", f"{model}.{attr}.detach_"):
            return True
        if name.startswith(f"{model}.") and name.count(".") == 1:
            method = methods.get(name.split(".", 1)[1])
            if method is not None and any(f"self.{attr}" in targets for stmt in find_all(method, cst.SimpleStatementLine)
                                          for targets, _ in assignments(stmt)):
                return True
    for stmt in find_all(loop, cst.SimpleStatementLine):
        for targets, _ in assignments(stmt):
            if f"{model}.{attr}" in targets:
                return True
    return False


def mentions(expr: cst.CSTNode, name: str) -> bool:
    """Does ``expr`` read ``name`` (``hidden``, ``self.hidden``, ``hidden[0]``)?"""
    found = False

    class Finder(Visitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            nonlocal found
            text = dotted(node)
            if text is not None and (text == name or text.startswith(name + ".")):
                found = True
            self.walk(node.value)  # not ``attr``: ``self.hidden`` does not read ``hidden``
            return False

        def visit_Name(self, node: cst.Name) -> None:
            nonlocal found
            if node.value == name:
                found = True

    Finder().walk(expr)
    return found


def assigns(stmt: cst.CSTNode, name: str) -> bool:
    """Is ``name`` assigned anywhere under ``stmt``?"""
    if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return any(name in targets for targets, _ in assignments(stmt))
    found = False

    class Finder(Visitor):
        def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
            nonlocal found
            found = found or any(name in targets for targets, _ in assignments(node))
            return False

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

    Finder().walk(stmt)
    return found


def detach_calls(calls: list[str]) -> bool:
    return any(c.rsplit(".", 1)[-1] in library.DETACH_METHODS or c.endswith("Variable") for c in calls)

