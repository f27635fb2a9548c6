from dataclasses import dataclass

import libcst as cst

from rnnlint.flow import library
from rnnlint.diagnostics import Applicability
from rnnlint.flow.resolve import flow_of, site_of
from rnnlint.flow.values import INSTANCE
from rnnlint.flow.loops import Placed, assignments, block, calls_inside, contains, definition, placed
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, find_all, keyword_arg
from rnnlint.flow.padding import file_context
from rnnlint.rule import Invalid, Rule, Valid, insert_before
from rnnlint.flow.training import Scope, training_code


@dataclass(frozen=True)
class _Carry:
    """``out, hidden = model(x, hidden)`` inside a loop: ``names`` flow back in."""

    call: cst.Call
    names: tuple[str, ...]  # ("hidden",) or ("h", "c") for ``model(x, (h, c))``
    where: Placed


class HiddenNotDetached(Rule):
    """A hidden state carried across training iterations without being detached.

    **What it catches.** A recurrent model's hidden state that is returned
    and fed back in on the next iteration of a loop that calls
    ``backward()`` (truncated backpropagation through time, stateful language
    models): ``output, hidden = model(x, hidden)``, ``out, (h, c) =
    lstm(x, (h, c))``, ``out, self.hidden = self.model(x, self.hidden)``,
    with nothing in that loop cutting the graph: no ``hidden.detach()``, no
    ``hidden.detach_()``, no ``.data``, no repackage helper of the project
    (a function that detaches, such as the classic ``repackage_hidden``,
    defined in the file or imported). A state re-created in each iteration
    (``hidden = model.init_hidden(bs)``, ``hidden = None``) is not carried and
    is not reported, nor is a state carried through the time steps of one
    sequence (a decoder loop) and re-created for the next batch. The finding
    is at the call that feeds the state back in.

    **Why it matters.** The returned state is still attached to the graph of
    the batch that produced it. The next ``backward()`` walks into the
    previous batch's freed graph and fails with "Trying to backward through
    the graph a second time"; silencing that with
    ``backward(retain_graph=True)`` makes every step backpropagate through the
    whole history: memory and step time grow with each batch and gradients
    through hundreds of steps explode or vanish. Truncated BPTT means
    detaching at the batch boundary.

    **Example.**

        hidden = model.init_hidden(batch_size)
        for x, y in batches:
            output, hidden = model(x, hidden)       # RNN030
            loss = criterion(output, y)
            loss.backward()

    **Fix safety.** Safe: inserts a detach at the top of the loop body (or
    just before the statement that feeds the state in, when the loop assigns
    the state earlier): ``hidden = hidden.detach()`` for a GRU/RNN tensor,
    ``hidden = tuple(h.detach() for h in hidden)`` for an LSTM's ``(h, c)``,
    a form that handles both when the type cannot be told, guarded by
    ``if hidden is not None:`` when the state may be ``None`` (it starts as
    ``None``, or comes from a caller). The values
    are unchanged; only the graph to earlier batches is cut. A
    ``retain_graph=True`` that only served to silence the error is left for
    you to remove.
    """

    code = "RNN030"
    name = "hidden-not-detached"
    fix_applicability = Applicability.SAFE
    triggers = ("backward",
                # a model that keeps its state on self between calls
                ("def forward", "LSTM"), ("def forward", "GRU"), ("def forward", "RNN"))

    def finish(self) -> None:
        f = training_code(self.ctx)
        helpers = {s.node.name.value for s in f.scopes
                   if isinstance(s.node, cst.FunctionDef) and any(e.kind == "backward" for e in s.events)}
        self._backward_helpers = helpers
        seen: set[tuple[int, tuple[str, ...]]] = set()
        for scope in f.scopes:
            if not helpers and not any(e.kind == "backward" for e in scope.events):
                continue
            for carry in self._carries(scope):
                self._check(scope, carry, seen)
        self._check_stateful_models()

    # -- a model that keeps its state on ``self`` ----------------------------------

    def _check_stateful_models(self) -> None:
        """``out, self.hidden = self.lstm(x, self.hidden)`` in a model's forward keeps the state on the
        model between calls. A training loop (here or in another file) that calls the model across
        ``backward()`` calls without resetting or detaching that state each iteration carries it: reported
        at the loop's call and at the forward's recurrent call, where the fix detaches it."""
        here = self.ctx.path.resolve()
        flow = self.ctx.index.flow()
        for carried in _carrying_calls(self.ctx):
            call, home, attr, _ = carried
            self.report(
                call,
                f"{dotted(call.func) or 'the model'}(...) runs {home[1]}, which keeps its recurrent state in "
                f"self.{attr} ({flow.display(home[0])}), across backward() calls: nothing in this loop resets or "
                f"detaches it, so backward() reaches into the previous batches' graph ('Trying to backward "
                f"through the graph a second time', or memory and step time growing with every batch); detach "
                f"self.{attr} in {home[1]}.forward (truncated BPTT) or reset it every iteration",
            )
        for cls in self.ctx.module.body:
            state = _stateful(cls) if isinstance(cls, cst.ClassDef) else None
            if state is None:
                continue
            attr, statement, call = state
            loops = []
            for other, words in flow.project_files().items():
                if cls.name.value in words and "backward" in words:
                    context = self.ctx if other == here else file_context(self.ctx, other)
                    loops += [c for c in (_carrying_calls(context) if context is not None else [])
                              if c[1] == (here, cls.name.value)]
            if not loops:
                continue
            _, _, _, where = loops[0]
            detach = (f"if self.{attr} is not None:\n"
                      f"    self.{attr} = tuple(h.detach() for h in self.{attr}) if isinstance(self.{attr}, tuple) "
                      f"else self.{attr}.detach()")
            self.report(
                call,
                f"self.{attr} is fed back into {dotted(call.func)}() on every call and never detached, and "
                f"{where} trains the model across backward() calls without resetting it: backward() reaches "
                f"into the previous batches' graph; detach it here (truncated BPTT)",
                fix=f"Detach self.{attr} before the recurrent call",
                edits=[insert_before(statement, detach)],
            )

    # -- finding the carried state -------------------------------------------

    def _carries(self, scope: Scope):
        for where in placed(self.ctx, scope):
            if not where.loops:
                continue
            for targets, value in assignments(where.statement):
                if not isinstance(value, cst.Call):
                    continue
                for position, arg in enumerate(value.args):
                    if arg.star:
                        continue
                    names = _state_names(arg.value)
                    if not names or not all(n in targets for n in names):
                        continue
                    if arg.keyword is None and position == 0 and len(names) == 1:
                        continue  # ``x = layer(x)``: the input, not a state
                    if len(targets) < 2 and not self._recurrent_callee(value.func, scope, strict=True):
                        continue  # ``h = f(x, h)`` only counts for a known recurrent module
                    yield _Carry(value, names, where)

    def _check(self, scope: Scope, carry: _Carry, seen: set) -> None:
        if not self._recurrent_callee(carry.call.func, scope, strict=False) or self._model_detaches(carry.call.func):
            return
        if any(isinstance(node, cst.With) and self._without_grad(node) for node, _ in carry.where.path):
            return  # evaluation under no_grad(): the state has no graph to cut
        for loop, child in carry.where.loops:  # innermost first
            if all(self._recreated(loop, child, n) for n in carry.names):
                return  # a fresh state each iteration of this loop: nothing is carried further out
            if not self._has_backward(scope, loop):
                continue  # carried through time steps of one sequence: the graph is meant to span them
            if all(self._detached(scope, loop, n) for n in carry.names):
                return
            key = (id(loop), carry.names)
            if key in seen:
                return
            seen.add(key)
            self._report(scope, carry, loop, child)
            return

    def _report(self, scope: Scope, carry: _Carry, loop: cst.CSTNode, child: cst.CSTNode) -> None:
        shown = carry.names[0] if len(carry.names) == 1 else f"({', '.join(carry.names)})"
        callee = dotted(carry.call.func) or "the model"
        retained = self._retains_graph(scope, loop)
        message = (
            f"hidden state {shown} returned by {callee}() is fed back in on the next iteration without "
            f".detach(): backward() reaches into the previous batches' graph, which fails with 'Trying to "
            f"backward through the graph a second time' or makes memory and step time grow with every batch"
        )
        if retained:
            message += "; backward(retain_graph=True) here only silences that error while the graph keeps growing"
        message += "; detach the state at the top of the loop (truncated BPTT)"
        if retained:
            message += " and drop retain_graph=True"
        anchor = self._anchor(loop, child, carry.names)
        if anchor is None:
            self.report(carry.call, message)
            return
        self.report(
            carry.call,
            message,
            fix=f"Detach {shown} at the top of the loop body",
            edits=[insert_before(anchor, self._detach_code(scope, carry))],
        )

    # -- loop facts -------------------------------------------------------------

    def _recreated(self, loop: cst.CSTNode, child: cst.CSTNode, name: str) -> bool:
        """Is ``name`` assigned a value not derived from itself, unconditionally, in the loop body?"""
        statements = block(loop)
        while statements:
            stmt = statements.pop(0)
            if stmt is child:
                continue
            if isinstance(stmt, cst.With):
                statements[:0] = block(stmt)
                continue
            for targets, value in assignments(stmt):
                if name in targets and not _mentions(value, name):
                    return True
        return False

    def _without_grad(self, node: cst.With) -> bool:
        for item in node.items:
            call = item.item
            if isinstance(call, cst.Call):
                name = self.ctx.qualname(call.func)
                if name in library.NO_GRAD_CONTEXTS or (name == "torch.set_grad_enabled" and call.args
                                        and dotted(call.args[0].value) == "False"):
                    return True
        return False

    def _has_backward(self, scope: Scope, loop: cst.CSTNode) -> bool:
        if any(e.kind == "backward" and contains(self.ctx, loop, e.call) for e in scope.events):
            return True
        for call in calls_inside(self.ctx, loop):
            name = dotted(call.func) or ""
            if name.removeprefix("self.") in self._backward_helpers:
                return True
        return False

    def _retains_graph(self, scope: Scope, loop: cst.CSTNode) -> bool:
        for e in scope.events:
            if e.kind == "backward" and contains(self.ctx, loop, e.call):
                arg = keyword_arg(e.call, "retain_graph")
                if arg is not None and dotted(arg.value) == "True":
                    return True
        return False

    def _detached(self, scope: Scope, loop: cst.CSTNode, name: str) -> bool:
        """Does anything in the loop cut ``name`` from the graph?"""
        for where in placed(self.ctx, scope):
            inner = [node for node, _ in where.path]
            if not any(node is loop for node in inner):
                continue
            for targets, value in assignments(where.statement):
                if name in targets and self._detaching(value, scope):
                    return True
            iterated = [n.iter for n in inner[inner.index(loop) + 1:] if isinstance(n, cst.For)]
            for call in calls_inside(self.ctx, where.statement):
                func = call.func
                if isinstance(func, cst.Attribute) and func.attr.value == "detach_":
                    if _mentions(func.value, name) or any(_mentions(it, name) for it in iterated):
                        return True  # hidden.detach_(); for h in hidden: h.detach_()
                elif self._is_detach_helper(dotted(func), scope) and any(_mentions(a.value, name) for a in call.args):
                    return True  # an in-place helper: detach_hidden(hidden)
        return False

    def _detaching(self, value: cst.BaseExpression, scope: Scope) -> bool:
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
                elif rule._is_detach_helper(dotted(func), scope):
                    found = True

        Finder().walk(value)
        return found

    def _is_detach_helper(self, name: str | None, scope: Scope) -> bool:
        """``repackage_hidden(h)``: a function of the project that detaches."""
        if not name:
            return False
        last = name.rsplit(".", 1)[-1]
        if "repackage" in last or "detach" in last or self.ctx.imports.resolve_dotted(name) == "torch.autograd.Variable":
            return True
        if name.startswith("self."):
            return any(
                isinstance(s.node, cst.FunctionDef) and s.node.name.value == last and s.cls is scope.cls
                and self._detaching(s.node.body, s)
                for s in training_code(self.ctx).scopes
            )
        found = definition(self.ctx, name)
        return found is not None and found.kind == "function" and _detach_calls(found.calls)

    # -- the model -----------------------------------------------------------------

    def _model_classes(self, func: cst.BaseExpression) -> list[str]:
        name = dotted(func)
        if name is None:
            return []
        return training_code(self.ctx).models.get(name.removesuffix(".forward"), [])

    def _recurrent_callee(self, func: cst.BaseExpression, scope: Scope, strict: bool) -> bool:
        """Is the called model recurrent? ``strict``: only when known, no file-level fallback."""
        classes = self._model_classes(func)
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

    def _model_detaches(self, func: cst.BaseExpression) -> bool:
        """A model class of this file whose ``forward`` detaches (a stateful module that cuts for you)."""
        classes = {c.rsplit(".", 1)[-1] for c in self._model_classes(func)}
        return any(
            isinstance(s.node, cst.FunctionDef) and s.node.name.value == "forward" and s.cls is not None
            and s.cls.name.value in classes and self._detaching(s.node.body, s)
            for s in training_code(self.ctx).scopes
        )

    # -- the fix ----------------------------------------------------------------------

    def _anchor(self, loop: cst.CSTNode, child: cst.CSTNode, names: tuple[str, ...]) -> cst.CSTNode | None:
        """Top of the loop body, or just before ``child`` when the loop assigns the state before it."""
        statements = block(loop)
        if isinstance(statements[0], cst.SimpleStatementSuite):
            return None  # ``for x in xs: out, h = m(x, h)`` on one line: not ours to split
        for stmt in statements:
            if stmt is child:
                break
            if any(_assigns(stmt, n) for n in names):
                return child
        return statements[0]

    def _detach_code(self, scope: Scope, carry: _Carry) -> str:
        names = carry.names
        if len(names) > 1:
            return f"{', '.join(names)} = {', '.join(n + '.detach()' for n in names)}"
        name = names[0]
        kind, maybe_none = self._state_kind(scope, carry)
        var = "h" if name != "h" else "s"
        line = {
            "tensor": f"{name} = {name}.detach()",
            "tuple": f"{name} = tuple({var}.detach() for {var} in {name})",
            "either": f"{name} = tuple({var}.detach() for {var} in {name}) if isinstance({name}, tuple) "
                      f"else {name}.detach()",
        }[kind]
        if maybe_none:
            return f"if {name} is not None:\n{self.ctx.module.default_indent}{line}"
        return line

    def _state_kind(self, scope: Scope, carry: _Carry) -> tuple[str, bool]:
        """("tensor" | "tuple" | "either", may the state be None?) from what is known of it."""
        name = carry.names[0]
        kinds: set[str] = set()
        for cls in self._model_classes(carry.call.func):
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


def _state_names(expr: cst.BaseExpression) -> tuple[str, ...]:
    """``hidden`` -> ("hidden",); ``(h, c)`` -> ("h", "c"); anything else -> ()."""
    name = dotted(expr)
    if name is not None:
        return (name,)
    if isinstance(expr, cst.Tuple) and expr.elements:
        names = tuple(dotted(e.value) for e in expr.elements)
        if all(names):
            return names  # type: ignore[return-value]
    return ()


def _stateful(cls: cst.ClassDef) -> tuple[str, cst.CSTNode, cst.Call] | None:
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
                if attr.startswith("self.") and attr in targets and not _detaches(forward, attr):
                    return attr[5:], statement, value
    return None


def _detaches(function: cst.FunctionDef, attr: str) -> bool:
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


def _carrying_calls(ctx) -> list[tuple[cst.Call, tuple, str, str]]:
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
                        state = _stateful(value.node)
                        if state is None or _resets(ctx, loops[0], call.func.value, state[0], value):
                            continue
                        line = flow.line(ctx.path.resolve(), call) or 1
                        found.append((call, (value.path, value.node.name.value), state[0],
                                      f"{flow.display(ctx.path.resolve())}:{line}"))
                        break
        return found

    return ctx.memo("rnn030.carrying", compute)


def _resets(ctx, loop: cst.CSTNode, model: str, attr: str, value) -> bool:
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


def _mentions(expr: cst.CSTNode, name: str) -> bool:
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


def _assigns(stmt: cst.CSTNode, name: str) -> bool:
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


def _detach_calls(calls: list[str]) -> bool:
    return any(c.rsplit(".", 1)[-1] in library.DETACH_METHODS or c.endswith("Variable") for c in calls)


_LM = """
    import torch
    import torch.nn as nn

    class RNNModel(nn.Module):
        def __init__(self, ntoken, rnn_type="LSTM", nhid=200, nlayers=2):
            super().__init__()
            self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers
            self.encoder = nn.Embedding(ntoken, nhid)
            if rnn_type in ("LSTM", "GRU"):
                self.rnn = getattr(nn, rnn_type)(nhid, nhid, nlayers)
            else:
                self.rnn = nn.RNN(nhid, nhid, nlayers, nonlinearity="tanh")
            self.decoder = nn.Linear(nhid, ntoken)

        def forward(self, x, hidden):
            output, hidden = self.rnn(self.encoder(x), hidden)
            return self.decoder(output), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            if self.rnn_type == "LSTM":
                return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
            return weight.new_zeros(self.nlayers, bsz, self.nhid)

    """

_REPACKAGE = """
    def repackage_hidden(h):
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    """

HiddenNotDetached.VALID = [
    # the classic word-level language model
    Valid(_LM + _REPACKAGE + """
    def train(model, batches, optimizer, criterion, bsz):
        model.train()
        hidden = model.init_hidden(bsz)
        for data, targets in batches:
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets)
            loss.backward()
            optimizer.step()

    model = RNNModel(10000)
    """),
    # the helper lives in another module of the project
    Valid(_LM + """
    from utils.state import detach_state as cut

    model = RNNModel(10000, rnn_type="GRU")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    hidden = model.init_hidden(32)
    for data, targets in []:
        hidden = cut(hidden)
        output, hidden = model(data, hidden)
        nn.functional.cross_entropy(output.flatten(0, 1), targets.flatten()).backward()
        opt.step()
        opt.zero_grad()
    """, files={
        "utils/__init__.py": "",
        "utils/state.py": """
            def detach_state(state):
                if isinstance(state, tuple):
                    return tuple(s.detach() for s in state)
                return state.detach()
            """,
    }),
    # GRU state detached in place, after the step
    Valid("""
    import torch
    from torch import nn

    gru = nn.GRU(16, 32, batch_first=True)
    head = nn.Linear(32, 16)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=1e-3)
    hidden = torch.zeros(1, 8, 32)
    for chunk, target in []:
        out, hidden = gru(chunk, hidden)
        loss = nn.functional.mse_loss(head(out), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hidden.detach_()
    """),
    # a fresh state for every batch
    Valid(_LM + """
    model = RNNModel(10000)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for data, targets in []:
        hidden = model.init_hidden(data.size(1))
        output, hidden = model(data, hidden)
        nn.functional.cross_entropy(output.flatten(0, 1), targets.flatten()).backward()
        opt.step()
        opt.zero_grad()
    """),
    # the state flows through the time steps of one sequence, and restarts with each batch
    Valid("""
    import torch
    import torch.nn as nn

    cell = nn.GRUCell(8, 16)
    opt = torch.optim.SGD(cell.parameters(), lr=0.1)
    for sequence in []:
        h = torch.zeros(1, 16)
        for x_t in sequence:
            h = cell(x_t, h)
        loss = h.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    """),
    # sampling: no backward(), nothing to cut
    Valid(_LM + """
    model = RNNModel(10000)
    hidden = model.init_hidden(1)
    x = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        for _ in range(100):
            output, hidden = model(x, hidden)
            x = output.argmax(-1)
    """),
    # not recurrent: a transformer with memories is out of scope
    Valid("""
    import torch
    from torch import nn

    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4), 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    mems = None
    for x in []:
        out, mems = model(x, mems)
        out.sum().backward()
        opt.step()
    """),
]

HiddenNotDetached.INVALID = [
    # the word-level language model without repackage_hidden
    Invalid(_LM + """
    def train(model, batches, optimizer, criterion, bsz):
        model.train()
        hidden = model.init_hidden(bsz)
        for data, targets in batches:
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets)
            loss.backward()
            optimizer.step()

    model = RNNModel(10000)
    """, lines=[31], fixed=_LM + """
    def train(model, batches, optimizer, criterion, bsz):
        model.train()
        hidden = model.init_hidden(bsz)
        for data, targets in batches:
            hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets)
            loss.backward()
            optimizer.step()

    model = RNNModel(10000)
    """),
    # retain_graph=True used to silence the error; a GRU's state is one tensor
    Invalid("""
    import torch
    from torch import nn

    gru = nn.GRU(16, 32, batch_first=True)
    opt = torch.optim.Adam(gru.parameters(), lr=1e-3)
    hidden = torch.zeros(1, 8, 32)
    for chunk, target in []:
        opt.zero_grad()
        out, hidden = gru(chunk, hidden)
        loss = nn.functional.mse_loss(out, target)
        loss.backward(retain_graph=True)
        opt.step()
    """, lines=[9], fixed="""
    import torch
    from torch import nn

    gru = nn.GRU(16, 32, batch_first=True)
    opt = torch.optim.Adam(gru.parameters(), lr=1e-3)
    hidden = torch.zeros(1, 8, 32)
    for chunk, target in []:
        hidden = hidden.detach()
        opt.zero_grad()
        out, hidden = gru(chunk, hidden)
        loss = nn.functional.mse_loss(out, target)
        loss.backward(retain_graph=True)
        opt.step()
    """),
    # an LSTM called directly with its (h, c) pair
    Invalid("""
    import torch
    import torch.nn as tnn

    lstm = tnn.LSTM(10, 20)
    opt = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    h, c = torch.zeros(1, 4, 20), torch.zeros(1, 4, 20)
    for x in []:
        opt.zero_grad()
        out, (h, c) = lstm(x, (h, c))
        out.pow(2).mean().backward()
        opt.step()
    """, lines=[9], fixed="""
    import torch
    import torch.nn as tnn

    lstm = tnn.LSTM(10, 20)
    opt = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    h, c = torch.zeros(1, 4, 20), torch.zeros(1, 4, 20)
    for x in []:
        h, c = h.detach(), c.detach()
        opt.zero_grad()
        out, (h, c) = lstm(x, (h, c))
        out.pow(2).mean().backward()
        opt.step()
    """),
    # class-based trainer, model from another file, state starting as None
    Invalid("""
    import torch
    from models.lm import StatefulLM

    class Trainer:
        def __init__(self, model):
            self.model = model
            self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            self.hidden = None

        def train_epoch(self, stream):
            for x, y in stream:
                self.optimizer.zero_grad()
                logits, self.hidden = self.model(x, self.hidden)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
                loss.backward()
                self.optimizer.step()

    Trainer(StatefulLM(5000)).train_epoch([])
    """, lines=[13], files={
        "models/__init__.py": "",
        "models/lm.py": """
            import torch.nn as nn
            class StatefulLM(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, 128)
                    self.rnn = nn.LSTM(128, 256, batch_first=True)
                    self.out = nn.Linear(256, vocab)
                def forward(self, x, state=None):
                    y, state = self.rnn(self.embed(x), state)
                    return self.out(y), state
            """,
    }, fixed="""
    import torch
    from models.lm import StatefulLM

    class Trainer:
        def __init__(self, model):
            self.model = model
            self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            self.hidden = None

        def train_epoch(self, stream):
            for x, y in stream:
                if self.hidden is not None:
                    self.hidden = tuple(h.detach() for h in self.hidden) if isinstance(self.hidden, tuple) else self.hidden.detach()
                self.optimizer.zero_grad()
                logits, self.hidden = self.model(x, self.hidden)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
                loss.backward()
                self.optimizer.step()

    Trainer(StatefulLM(5000)).train_epoch([])
    """),
]
