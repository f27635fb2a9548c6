"""Small queries over libcst trees that many rules need."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Mapping, TypeVar

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

N = TypeVar("N", bound=cst.CSTNode)


class Visitor(cst.CSTVisitor):
    """A libcst visitor without the per-attribute hooks.

    libcst's default ``on_visit_attribute`` looks up a ``visit_<Node>_<field>``
    method for every field of every node; nothing here uses those hooks, and
    skipping the lookups makes a walk markedly cheaper. Every visitor of
    rnnlint derives from this class; run one with ``visitor.walk(node)``.
    """

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass

    def walk(self, node: cst.CSTNode) -> None:
        """``node.visit(self)``, several times faster.

        libcst's ``visit`` rebuilds (and re-validates) every node of the tree,
        because the same traversal serves transformers; a visitor never uses
        the copy. This walk calls the same ``on_visit``/``on_leave`` on the same
        nodes in the same order, reading each node's children in the order
        libcst's own traversal does, but never enters :data:`TRIVIA` (whitespace,
        comments, punctuation and operator tokens: two nodes in three of a
        typical file, and no rnnlint visitor reads them; an edit that needs one
        reaches it through its parent's field). Nor does it call the
        ``visit_<Node>``/``leave_<Node>`` that do nothing, which every visitor
        inherits from libcst for every node type, or enter the :data:`LEAVES`
        (names, numbers, strings: a third of the rest) a visitor has no method
        for. ``tests/test_libcst_shortcuts.py`` compares it with libcst's own
        traversal.
        """
        kind = type(self)
        plan = kind.__dict__.get("_walk_plan")  # the class's own: a subclass has methods of its own
        if plan is None:
            plan = kind._walk_plan = ({}, *_passed_over(kind))
        _walk(self, node, *plan)


def _walk(visitor: cst.CSTVisitor, node: cst.CSTNode, table: dict, skip: frozenset, skip_single: frozenset) -> None:
    """:meth:`Visitor.walk`; ``table``: node type -> what the visitor's class calls on entering and on
    leaving such a node, looked up once per type (libcst's hooks look a method up by name at every node);
    ``skip``: the node types not entered (see :func:`_passed_over`), and ``skip_single`` with None and
    MaybeSentinel (what a field that holds one node may hold instead)."""
    methods = table.get(type(node))
    if methods is None:
        methods = table[type(node)] = _methods_for(type(visitor), type(node))
    visit, leave, hooks = methods
    # ``visit_<Node>`` prunes by returning False; an ``on_visit`` hook of its own by returning anything falsy
    if visit is None or (visit(visitor, node) if hooks else visit(visitor, node) is not False):
        for name in _CODE_FIXED.get(type(node)) or _code_order(node):
            child = getattr(node, name)  # a node, a sequence of nodes, None or MaybeSentinel
            if type(child) is tuple or type(child) is list:
                for item in child:
                    if type(item) not in skip:
                        _walk(visitor, item, table, skip, skip_single)
            elif type(child) not in skip_single:
                _walk(visitor, child, table, skip, skip_single)
    if leave is not None:
        leave(visitor, node)


def _passed_over(visitor_class: type) -> tuple[frozenset, frozenset]:
    """The node types a walk of ``visitor_class`` need not enter: :data:`TRIVIA`, and the :data:`LEAVES`
    it calls nothing on (a visitor with ``on_visit``/``on_leave`` hooks of its own sees every node)."""
    if visitor_class.on_visit is _LIBCST_VISIT and visitor_class.on_leave is _LIBCST_LEAVE:
        leaves = {leaf for leaf in LEAVES if _own(visitor_class, f"visit_{leaf.__name__}") is None
                  and _own(visitor_class, f"leave_{leaf.__name__}") is None}
    else:
        leaves = set()
    skip = TRIVIA | leaves
    return frozenset(skip), frozenset(skip | {type(None), cst.MaybeSentinel})


def _methods_for(visitor_class: type, node_class: type) -> tuple:
    """libcst's ``on_visit``/``on_leave`` call ``visit_<Node>``/``leave_<Node>`` when the class has them; a
    visitor with hooks of its own gets those."""
    if visitor_class.on_visit is _LIBCST_VISIT and visitor_class.on_leave is _LIBCST_LEAVE:
        name = node_class.__name__
        return _own(visitor_class, "visit_" + name), _own(visitor_class, "leave_" + name), False
    return visitor_class.on_visit, visitor_class.on_leave, True  # children when on_visit's answer is truthy


def _own(visitor_class: type, method: str):
    """The visitor's ``visit_<Node>``/``leave_<Node>``, or None where it has libcst's: every visitor inherits
    one that does nothing (and returns None: the children are visited) for every node type."""
    found = getattr(visitor_class, method, None)
    return None if found is getattr(cst.CSTVisitor, method, None) else found


_LIBCST_VISIT = cst.CSTVisitor.on_visit
_LIBCST_LEAVE = cst.CSTVisitor.on_leave


class _FieldOrder(cst.CSTVisitor):
    """Records which fields libcst's traversal visits, in its order (children not entered)."""

    def __init__(self) -> None:
        self.fields: dict[str, None] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields[attribute] = None

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


def _visited_fields(node: cst.CSTNode) -> tuple[str, ...]:
    recorder = _FieldOrder()
    node._visit_and_replace_children(recorder)
    return tuple(recorder.fields)


def _concrete(*bases: type) -> set[type]:
    found: set[type] = set()
    todo = list(bases)
    while todo:
        kind = todo.pop()
        todo.extend(kind.__subclasses__())
        if not kind.__name__.startswith("Base"):
            found.add(kind)
    return found


#: libcst node types that hold no code, only how it is written: what :meth:`Visitor.walk` never enters
TRIVIA = frozenset(_concrete(
    cst.BaseParenthesizableWhitespace, cst.Newline, cst.TrailingWhitespace, cst.EmptyLine, cst.Comment,
    cst.Comma, cst.Dot, cst.AssignEqual, cst.Colon, cst.Semicolon, cst.LeftParen, cst.RightParen,
    cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace,
    cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp))
#: libcst node types whose every child is trivia (their names, numbers and strings are plain fields): a
#: walk finds nothing inside them (``tests/test_libcst_shortcuts.py`` checks their fields' types)
LEAVES = frozenset({cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Ellipsis, cst.Pass,
                    cst.Break, cst.Continue})


# node type -> (fields libcst visits, in order; the type's other fields; those of the first that can hold code)
_ORDER: dict[type, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
#: node type -> :func:`_code_order` of every node of that type (most types: see _orders), read first by walks
_CODE_FIXED: dict[type, tuple[str, ...]] = {}
_NO_NODE = cst.MaybeSentinel.DEFAULT
_NEVER_CHILDREN = (str, bool, int, type(None), cst.MaybeSentinel)  # cheaper to test than ``isinstance(v, CSTNode)``


def _children_order(node: cst.CSTNode) -> tuple[str, ...]:
    """The fields of ``node`` that hold children, in libcst's visiting order.

    Learnt from the first node of each type. A few node types skip an empty
    optional child (``format_spec=None``) altogether: a later node of that type
    with such a child present is asked again, so no child is ever missed.
    """
    return _orders(node)[0]


def _code_order(node: cst.CSTNode) -> tuple[str, ...]:
    """:func:`_children_order` without the fields that can hold nothing but trivia (by libcst's type
    hints: ``whitespace_after_func``, ``lpar``, ``comma``): what walks and searches read."""
    return _orders(node)[1]


def _orders(node: cst.CSTNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kind = type(node)
    entry = _ORDER.get(kind)
    if entry is None:
        order = _visited_fields(node)
        rest = tuple(f.name for f in dataclasses.fields(node) if f.name not in order)
        entry = _ORDER[kind] = (order, rest, _holding_code(kind, order))
        if not _holding_code(kind, rest):  # no field left out could hold code: every node reads the same
            _CODE_FIXED[kind] = entry[2]
    order, rest, code = entry
    for name in rest:
        value = getattr(node, name)
        if type(value) not in _NEVER_CHILDREN and value != ():
            order = _visited_fields(node)
            return order, _holding_code(kind, order)
    return order, code


@functools.lru_cache(maxsize=None)
def _holding_code(kind: type, fields: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``fields`` whose type hint admits a node that is not trivia (all of them when a hint
    cannot be read)."""
    try:
        hints = typing.get_type_hints(kind)
    except Exception:  # noqa: BLE001  a hint this Python cannot evaluate: read every field
        return fields
    return tuple(name for name in fields if name not in hints or not _only_trivia(hints[name]))


def _only_trivia(hint) -> bool:
    """Can a value of this type hint hold nothing but plain values and :data:`TRIVIA`?"""
    if typing.get_origin(hint) is typing.Literal:
        return True
    args = typing.get_args(hint)
    if args:
        return all(_only_trivia(arg) for arg in args)
    if hint in _NEVER_CHILDREN:
        return True
    return isinstance(hint, type) and issubclass(hint, cst.CSTNode) and _concrete(hint) <= TRIVIA


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """``node.children`` (its immediate child nodes, in libcst's order) without libcst's cost: its
    property collects them with a visit that rebuilds the node."""
    found: list[cst.CSTNode] = []
    for name in _children_order(node):
        child = getattr(node, name)
        if type(child) is tuple or type(child) is list:
            found.extend(child)
        elif child is not None and child is not _NO_NODE:
            found.append(child)
    return found


def find_all(node: cst.CSTNode, kind: type[N], *, skip: tuple[type[cst.CSTNode], ...] = ()) -> list[N]:
    """Every node of type ``kind`` under ``node`` (itself included), in source order.

    ``skip`` names node types whose insides are not searched, e.g.
    ``skip=(cst.Lambda,)`` to leave out calls that only run when a lambda does.
    The nodes a :class:`Visitor` would visit, without one: rules ask this thousands of times a run.
    """
    found: list = []
    _find(node, _kinds(kind), _kinds(skip) if skip else None, found)
    return found


class _Kinds(dict):
    """Node type -> is it a ``kind`` (a type or a tuple of types), answered once per node type. libcst's node
    classes are abstract base classes, whose ``isinstance`` costs several dictionary lookups: rules ask it
    of every node below the one searched, in thousands of searches a run."""

    def __init__(self, kind: type | tuple) -> None:
        super().__init__()
        self.kind = kind
        #: the node types a search need not enter: trivia, and the leaves that are not ``kind``
        self.passed = TRIVIA | {leaf for leaf in LEAVES if not issubclass(leaf, kind)}
        self.passed_single = self.passed | {type(None), cst.MaybeSentinel}

    def __missing__(self, node_type: type) -> bool:
        self[node_type] = answer = issubclass(node_type, self.kind)
        return answer


_KINDS: dict[type | tuple, _Kinds] = {}


def _kinds(kind: type | tuple) -> _Kinds:
    found = _KINDS.get(kind)
    if found is None:
        found = _KINDS[kind] = _Kinds(kind)
    return found


def _find(node: cst.CSTNode, kind: _Kinds, skip: _Kinds | None, found: list) -> None:
    if kind[type(node)]:
        found.append(node)
    if skip is not None and skip[type(node)]:
        return
    for name in _CODE_FIXED.get(type(node)) or _code_order(node):
        child = getattr(node, name)
        if type(child) is tuple or type(child) is list:
            for item in child:
                if type(item) not in kind.passed:
                    _find(item, kind, skip, found)
        elif type(child) not in kind.passed_single:
            _find(child, kind, skip, found)


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    """The ``name=...`` argument of a call, if written."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def body_of(node: cst.CSTNode) -> list:
    """The statements directly inside a compound statement, a class or a function."""
    body = node.body
    if isinstance(body, (cst.IndentedBlock, cst.SimpleStatementSuite)):
        return list(body.body)
    return list(body)


def node_positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """Every node's range, exactly as ``MetadataWrapper.resolve(PositionProvider)`` gives it, at half the cost.

    ``resolve`` runs the provider the same way (``_gen``), then walks the whole
    tree once more for batchable providers even when none was asked for: on a
    file with findings that walk cost as much as the positions themselves.
    PositionProvider depends on no other metadata. ``test_positions_match_libcst``
    fails if a libcst release changes this.
    """
    return PositionProvider()._gen(MetadataWrapper(module, unsafe_skip_copy=True))


def param_names(function: cst.FunctionDef, kwonly: bool = True) -> list[str]:
    """The names of a function's parameters, in order (without ``*args``/``**kwargs``); ``kwonly=False``
    leaves out the keyword-only ones (those a positional argument can never fill)."""
    params = function.params
    return [p.name.value for p in (*params.posonly_params, *params.params, *(params.kwonly_params if kwonly else ()))]

