"""rnnlint's shortcuts through libcst give exactly libcst's own answers.

``Visitor.walk`` replaces ``node.visit(visitor)`` for every traversal (and
``nodes.children`` the ``node.children`` property), and ``nodes.node_positions``
runs the PositionProvider without ``MetadataWrapper.resolve``. They lean on how
libcst works inside; a libcst release that changes that must fail here rather
than make a rule miss a node or shift a position.
"""

from __future__ import annotations

from pathlib import Path

import pytest


import libcst as cst
from hypothesis import HealthCheck, given, settings

from rnnlint import nodes
from rnnlint.nodes import Visitor

from tests.helpers import generated_python, needs_hypothesmith


REPO = Path(__file__).resolve().parents[1]
_FSTRINGS = 'a = f"{x}"\nb = f"{y:>{width}}"\n'  # a child skipped when empty, then present


class Events(Visitor):
    """Records every on_visit/on_leave; does not enter lambdas (pruning must match too). Under libcst's
    own traversal, it neither records nor enters the trivia (whitespace, punctuation) ``walk`` skips."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if type(node) in nodes.TRIVIA:
            return False
        self.events.append(("visit", id(node)))
        return not isinstance(node, cst.Lambda)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if type(original_node) not in nodes.TRIVIA:
            self.events.append(("leave", id(original_node)))


def assert_same_walk(text: str) -> None:
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError:
        return
    ours, theirs = Events(), Events()
    ours.walk(module)
    module.visit(theirs)
    assert ours.events == theirs.events, text


def modules(source: str):
    """``(text, libcst's tree)`` of ``source``'s files (a folder of the repository) or of ``source`` itself
    (a program), leaving out what libcst cannot parse."""
    texts = [source] if "\n" in source else [f.read_text("utf-8") for f in sorted((REPO / source).rglob("*.py"))]
    for text in texts:
        try:
            yield text, cst.parse_module(text)
        except cst.ParserSyntaxError:
            continue


# the whole fixture tree: slow tier (the quick cases keep the inner loop covered)
WHOLE_TREE = pytest.param("fixtures", marks=pytest.mark.slow, id="fixtures")


@pytest.mark.parametrize("source", [WHOLE_TREE, "tests/data", _FSTRINGS], ids=["fixtures", "data", "fstrings"])
def test_walk_matches_libcst(source, monkeypatch):
    """``Visitor.walk`` (every rule's traversal) calls on_visit/on_leave on the same
    nodes in the same order as libcst's ``node.visit``, pruning included, trivia left out."""
    monkeypatch.setattr(nodes, "_ORDER", {})
    monkeypatch.setattr(nodes, "_CODE_FIXED", {})  # learn each node type's order afresh from these files
    texts = [source] if "\n" in source else [f.read_text("utf-8") for f in sorted((REPO / source).rglob("*.py"))]
    assert texts
    for text in texts:
        assert_same_walk(text)


class Typed(Visitor):
    """Records the calls of its own ``visit_<Node>``/``leave_<Node>`` methods (the shape of every rule's
    visitor): a walk skips the leaves such a visitor has no method for, and libcst's no-op defaults."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.events.append(("call", id(node)))

    def leave_Assign(self, original_node: cst.Assign) -> None:
        self.events.append(("assign", id(original_node)))

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def leave_Attribute(self, original_node: cst.Attribute) -> None:
        self.events.append(("attribute", id(original_node)))


class TypedWithLeaves(Typed):
    def visit_Name(self, node: cst.Name) -> None:
        self.events.append(("name", id(node)))

    def leave_Integer(self, original_node: cst.Integer) -> None:
        self.events.append(("integer", id(original_node)))


@pytest.mark.parametrize("source", [WHOLE_TREE, "tests/data", _FSTRINGS], ids=["fixtures", "data", "fstrings"])
def test_walk_calls_a_visitors_own_methods_as_libcst_does(source):
    """A visitor of ``visit_<Node>`` methods gets the same calls from ``walk`` as from libcst's
    ``node.visit``, in the same order, with the leaves it has no method for passed over, and with them."""
    for text, module in modules(source):
        for kind in (Typed, TypedWithLeaves):
            ours, theirs = kind(), kind()
            ours.walk(module)
            module.visit(theirs)
            assert ours.events == theirs.events, (kind.__name__, text)
    assert cst.Name in Typed._walk_plan[1] and cst.Name not in TypedWithLeaves._walk_plan[1]


def test_the_leaves_and_fields_a_walk_passes_over_hold_only_trivia():
    """A walk passes over :data:`nodes.LEAVES` when its visitor has no method for them, and never reads
    the fields whose type hints admit only trivia: a libcst release that puts code there must fail here
    (the walk tests above would miss only what their files lack)."""
    import dataclasses
    import typing

    for leaf in nodes.LEAVES:
        hints = typing.get_type_hints(leaf)
        assert all(nodes._only_trivia(hints[field.name]) for field in dataclasses.fields(leaf)), leaf.__name__
    call, arg = typing.get_type_hints(cst.Call), typing.get_type_hints(cst.Arg)
    assert nodes._only_trivia(call["whitespace_after_func"]) and nodes._only_trivia(arg["comma"])
    assert nodes._only_trivia(arg["star"])  # Literal["", "*", "**"]
    assert not nodes._only_trivia(call["func"]) and not nodes._only_trivia(arg["keyword"])
    assert not nodes._only_trivia(typing.get_type_hints(cst.FunctionDef)["asynchronous"])


class Children(Visitor):
    """Compares ``nodes.children`` with libcst's ``children`` property at every node."""

    def on_visit(self, node: cst.CSTNode) -> bool:
        assert [id(c) for c in nodes.children(node)] == [id(c) for c in node.children], type(node).__name__
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass


@pytest.mark.parametrize("source", [WHOLE_TREE, _FSTRINGS], ids=["fixtures", "fstrings"])
def test_children_match_libcst(source, monkeypatch):
    """``nodes.children`` (the flow model's "see the calls inside" and its enclosing-function map)
    gives libcst's own ``node.children``, the same nodes in the same order, at every node."""
    monkeypatch.setattr(nodes, "_ORDER", {})
    monkeypatch.setattr(nodes, "_CODE_FIXED", {})
    for _, module in modules(source):
        Children().walk(module)


@pytest.mark.slow
@needs_hypothesmith
@settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(source=generated_python("from_node"))
def test_walk_matches_libcst_on_generated_programs(source):
    """Programs built from libcst's own node types: every kind of node, in odd combinations."""
    assert_same_walk(source)


@pytest.mark.parametrize("name", ["char_rnn", "seq2seq_translator", "lightning_gru", "amp_lstm"])
def test_positions_match_libcst(name):
    """Finding and edit positions come from libcst's PositionProvider run directly
    (without ``MetadataWrapper.resolve``'s extra walk); a libcst release that changes
    how the provider runs must fail here, not shift every position silently."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    from rnnlint.nodes import node_positions as _positions

    root = REPO / "fixtures" / name
    for file in sorted(root.rglob("*.py")):
        module = cst.parse_module(file.read_text("utf-8"))
        expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        assert dict(_positions(module)) == dict(expected), file


class Kinds(Visitor):
    """Every node of each of a few kinds, by isinstance, in libcst's visiting order."""

    KINDS = (cst.Call, cst.Name, cst.BaseExpression, cst.BaseSmallStatement, (cst.FunctionDef, cst.ClassDef))

    def __init__(self) -> None:
        self.found: dict = {kind: [] for kind in self.KINDS}

    def on_visit(self, node: cst.CSTNode) -> bool:
        for kind, found in self.found.items():
            if isinstance(node, kind):
                found.append(node)
        return True


@pytest.mark.parametrize("source", [WHOLE_TREE, "tests/data"], ids=["fixtures", "data"])
def test_find_all_is_isinstance(source):
    """``find_all`` answers "is this node a kind" from a table per node type (not isinstance, which costs
    more on libcst's abstract node classes): the same nodes as isinstance at every node, for concrete
    kinds, abstract ones and tuples, and a ``skip`` leaves out exactly the insides of those nodes."""
    for file in sorted((REPO / source).rglob("*.py")):
        try:
            module = cst.parse_module(file.read_text("utf-8"))
        except cst.ParserSyntaxError:
            continue
        expected = Kinds()
        expected.walk(module)
        for kind, found in expected.found.items():
            assert nodes.find_all(module, kind) == found, (file, kind)
        outside = [c for c in expected.found[cst.Call]
                   if not any(c is not f and c in nodes.find_all(f, cst.Call) for f in nodes.find_all(module, cst.FunctionDef))]
        assert nodes.find_all(module, cst.Call, skip=(cst.FunctionDef,)) == outside, file


def test_node_classes_compared_by_identity_have_no_subclasses():
    """``dotted`` and the import scan compare node types with ``is`` (isinstance on libcst's abstract
    node classes costs several times more): right only while libcst never subclasses these."""
    from rnnlint import names

    for kind in (cst.Attribute, cst.Name, cst.SimpleStatementLine, cst.If, *names._IMPORT_NODES):
        assert kind.__subclasses__() == [], kind
    # the suites by the names libcst exports them under (its add_slots decorator leaves each class's
    # first, slot-less version among the subclasses too; the parser builds the exported one)
    assert {getattr(cst, k.__name__) for k in cst.BaseSuite.__subclasses__()} == set(names._SUITES)


@pytest.mark.parametrize("source", [WHOLE_TREE, "tests/data"], ids=["fixtures", "data"])
def test_a_tree_built_without_validation_is_libcsts_own(source):
    """Code CPython accepted is parsed with libcst's per-node validation off (a fifth of a parse): the
    tree is exactly the one ``cst.parse_module`` builds with it on, and the checks are back afterwards,
    for the nodes a fix builds."""
    from rnnlint.source import parse_python

    compared = 0
    for file in sorted((REPO / source).rglob("*.py")):
        text = file.read_text("utf-8")
        try:
            expected = cst.parse_module(text)
        except cst.ParserSyntaxError:
            continue
        built = parse_python(text, accepted=True)
        assert built.deep_equals(expected) and built.code == text, file
        compared += 1
    assert compared
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")


def test_validation_comes_back_when_the_parser_fails():
    from rnnlint.source import parse_python

    with pytest.raises(cst.ParserSyntaxError):
        parse_python("def broken(:\n", accepted=True)
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")
