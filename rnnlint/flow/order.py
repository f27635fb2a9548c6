"""Which tensors and lists are sorted by length, which permutation sorts them, and whether the order comes back.

``pack_padded_sequence`` with its default ``enforce_sorted=True`` wants the
batch sorted by decreasing length; code written for it sorts the lengths
(``lengths.sort(descending=True)``), reorders the batch with the permutation
(``x[perm]``) and must put the outputs back (``out[perm.argsort()]``). A
collate function may instead sort the list of sequences (``sorted(batch,
key=len, reverse=True)``). This module follows those facts inside one function
body: what a sort produces (:class:`Sort`, :class:`ListSort`), where the
permutation reorders something (:class:`Reorder`), which names are computed
from which (:meth:`Body.downstream`), and answers the two questions a rule
asks: :func:`lost_tensor_sorts` (a sort whose order is never restored before
packing) and :func:`stale_list_sorts` (a collate that returns sorted inputs
beside labels built in the unsorted order). Which calls sort, reorder and
pack is library knowledge, in :mod:`rnnlint.flow.library`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from rnnlint.names import dotted
from rnnlint.nodes import Visitor, find_all, keyword_arg
from rnnlint.flow import library
from rnnlint.flow.padding import PACK_FUNCTIONS, PAD_SEQUENCE, is_length_name




@dataclass
class LostSort:
    """A tensor sort whose permutation reorders a batch for a pack that needs it sorted, and nothing
    restores the order: no inverse, no write-back, not returned or handed on, nothing else reordered."""

    body: "Body"
    sort: "Sort"
    reorders: list["Reorder"]
    packs: list[cst.Call]


def may_sort(callee: str) -> bool:
    """Cheap pre-filter for a shared walk: could a call to ``callee`` sort something?"""
    return "sort" in callee.rsplit(".", 1)[-1]


def lost_tensor_sorts(body: "Body") -> list[LostSort]:
    """The tensor sorts of ``body`` whose order is lost (see :class:`LostSort`)."""
    found = []
    for sort in body.tensor_sorts():
        lost = _lost(body, sort)
        if lost is not None:
            found.append(lost)
    return found


def _lost(body: "Body", sort: "Sort") -> LostSort | None:
    reorders = body.reorders(sort.perm)
    packs = [p for p in body.packs() if enforces_sorting(body.ctx, p) and body.fed_by(p, sort, reorders)]
    if not packs:
        return None
    allowed = {id(r.index_node) for r in reorders}
    for occurrence in body.occurrences(sort.perm):
        if occurrence.binding or id(occurrence.node) in allowed:
            continue
        if any(p in occurrence.ancestors for p in packs):
            continue
        return None  # inverse permutation, scatter, returned, passed on: the order may be restored
    for reorder in reorders:
        if not body.reaches(reorder.target, packs) and not any(p in reorder.ancestors for p in packs):
            return None  # labels (or other per-example data) reordered too: still aligned
    return LostSort(body, sort, reorders, packs)


def stale_list_sorts(body: "Body", collate_names: set[str]) -> list[tuple["ListSort", set[str]]]:
    """In a collate function, the list sorts by length and the names returned beside the sorted list
    that still hold the unsorted order (labels built before the sort)."""
    function = body.node
    if not isinstance(function, cst.FunctionDef) or not is_collate(body.ctx, function, collate_names):
        return []
    found = []
    for sort in body.list_sorts():
        stale = body.unsorted_returned(sort)
        if stale:
            found.append((sort, stale))
    return found


@dataclass
class Sort:
    call: cst.Call
    statement: cst.SimpleStatementLine | None  # when the sort is a statement of its own
    values: str | None  # name bound to the sorted lengths, if any
    perm: str
    source_text: str  # the lengths as written: "lengths"


@dataclass
class ListSort:
    call: cst.Call
    statement: cst.SimpleStatementLine | None
    sorted_name: str  # the name holding the sorted list afterwards
    source: str  # the list that was sorted
    in_place: bool  # ``x.sort(...)`` or ``x = sorted(x, ...)``


@dataclass
class Reorder:
    target: str  # name bound to the reordered tensor ("" when used inline)
    source_text: str
    subscript: cst.CSTNode  # ``x[perm]`` or ``x.index_select(0, perm)``
    index_node: cst.Name  # the occurrence of the permutation
    statement: cst.SimpleStatementLine | None  # ``y = x[perm]`` standing alone
    ancestors: list = field(default_factory=list)


@dataclass
class Occurrence:
    node: cst.Name
    ancestors: list  # outermost first
    binding: bool


class Body:
    """The statements of one function (or the module), without nested definitions."""

    def __init__(self, ctx, node: cst.CSTNode) -> None:
        self.ctx = ctx
        self.node = node
        self.lines: list[cst.SimpleStatementLine] = []
        self.assigns: list[tuple[tuple[str, ...], cst.BaseExpression, cst.SimpleStatementLine]] = []
        self._occurrences: dict[str, list[Occurrence]] = {}
        self._collect()

    def _collect(self) -> None:
        body = self

        class Walker(Visitor):
            def __init__(self) -> None:
                self.stack: list[cst.CSTNode] = []

            def on_visit(self, node: cst.CSTNode) -> bool:
                if node is not body.node and isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                    return False
                if isinstance(node, cst.SimpleStatementLine):
                    body.lines.append(node)
                    for small in node.body:
                        if isinstance(small, cst.Assign):
                            body.assigns.extend((targets, value, node) for targets, value in _pairs(small))
                elif isinstance(node, cst.Name):
                    parent = self.stack[-1] if self.stack else None
                    if not _is_label(node, parent):
                        body._occurrences.setdefault(node.value, []).append(
                            Occurrence(node, list(self.stack), _is_binding(node, self.stack)))
                self.stack.append(node)
                return True

            def on_leave(self, original_node: cst.CSTNode) -> None:
                if self.stack and self.stack[-1] is original_node:
                    self.stack.pop()

        Walker().walk(self.node)

    def occurrences(self, name: str) -> list[Occurrence]:
        return self._occurrences.get(name, [])

    def calls(self) -> list[cst.Call]:
        found: list[cst.Call] = []
        for line in self.lines:
            found.extend(find_all(line, cst.Call, skip=(cst.Lambda,)))
        return found

    def packs(self) -> list[cst.Call]:
        """The calls that need the batch sorted unless told otherwise (``pack_padded_sequence``)."""
        return [c for c in self.calls() if self.ctx.qualname(c.func) in library.ENFORCES_SORTED]

    # -- tensor sorts --------------------------------------------------------------

    def tensor_sorts(self) -> list[Sort]:
        sorts = []
        for targets, value, line in self.assigns:
            call, part = _strip_indices(value)
            if call is None or not _descending(self.ctx, call):
                continue
            source = _sorted_tensor(self.ctx, call)
            if source is None:
                continue
            kind = _sort_kind(self.ctx, call)
            assign = next((s for s in line.body if isinstance(s, cst.Assign) and s.value is value), None)
            shape = assign.targets[0].target if assign is not None and len(assign.targets) == 1 else None
            values = perm = None
            if kind == "argsort" and isinstance(shape, cst.Name):
                perm = shape.value
            elif kind == "sort" and part == "indices" and isinstance(shape, cst.Name):
                perm = shape.value
            elif kind == "sort" and part is None and isinstance(shape, (cst.Tuple, cst.List)) and len(shape.elements) == 2:
                first, second = (e.value for e in shape.elements)
                if isinstance(second, cst.Name) and isinstance(first, cst.Name):
                    values = None if first.value == "_" else first.value
                    perm = second.value
            if perm is None:
                continue
            alone = line if len(line.body) == 1 and value is call else None
            sorts.append(Sort(call, alone, values, perm, self.ctx.code(source)))
        return sorts

    def reorders(self, perm: str) -> list[Reorder]:
        """Every ``x[perm]`` / ``x.index_select(0, perm)``, with the name it is assigned to."""
        found = []
        for occurrence in self.occurrences(perm):
            if occurrence.binding:
                continue
            reordered = _reordering(self.ctx, occurrence)
            if reordered is None:
                continue
            expr, source = reordered
            target, statement = "", None
            at = occurrence.ancestors.index(expr)
            if at >= 1 and isinstance(occurrence.ancestors[at - 1], cst.Assign):
                assign = occurrence.ancestors[at - 1]
                line = occurrence.ancestors[at - 2]
                if len(assign.targets) == 1 and isinstance(assign.targets[0].target, cst.Name):
                    target = assign.targets[0].target.value
                    statement = line if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 else None
            elif at >= 2 and isinstance(occurrence.ancestors[at - 1], cst.Element) and isinstance(
                    occurrence.ancestors[at - 2], cst.Tuple) and at >= 3 and isinstance(
                    occurrence.ancestors[at - 3], cst.Assign):
                assign, position = occurrence.ancestors[at - 3], occurrence.ancestors[at - 2].elements.index(
                    occurrence.ancestors[at - 1])
                shape = assign.targets[0].target
                if isinstance(shape, (cst.Tuple, cst.List)) and position < len(shape.elements):
                    names = _target_names(shape.elements[position].value)
                    target = names[0] if names else ""
            found.append(Reorder(target, self.ctx.code(source), expr, occurrence.node, statement,
                                  occurrence.ancestors))
        return found

    def downstream(self, names: set[str]) -> set[str]:
        """Names assigned (anywhere in the body) from expressions that use ``names``, transitively."""
        reached = set(names)
        changed = True
        while changed:
            changed = False
            for targets, value, _ in self.assigns:
                if any(t not in reached for t in targets) and reached & names_of(value):
                    reached.update(targets)
                    changed = True
        return reached

    def fed_by(self, pack: cst.Call, sort: Sort, reorders: list[Reorder]) -> bool:
        """Do the pack's lengths come from the sort?"""
        lengths = keyword_arg(pack, "lengths") or (pack.args[1] if len(pack.args) > 1 else None)
        if lengths is None:
            return False
        sources = {sort.perm} | ({sort.values} if sort.values else set()) | {r.target for r in reorders if r.target}
        return bool(self.downstream(sources) & names_of(lengths.value))

    def reaches(self, name: str, packs: list[cst.Call]) -> bool:
        """Does ``name`` flow (through assignments) into one of the pack calls?"""
        if not name:
            return False
        reached = self.downstream({name})
        return any(n.value in reached for p in packs for n in _names_in(p))

    # -- list sorts --------------------------------------------------------------

    def list_sorts(self) -> list[ListSort]:
        found = []
        for line in self.lines:
            for small in line.body:
                call = small.value if isinstance(small, (cst.Expr, cst.Assign)) else None
                if not isinstance(call, cst.Call) or not _by_length_descending(call):
                    continue
                name = dotted(call.func)
                if isinstance(small, cst.Expr) and isinstance(call.func, cst.Attribute) and \
                        call.func.attr.value in library.LIST_SORT_METHODS and isinstance(call.func.value, cst.Name):
                    source = call.func.value.value
                    found.append(ListSort(call, line if len(line.body) == 1 else None, source, source, True))
                elif isinstance(small, cst.Assign) and name in library.LIST_SORT_FUNCTIONS and call.args and isinstance(
                        call.args[0].value, cst.Name) and len(small.targets) == 1 and isinstance(
                        small.targets[0].target, cst.Name):
                    source = call.args[0].value.value
                    target = small.targets[0].target.value
                    alone = line if len(line.body) == 1 else None
                    found.append(ListSort(call, alone, target, source, target == source))
        return found

    def unsorted_returned(self, sort: ListSort) -> set[str]:
        """Names the function returns next to the sorted list that still hold the unsorted order."""
        position = self.lines.index(next(l for l in self.lines if sort.call in find_all(l, cst.Call, skip=(cst.Lambda,))))
        before = [(t, v) for t, v, line in self.assigns if self.lines.index(line) < position]
        after = [(t, v) for t, v, line in self.assigns if self.lines.index(line) > position]
        # where the sorted list came from, and what else was built from the same batch before the sort
        local = {n for targets, _, _ in self.assigns for n in targets}
        if isinstance(self.node, cst.FunctionDef):
            local |= {p.name.value for p in (*self.node.params.posonly_params, *self.node.params.params)}
        roots = {sort.source}
        for targets, value in before:
            if sort.source in targets:
                roots |= names_of(value) & local
                roots |= set(targets)
        stale = {n for targets, value in before if roots & (names_of(value) | set(targets))
                 and not _scalar(value) for n in targets}
        stale.discard(sort.sorted_name)
        if not sort.in_place:
            stale.add(sort.source)
        fresh = {sort.sorted_name}
        for targets, value in after:  # reassigned after the sort: follows what it is built from
            used = names_of(value)
            if used & fresh:
                fresh.update(targets)
                stale.difference_update(targets)
            elif used & stale and not _scalar(value):
                stale.update(targets)
            else:
                stale.difference_update(targets)
        returned: set[str] = set()
        for line in self.lines[position:]:
            for small in line.body:
                if isinstance(small, cst.Return) and small.value is not None:
                    returned |= names_of(small.value)
        if not returned & fresh:
            return set()
        return returned & stale


# -- small helpers -----------------------------------------------------------------------------


def _names_in(node: cst.CSTNode) -> list[cst.Name]:
    found: list[cst.Name] = []

    class Finder(Visitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.append(name)

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            self.walk(node.value)
            return False

        def visit_Arg(self, node: cst.Arg) -> bool:
            self.walk(node.value)
            return False

    Finder().walk(node)
    return found


def names_of(node: cst.CSTNode) -> set[str]:
    """The variables an expression reads (not attribute names, not keywords)."""
    return {n.value for n in _names_in(node)}


def _pairs(assign: cst.Assign) -> list[tuple[tuple[str, ...], cst.BaseExpression]]:
    """``a, b = x, y`` -> [((a,), x), ((b,), y)]; anything else -> [(all targets, value)]."""
    value = assign.value
    if len(assign.targets) == 1:
        target = assign.targets[0].target
        if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) and len(
                target.elements) == len(value.elements):
            return [(tuple(_target_names(t.value)), v.value) for t, v in zip(target.elements, value.elements)]
    return [(tuple(n for t in assign.targets for n in _target_names(t.target)), value)]


def _target_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _target_names(e.value)]
    return []


def _is_label(node: cst.Name, parent: cst.CSTNode | None) -> bool:
    """``attr`` in ``x.attr``, ``key`` in ``f(key=v)``, a parameter: not a use of a variable."""
    if isinstance(parent, cst.Attribute):
        return parent.attr is node
    if isinstance(parent, cst.Arg):
        return parent.keyword is node
    return isinstance(parent, cst.Param)


def _is_binding(node: cst.Name, stack: list[cst.CSTNode]) -> bool:
    """Is this occurrence an assignment target (``perm`` in ``_, perm = ...``, ``for perm in``)?"""
    child: cst.CSTNode = node
    for parent in reversed(stack):
        if isinstance(parent, (cst.Tuple, cst.List, cst.Element, cst.StarredElement)):
            child = parent
            continue
        if isinstance(parent, cst.AssignTarget):
            return parent.target is child
        if isinstance(parent, (cst.For, cst.CompFor)):
            return parent.target is child
        if isinstance(parent, (cst.AugAssign, cst.AnnAssign)):
            return parent.target is child
        return False
    return False


def _strip_indices(value: cst.BaseExpression) -> tuple[cst.Call | None, str | None]:
    """``x.sort(...)`` -> (call, None); ``x.sort(...).indices`` / ``[1]`` -> (call, "indices")."""
    attribute, position = library.SORT_INDICES
    if isinstance(value, cst.Call):
        return value, None
    if isinstance(value, cst.Attribute) and value.attr.value == attribute and isinstance(value.value, cst.Call):
        return value.value, "indices"
    if isinstance(value, cst.Subscript) and isinstance(value.value, cst.Call) and len(value.slice) == 1:
        index = value.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.Integer) and index.value.value == str(position):
            return value.value, "indices"
    return None, None


def _function_form(ctx, call: cst.Call) -> bool:
    """``torch.sort(x, ...)`` (the tensor is the first argument), not ``x.sort(...)``."""
    return (ctx.qualname(call.func) or "") in library.SORT_FUNCTIONS


def _sort_kind(ctx, call: cst.Call) -> str | None:
    """"sort" or "argsort" when ``call`` sorts a tensor, else None."""
    kind = library.SORT_FUNCTIONS.get(ctx.qualname(call.func) or "")
    if kind is None and isinstance(call.func, cst.Attribute):
        kind = library.SORT_METHODS.get(call.func.attr.value)
    return kind


def _sorted_tensor(ctx, call: cst.Call) -> cst.BaseExpression | None:
    """The lengths being sorted, for ``torch.sort(lengths, ...)`` / ``lengths.sort(...)``."""
    kind = _sort_kind(ctx, call)
    if kind is None:
        return None
    if _function_form(ctx, call):
        source = call.args[0].value if call.args and call.args[0].keyword is None else None
    else:
        source = call.func.value  # type: ignore[union-attr]
    if source is None or dotted(source) is None:
        return None
    return source


def _descending(ctx, call: cst.Call) -> bool:
    keyword, function_at, method_at = library.SORT_DESCENDING
    arg = keyword_arg(call, keyword)
    if arg is None:
        positional = [a for a in call.args if a.keyword is None]
        at = function_at if _function_form(ctx, call) else method_at
        arg = positional[at] if len(positional) > at else None
    return arg is not None and isinstance(arg.value, cst.Name) and arg.value.value == "True"


def _reordering(ctx, occurrence: Occurrence) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """``x[perm]`` / ``x[:, perm]`` / ``x.index_select(0, perm)`` / ``torch.index_select(x, 0, perm)``
    around this occurrence of the permutation: (the expression, x)."""
    stack = occurrence.ancestors
    if len(stack) >= 3 and isinstance(stack[-1], cst.Index) and isinstance(stack[-2], cst.SubscriptElement) \
            and isinstance(stack[-3], cst.Subscript):
        subscript = stack[-3]
        if len(stack) >= 4 and isinstance(stack[-4], cst.AssignTarget):
            return None  # out[perm] = ...: writes back in the original order
        return subscript, subscript.value
    if len(stack) >= 2 and isinstance(stack[-1], cst.Arg) and isinstance(stack[-2], cst.Call):
        call = stack[-2]
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in library.REORDER_METHODS:
            if ctx.qualname(call.func) in library.REORDER_FUNCTIONS:
                return (call, call.args[0].value) if call.args else None
            return call, call.func.value
    return None


def enforces_sorting(ctx, pack: cst.Call) -> bool:
    """Does this pack call keep its default of requiring a sorted batch (``enforce_sorted=True``)?"""
    keyword, position = library.ENFORCES_SORTED[ctx.qualname(pack.func)]
    arg = keyword_arg(pack, keyword)
    if arg is None:
        return len([a for a in pack.args if a.keyword is None]) <= position
    return isinstance(arg.value, cst.Name) and arg.value.value == "True"


def _by_length_descending(call: cst.Call) -> bool:
    """``sorted(x, key=len, reverse=True)``, ``x.sort(key=lambda p: len(p[0]), reverse=True)``,
    ``key=lambda p: -len(p)``."""
    name = dotted(call.func) or ""
    if name not in library.LIST_SORT_FUNCTIONS and not _list_method(name):
        return False
    key = keyword_arg(call, "key")
    if key is None:
        return False
    reverse = keyword_arg(call, "reverse")
    descending = reverse is not None and isinstance(reverse.value, cst.Name) and reverse.value.value == "True"
    body = key.value.body if isinstance(key.value, cst.Lambda) else key.value
    if isinstance(body, cst.UnaryOperation) and isinstance(body.operator, cst.Minus):
        descending, body = not descending, body.expression
    return descending and _is_length(body)


def _list_method(name: str) -> bool:
    """``seqs.sort`` (a method of the list ``seqs``)."""
    return "." in name and name.rsplit(".", 1)[1] in library.LIST_SORT_METHODS


def _is_length(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Name):
        return expr.value in library.LENGTH_FUNCTIONS or is_length_name(expr.value)
    if isinstance(expr, cst.Call):
        name = dotted(expr.func) or ""
        return name in library.LENGTH_FUNCTIONS or ("." in name and name.rsplit(".", 1)[1] in library.LENGTH_METHODS)
    if isinstance(expr, cst.Subscript):
        base = dotted(expr.value) or ""
        return base.endswith(".shape") or _is_length(expr.value)
    return False


def _scalar(value: cst.BaseExpression) -> bool:
    return isinstance(value, (cst.Integer, cst.Float)) or (
        isinstance(value, cst.Call) and dotted(value.func) in library.SCALAR_FUNCTIONS)


def is_collate(ctx, function: cst.FunctionDef, collate_names: set[str]) -> bool:
    name = function.name.value
    if "collate" in name.lower() or name in collate_names:
        return True
    padders = PACK_FUNCTIONS | {PAD_SEQUENCE}
    return any(ctx.qualname(c.func) in padders for c in find_all(function, cst.Call, skip=(cst.Lambda,)))
