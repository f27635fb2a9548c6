"""What one file binds, collected in one walk: the raw material of the flow model.

For every scope (the module, each function, each class body) the expressions
assigned to each name, including dotted targets (``self.lr = lr``,
``args.lr = 0.1``) and tuple unpacking of tuple literals; each class's
class-level attributes and the ``self.<attr>`` assignments of its methods; the
options a command-line parser declares (``argparse`` ``add_argument``,
``set_defaults``, ``click.option``) with their defaults; and every call by the
last part of its callee's name, so that "who calls ``train``?" is a dictionary
look-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from rnnlint.names import ImportMap, assigned_names, dotted
from rnnlint.nodes import Visitor

Scope = cst.CSTNode  # cst.Module | cst.FunctionDef | cst.ClassDef
#: what an argparse flag without ``default=`` is when not given
_FLAG_DEFAULTS = {"store_true": "False", "store_false": "True"}


@dataclass
class Option:
    """A command-line option: ``add_argument("--lr", default=0.01)``."""

    dest: str
    flag: str
    default: cst.BaseExpression | None
    kind: str  # "argparse" | "click"
    call: cst.Call


@dataclass
class Site:
    """Where an expression stands: its file, the function and class around it."""

    file: "FileFacts"
    function: cst.FunctionDef | None = None
    cls: cst.ClassDef | None = None


@dataclass
class FileFacts:
    path: Path
    module: cst.Module
    imports: ImportMap
    assigns: dict[Scope, dict[str, list[cst.BaseExpression]]] = field(default_factory=dict)
    self_assigns: dict[cst.ClassDef, dict[str, list[tuple[cst.BaseExpression, cst.FunctionDef]]]] = field(
        default_factory=dict
    )
    functions: dict[str, cst.FunctionDef] = field(default_factory=dict)  # top level
    classes: dict[str, cst.ClassDef] = field(default_factory=dict)  # top level
    methods: dict[cst.ClassDef, dict[str, cst.FunctionDef]] = field(default_factory=dict)
    owner: dict[cst.FunctionDef, tuple[cst.FunctionDef | None, cst.ClassDef | None]] = field(default_factory=dict)
    options: dict[str, list[Option]] = field(default_factory=dict)
    calls: dict[str, list[tuple[cst.Call, cst.FunctionDef | None, cst.ClassDef | None]]] = field(
        default_factory=dict
    )
    returns: dict[cst.FunctionDef, list[cst.BaseExpression]] = field(default_factory=dict)
    positions: object = None  # node -> CodeRange, computed when a message needs a line
    _enclosing: dict | None = None  # id(node) -> innermost FunctionDef, see site_of()
    #: names bound by a ``for`` target or an unpacking the model cannot split: their values are unknown
    opaque: dict[Scope, set[str]] = field(default_factory=dict)
    #: ``id(node) -> (place in source order, ids of the loops around it in its scope)`` for every assigned
    #: value and every call: which assignments a use can see (see :meth:`reaches`)
    order: dict[int, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    #: ``id(loop) -> the names its ``for`` target binds afresh on every pass``
    loop_targets: dict[int, frozenset[str]] = field(default_factory=dict)

    def site_of(self, node: cst.CSTNode) -> Site:
        """The site of any node of this file: the innermost function around it (one walk, on first need)."""
        if self._enclosing is None:
            enclosing = _Enclosing()
            enclosing.walk(self.module)  # not ``node.children``: libcst builds each list with a visit
            self._enclosing = enclosing.found
        return self.site(self._enclosing.get(id(node)))

    def site(self, function: cst.FunctionDef | None) -> Site:
        if function is None:
            return Site(self)
        _, cls = self.owner.get(function, (None, None))
        return Site(self, function, cls)

    def assigned(self, scope: Scope, name: str) -> list[cst.BaseExpression]:
        return self.assigns.get(scope, {}).get(name, [])

    def reaches(self, value: cst.BaseExpression, use: cst.CSTNode, name: str) -> bool:
        """May ``name`` still hold ``value`` (one of its assignments in the scope) at ``use`` (a call, or
        another assigned value)? When the assignment comes first in the source, or a loop around both
        runs it again before the use, unless that loop's ``for`` binds ``name`` anew on every pass. A
        smoke test on CPU lengths that moves them to the GPU afterwards hands the model CPU lengths."""
        assigned, used = self.order.get(id(value)), self.order.get(id(use))
        if assigned is None or used is None:
            return True  # not placed (a node the collector did not see): as if it could
        if assigned[0] < used[0]:
            return True
        return any(loop in used[1] and name not in self.loop_targets.get(loop, ()) for loop in assigned[1])

    def function_named(self, name: str) -> cst.FunctionDef | None:
        """The function ``name`` calls at module level: a top-level function, ``Helpers.train``
        (a method of a top-level class), or ``train`` bound to one (``train = Helpers.train``)."""
        if name in self.functions:
            return self.functions[name]
        written = [name] if "." in name else [dotted(v) or "" for v in self.assigned(self.module, name)]
        for text in written:
            owner, _, method = text.partition(".")
            if owner in self.classes and method and "." not in method:
                found = self.methods.get(self.classes[owner], {}).get(method)
                if found is not None:
                    return found
        return None


class _Enclosing(Visitor):
    """``id(node) -> the innermost function around it`` (a function is its own), for every node."""

    def __init__(self) -> None:
        self.found: dict[int, cst.FunctionDef | None] = {}
        self.functions: list[cst.FunctionDef | None] = [None]

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.FunctionDef):
            self.functions.append(node)
        self.found[id(node)] = self.functions[-1]
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if isinstance(original_node, cst.FunctionDef):
            self.functions.pop()


def collect(path: Path, module: cst.Module, imports: ImportMap | None = None) -> FileFacts:
    facts = FileFacts(path, module, imports or ImportMap(module))
    _Collector(facts).walk(module)
    return facts


class _Collector(Visitor):
    def __init__(self, facts: FileFacts) -> None:
        self.facts = facts
        self.scopes: list[Scope] = [facts.module]
        self.functions: list[cst.FunctionDef] = []
        self.classes: list[cst.ClassDef | None] = []
        self.loops: list[list[int]] = [[]]  # per scope: the loops around the walk, outermost first
        self.ticks = 0

    def _place(self, node: cst.CSTNode) -> None:
        """Note where ``node`` stands: its place in source order and the loops around it."""
        self.ticks += 1
        self.facts.order[id(node)] = (self.ticks, tuple(self.loops[-1]))

    def visit_While(self, node: cst.While) -> None:
        self.loops[-1].append(id(node))

    def leave_While(self, original_node: cst.While) -> None:
        self.loops[-1].pop()

    def leave_For(self, original_node: cst.For) -> None:
        self.loops[-1].pop()

    # -- scopes ------------------------------------------------------------

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if len(self.scopes) == 1:
            self.facts.classes[node.name.value] = node
        self.facts.methods.setdefault(node, {})
        self.scopes.append(node)
        self.classes.append(node)
        self.loops.append([])

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.scopes.pop()
        self.classes.pop()
        self.loops.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        enclosing = self.scopes[-1]
        cls = enclosing if isinstance(enclosing, cst.ClassDef) else None
        if len(self.scopes) == 1:
            self.facts.functions[node.name.value] = node
        if cls is not None:
            self.facts.methods.setdefault(cls, {})[node.name.value] = node
        # a nested function keeps the class of the method around it (closures see ``self``)
        outer_cls = cls or (self.facts.owner.get(self.functions[-1], (None, None))[1] if self.functions else None)
        self.facts.owner[node] = (self.functions[-1] if self.functions else None, outer_cls)
        self.scopes.append(node)
        self.functions.append(node)
        self.loops.append([])

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scopes.pop()
        self.functions.pop()
        self.loops.pop()

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    # -- bindings ----------------------------------------------------------

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        name = dotted(node.target)
        if name:
            self._opaque(name)

    def visit_For(self, node: cst.For) -> None:
        self._opaque_target(node.target)
        self.facts.loop_targets[id(node)] = frozenset(assigned_names(node.target))
        self.loops[-1].append(id(node))

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._opaque_target(node.target)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._opaque_target(node.asname.name)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = [e.value for e in target.elements]
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(elements) and not any(
                isinstance(e, cst.StarredElement) for e in value.elements
            ):
                for sub, val in zip(elements, value.elements):
                    self._bind(sub, val.value)
            elif not any(isinstance(e, cst.StarredElement) for e in target.elements):
                # ``encoder, decoder = model``: each name is an element of the value
                for i, sub in enumerate(elements):
                    self._bind(sub, cst.Subscript(value=value, slice=[cst.SubscriptElement(cst.Index(cst.Integer(str(i))))]))
            else:
                for sub in elements:
                    self._opaque_target(sub)
            return
        name = dotted(target)
        if name is None:
            return
        scope = self.scopes[-1]
        self.facts.assigns.setdefault(scope, {}).setdefault(name, []).append(value)
        self._place(value)
        head, _, attr = name.partition(".")
        if head in ("self", "cls") and attr and "." not in attr and self.functions:
            # ``self.x = ...`` in a method, ``cls.x = ...`` in a classmethod: an attribute of the class
            cls = self.facts.owner.get(self.functions[-1], (None, None))[1]
            if cls is not None:
                self.facts.self_assigns.setdefault(cls, {}).setdefault(attr, []).append((value, self.functions[-1]))

    def _opaque_target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._opaque_target(element.value)
            return
        if isinstance(target, cst.StarredElement):
            self._opaque_target(target.value)
            return
        name = dotted(target)
        if name:
            self._opaque(name)

    def _opaque(self, name: str) -> None:
        self.facts.opaque.setdefault(self.scopes[-1], set()).add(name)

    def visit_Return(self, node: cst.Return) -> None:
        if self.functions and node.value is not None:
            self.facts.returns.setdefault(self.functions[-1], []).append(node.value)

    # -- calls and command-line options -------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func)
        if name is None and isinstance(node.func, cst.Attribute):
            name = node.func.attr.value
        if name is None:
            return
        last = name.rsplit(".", 1)[-1]
        function = self.functions[-1] if self.functions else None
        cls = self.facts.owner.get(function, (None, None))[1] if function is not None else None
        self.facts.calls.setdefault(last, []).append((node, function, cls))
        self._place(node)
        if last == "add_argument":
            self._option(node, "argparse")
        elif last == "option" and self.facts.imports.resolve_dotted(name).startswith("click"):
            self._option(node, "click")
        elif last == "set_defaults":
            for arg in node.args:
                if arg.keyword is not None:
                    self._add_option(Option(arg.keyword.value, arg.keyword.value, arg.value, "argparse", node))

    def _option(self, call: cst.Call, kind: str) -> None:
        dest = option_dest(call)
        if dest is None:
            return
        flag = next(
            (str(a.value.evaluated_value) for a in call.args
             if a.keyword is None and isinstance(a.value, cst.SimpleString)),
            dest,
        )
        default = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "default"), None)
        action = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "action"), None)
        if default is None and isinstance(action, cst.SimpleString) and action.evaluated_value in _FLAG_DEFAULTS:
            default = cst.Name(_FLAG_DEFAULTS[action.evaluated_value])  # --adam: False unless given
        self._add_option(Option(dest, flag, default, kind, call))

    def _add_option(self, option: Option) -> None:
        self.facts.options.setdefault(option.dest, []).append(option)


def option_dest(call: cst.Call) -> str | None:
    """The attribute ``add_argument('--lr', '--learning-rate', dest=...)`` sets on the namespace."""
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
