from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, find_all, keyword_arg
from rnnlint.flow.padding import PACK_FUNCTIONS, PACK_PADDED, PAD_SEQUENCE, is_length_name
from rnnlint.rule import Invalid, NodeEdit, Rule, Valid, add_arg, delete_statement, replace


class SortedPackOrderLost(Rule):
    """Sequences sorted by length before packing, and the original order never restored.

    **What it catches.** Two ways of sorting a batch by hand so that
    ``pack_padded_sequence`` (with its default ``enforce_sorted=True``)
    accepts it:

    * a tensor sort of the lengths, ``lengths.sort(descending=True)``,
      ``torch.sort(lengths, descending=True)`` or ``argsort``, whose
      permutation reorders the batch (``x[perm]``, ``x.index_select(0,
      perm)``) before ``pack_padded_sequence``, in the same function, with
      the permutation used for nothing else: no inverse
      (``perm.argsort()``, ``perm.sort()``), no ``out[perm] = ...``, no
      ``scatter``/``index_copy``, not returned or handed to another function
      (any of these counts as restoring the order), and nothing besides the
      packed input reordered by it (labels reordered by the same permutation
      stay aligned);
    * a list sort by length, ``sorted(batch, key=len, reverse=True)`` or
      ``seqs.sort(key=..., reverse=True)``, in a collate function (one that
      pads or packs, is named like a collate or is passed as ``collate_fn``),
      that returns the sorted inputs together with labels built from the
      unsorted batch. Sorting the (input, label) pairs themselves keeps them
      together and is not reported.

    **Why it matters.** After the sort, row ``i`` of the model's output
    belongs to the ``i``-th longest sequence, not to the ``i``-th example of
    the batch. If nothing puts the rows back, the loss compares each
    prediction with another example's label: the model trains on shuffled
    targets, accuracy stays near chance, and nothing raises. Since PyTorch 1.1
    ``pack_padded_sequence(..., enforce_sorted=False)`` sorts internally and
    returns outputs (and ``h_n``) in the original order, so the manual sort is
    not needed at all.

    **Example.**

        lengths, perm = lengths.sort(descending=True)      # RNN012
        x = x[perm]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True)
        # fixed:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)

    **Fix safety.** Unsafe: the fix deletes the sort and the reordering
    statements and passes ``enforce_sorted=False``, which changes what the
    function returns (outputs in the original order: what the labels
    expect), and code that relied on the sorted order (``lengths[0]`` as the
    longest length) must be reviewed. It is only applied when the sort is a statement of its own whose
    results are used only to reorder the packed input and to pack; otherwise
    (and for the collate case, whose packing is elsewhere) the fix is
    display-only.
    """

    code = "RNN012"
    name = "sorted-pack-order-lost"
    fix_applicability = Applicability.UNSAFE
    triggers = (("sort", "pack"), ("sort", "collate"), ("sort", "pad_sequence"))

    # One shared walk (the runner's) finds the functions that sort something
    # directly and the collate functions; only those bodies are analysed in
    # finish(): building a body's name index is the expensive part, and most
    # functions of a large file sort nothing.
    def visit_Module(self, node: cst.Module) -> None:
        self._stack: list[cst.CSTNode] = [node]
        self._sorting: dict[int, cst.CSTNode] = {}
        self._collate_names: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._stack.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._stack.pop()

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func) or ""
        if "sort" in name.rsplit(".", 1)[-1]:
            self._sorting.setdefault(id(self._stack[-1]), self._stack[-1])
        arg = keyword_arg(node, "collate_fn")
        if arg is not None:
            self._collate_names.update(_names_of(arg.value))

    def finish(self) -> None:
        collate_names = self._collate_names
        for function in self._sorting.values():
            body = _Body(self.ctx, function)
            for sort in body.tensor_sorts():
                self._tensor_sort(body, sort)
            if isinstance(function, cst.FunctionDef) and _is_collate(self.ctx, function, collate_names):
                for sort in body.list_sorts():
                    self._list_sort(body, sort)

    # -- tensor sorts ----------------------------------------------------------

    def _tensor_sort(self, body: "_Body", sort: "_Sort") -> None:
        reorders = body.reorders(sort.perm)
        packs = [p for p in body.packs() if _enforces_sorting(p) and body.fed_by(p, sort, reorders)]
        if not packs:
            return
        allowed = {id(r.index_node) for r in reorders}
        for occurrence in body.occurrences(sort.perm):
            if occurrence.binding or id(occurrence.node) in allowed:
                continue
            if any(p in occurrence.ancestors for p in packs):
                continue
            return  # inverse permutation, scatter, returned, passed on: the order may be restored
        for reorder in reorders:
            if not body.reaches(reorder.target, packs) and not any(
                    p in reorder.ancestors for p in packs):
                return  # labels (or other per-example data) reordered too: still aligned
        edits, clean = self._tensor_fix(body, sort, reorders, packs)
        sort_text = self.ctx.code(sort.call)
        if len(sort_text) > 50:
            sort_text = self.ctx.code(sort.call.func) + "(...)"
        self.report(
            sort.call,
            f"{sort_text} reorders the batch by length before pack_padded_sequence and the original order is "
            f"never restored: outputs come back sorted and no longer line up with the labels; drop the sort and "
            f"pass enforce_sorted=False to pack_padded_sequence (or undo it with out[{sort.perm}.argsort()])",
            fix="Drop the manual sort and pass enforce_sorted=False" if clean else
                "Pass enforce_sorted=False (then remove the manual sort and the reordering by hand)",
            edits=edits,
            applicability=None if clean else Applicability.DISPLAY_ONLY,
        )

    def _tensor_fix(self, body: "_Body", sort: "_Sort", reorders: list["_Reorder"], packs: list[cst.Call]):
        """Edits, and whether they are the whole fix (the sort removed cleanly)."""
        enforce = [_enforce_edit(p) for p in packs]
        clean = sort.statement is not None
        edits: list[NodeEdit] = []
        renames: dict[str, str] = {}
        if sort.values and sort.values != sort.source_text:
            renames[sort.values] = sort.source_text
        for reorder in reorders:
            if reorder.statement is None:
                if any(p in reorder.ancestors for p in packs):  # pack(x[perm], ...): drop the index
                    edits.append(replace(reorder.subscript, self.ctx.code(reorder.subscript.value)))
                    continue
                clean = False
                continue
            edits.append(delete_statement(reorder.statement))
            if reorder.target != reorder.source_text:
                renames[reorder.target] = reorder.source_text
        for name, original in renames.items():
            for occurrence in body.occurrences(name):
                if occurrence.binding:
                    continue
                if not any(p in occurrence.ancestors for p in packs):
                    clean = False  # used elsewhere: removing the sort changes more than the pack
                    break
                edits.append(replace(occurrence.node, original))
        if sort.statement is not None:
            edits.append(delete_statement(sort.statement))
        edits.extend(enforce)
        if not clean:
            return enforce, False
        return edits, True

    # -- list sorts in collate functions -------------------------------------------

    def _list_sort(self, body: "_Body", sort: "_ListSort") -> None:
        stale = body.unsorted_returned(sort)
        if not stale:
            return
        names = ", ".join(sorted(stale))
        edits = [delete_statement(sort.statement)] if sort.statement is not None and sort.in_place else []
        self.report(
            sort.call,
            f"{self.ctx.code(sort.call.func)}(...) sorts the sequences by length but {names} "
            f"{'was' if len(stale) == 1 else 'were'} built from the unsorted batch: the collate returns inputs "
            f"and labels in different orders; sort the (input, label) pairs together, or drop the sort and "
            f"pack with enforce_sorted=False",
            fix="Drop the sort (and pass enforce_sorted=False where the batch is packed)",
            edits=edits,
            applicability=Applicability.DISPLAY_ONLY,
        )


# -- reading one function body ----------------------------------------------------------


@dataclass
class _Sort:
    call: cst.Call
    statement: cst.SimpleStatementLine | None  # when the sort is a statement of its own
    values: str | None  # name bound to the sorted lengths, if any
    perm: str
    source_text: str  # the lengths as written: "lengths"


@dataclass
class _ListSort:
    call: cst.Call
    statement: cst.SimpleStatementLine | None
    sorted_name: str  # the name holding the sorted list afterwards
    source: str  # the list that was sorted
    in_place: bool  # ``x.sort(...)`` or ``x = sorted(x, ...)``


@dataclass
class _Reorder:
    target: str  # name bound to the reordered tensor ("" when used inline)
    source_text: str
    subscript: cst.CSTNode  # ``x[perm]`` or ``x.index_select(0, perm)``
    index_node: cst.Name  # the occurrence of the permutation
    statement: cst.SimpleStatementLine | None  # ``y = x[perm]`` standing alone
    ancestors: list = field(default_factory=list)


@dataclass
class _Occurrence:
    node: cst.Name
    ancestors: list  # outermost first
    binding: bool


class _Body:
    """The statements of one function (or the module), without nested definitions."""

    def __init__(self, ctx, node: cst.CSTNode) -> None:
        self.ctx = ctx
        self.node = node
        self.lines: list[cst.SimpleStatementLine] = []
        self.assigns: list[tuple[tuple[str, ...], cst.BaseExpression, cst.SimpleStatementLine]] = []
        self._occurrences: dict[str, list[_Occurrence]] = {}
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
                            _Occurrence(node, list(self.stack), _is_binding(node, self.stack)))
                self.stack.append(node)
                return True

            def on_leave(self, original_node: cst.CSTNode) -> None:
                if self.stack and self.stack[-1] is original_node:
                    self.stack.pop()

        Walker().walk(self.node)

    def occurrences(self, name: str) -> list[_Occurrence]:
        return self._occurrences.get(name, [])

    def calls(self) -> list[cst.Call]:
        found: list[cst.Call] = []
        for line in self.lines:
            found.extend(find_all(line, cst.Call, skip=(cst.Lambda,)))
        return found

    def packs(self) -> list[cst.Call]:
        return [c for c in self.calls() if self.ctx.qualname(c.func) == PACK_PADDED]

    # -- tensor sorts --------------------------------------------------------------

    def tensor_sorts(self) -> list[_Sort]:
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
            sorts.append(_Sort(call, alone, values, perm, self.ctx.code(source)))
        return sorts

    def reorders(self, perm: str) -> list[_Reorder]:
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
            found.append(_Reorder(target, self.ctx.code(source), expr, occurrence.node, statement,
                                  occurrence.ancestors))
        return found

    def downstream(self, names: set[str]) -> set[str]:
        """Names assigned (anywhere in the body) from expressions that use ``names``, transitively."""
        reached = set(names)
        changed = True
        while changed:
            changed = False
            for targets, value, _ in self.assigns:
                if any(t not in reached for t in targets) and reached & _names_of(value):
                    reached.update(targets)
                    changed = True
        return reached

    def fed_by(self, pack: cst.Call, sort: _Sort, reorders: list[_Reorder]) -> bool:
        """Do the pack's lengths come from the sort?"""
        lengths = keyword_arg(pack, "lengths") or (pack.args[1] if len(pack.args) > 1 else None)
        if lengths is None:
            return False
        sources = {sort.perm} | ({sort.values} if sort.values else set()) | {r.target for r in reorders if r.target}
        return bool(self.downstream(sources) & _names_of(lengths.value))

    def reaches(self, name: str, packs: list[cst.Call]) -> bool:
        """Does ``name`` flow (through assignments) into one of the pack calls?"""
        if not name:
            return False
        reached = self.downstream({name})
        return any(n.value in reached for p in packs for n in _names_in(p))

    # -- list sorts --------------------------------------------------------------

    def list_sorts(self) -> list[_ListSort]:
        found = []
        for line in self.lines:
            for small in line.body:
                call = small.value if isinstance(small, (cst.Expr, cst.Assign)) else None
                if not isinstance(call, cst.Call) or not _by_length_descending(call):
                    continue
                name = dotted(call.func)
                if isinstance(small, cst.Expr) and isinstance(call.func, cst.Attribute) and \
                        call.func.attr.value == "sort" and isinstance(call.func.value, cst.Name):
                    source = call.func.value.value
                    found.append(_ListSort(call, line if len(line.body) == 1 else None, source, source, True))
                elif isinstance(small, cst.Assign) and name == "sorted" and call.args and isinstance(
                        call.args[0].value, cst.Name) and len(small.targets) == 1 and isinstance(
                        small.targets[0].target, cst.Name):
                    source = call.args[0].value.value
                    target = small.targets[0].target.value
                    alone = line if len(line.body) == 1 else None
                    found.append(_ListSort(call, alone, target, source, target == source))
        return found

    def unsorted_returned(self, sort: _ListSort) -> set[str]:
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
                roots |= _names_of(value) & local
                roots |= set(targets)
        stale = {n for targets, value in before if roots & (_names_of(value) | set(targets))
                 and not _scalar(value) for n in targets}
        stale.discard(sort.sorted_name)
        if not sort.in_place:
            stale.add(sort.source)
        fresh = {sort.sorted_name}
        for targets, value in after:  # reassigned after the sort: follows what it is built from
            used = _names_of(value)
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
                    returned |= _names_of(small.value)
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


def _names_of(node: cst.CSTNode) -> set[str]:
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
    if isinstance(value, cst.Call):
        return value, None
    if isinstance(value, cst.Attribute) and value.attr.value == "indices" and isinstance(value.value, cst.Call):
        return value.value, "indices"
    if isinstance(value, cst.Subscript) and isinstance(value.value, cst.Call) and len(value.slice) == 1:
        index = value.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.Integer) and index.value.value == "1":
            return value.value, "indices"
    return None, None


def _sort_kind(ctx, call: cst.Call) -> str | None:
    qualname = ctx.qualname(call.func) or ""
    if qualname in ("torch.sort", "torch.argsort"):
        return qualname.rsplit(".", 1)[1]
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("sort", "argsort"):
        return call.func.attr.value
    return None


def _sorted_tensor(ctx, call: cst.Call) -> cst.BaseExpression | None:
    """The lengths being sorted, for ``torch.sort(lengths, ...)`` / ``lengths.sort(...)``."""
    kind = _sort_kind(ctx, call)
    if kind is None:
        return None
    if (ctx.qualname(call.func) or "").startswith("torch."):
        source = call.args[0].value if call.args and call.args[0].keyword is None else None
    else:
        source = call.func.value  # type: ignore[union-attr]
    if source is None or dotted(source) is None:
        return None
    return source


def _descending(ctx, call: cst.Call) -> bool:
    arg = keyword_arg(call, "descending")
    if arg is None:
        positional = [a for a in call.args if a.keyword is None]
        torch_form = (ctx.qualname(call.func) or "").startswith("torch.")
        at = 2 if torch_form else 1
        arg = positional[at] if len(positional) > at else None
    return arg is not None and isinstance(arg.value, cst.Name) and arg.value.value == "True"


def _reordering(ctx, occurrence: _Occurrence) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
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
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "index_select":
            if ctx.qualname(call.func) == "torch.index_select":
                return (call, call.args[0].value) if call.args else None
            return call, call.func.value
    return None


def _enforces_sorting(pack: cst.Call) -> bool:
    arg = keyword_arg(pack, "enforce_sorted")
    if arg is None:
        return len([a for a in pack.args if a.keyword is None]) < 4
    return isinstance(arg.value, cst.Name) and arg.value.value == "True"


def _enforce_edit(pack: cst.Call) -> NodeEdit:
    arg = keyword_arg(pack, "enforce_sorted")
    if arg is not None:
        return replace(arg.value, "False")
    return add_arg(pack, "enforce_sorted=False")


def _by_length_descending(call: cst.Call) -> bool:
    """``sorted(x, key=len, reverse=True)``, ``x.sort(key=lambda p: len(p[0]), reverse=True)``,
    ``key=lambda p: -len(p)``."""
    name = dotted(call.func) or ""
    if name != "sorted" and not name.endswith(".sort"):
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


def _is_length(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Name):
        return expr.value == "len" or is_length_name(expr.value)
    if isinstance(expr, cst.Call):
        name = dotted(expr.func) or ""
        return name == "len" or name.endswith((".size", ".numel", ".__len__"))
    if isinstance(expr, cst.Subscript):
        base = dotted(expr.value) or ""
        return base.endswith(".shape") or _is_length(expr.value)
    return False


def _scalar(value: cst.BaseExpression) -> bool:
    return isinstance(value, (cst.Integer, cst.Float)) or (
        isinstance(value, cst.Call) and dotted(value.func) in ("len", "max", "min", "sum", "int"))


def _is_collate(ctx, function: cst.FunctionDef, collate_names: set[str]) -> bool:
    name = function.name.value
    if "collate" in name.lower() or name in collate_names:
        return True
    padders = PACK_FUNCTIONS | {PAD_SEQUENCE}
    return any(ctx.qualname(c.func) in padders for c in find_all(function, cst.Call, skip=(cst.Lambda,)))


_ENCODER = """
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Encoder(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64, padding_idx=0)
            self.rnn = nn.GRU(64, 128, batch_first=True)
            self.fc = nn.Linear(128, 3)
    """

SortedPackOrderLost.VALID = [
    # enforce_sorted=False: no manual sort at all
    Valid(_ENCODER + """
        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, hidden = self.rnn(packed)
            return self.fc(hidden[-1])
    """),
    # sorted, then put back with the inverse permutation
    Valid(_ENCODER + """
        def forward(self, tokens, lengths):
            lengths, perm = lengths.sort(descending=True)
            tokens = tokens[perm]
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True)
            _, hidden = self.rnn(packed)
            unsort = perm.argsort()
            return self.fc(hidden[-1][unsort])
    """),
    # restored by writing back through the permutation
    Valid(_ENCODER + """
        def forward(self, tokens, lengths):
            sorted_lengths, order = torch.sort(lengths, descending=True)
            packed = pack_padded_sequence(self.embed(tokens[order]), sorted_lengths.cpu(), batch_first=True)
            _, hidden = self.rnn(packed)
            restored = torch.empty_like(hidden[-1])
            restored[order] = hidden[-1]
            return self.fc(restored)
    """),
    # the training loop sorts the labels with the same permutation
    Valid("""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    def train_epoch(model, loader, criterion, optimizer):
        for tokens, lengths, labels in loader:
            lengths, perm = lengths.sort(descending=True)
            tokens, labels = tokens[perm], labels[perm]
            packed = pack_padded_sequence(model.embed(tokens), lengths, batch_first=True)
            _, hidden = model.rnn(packed)
            loss = criterion(model.fc(hidden[-1]), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    """),
    # a collate that sorts the (sequence, label) pairs together
    Valid("""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def collate_batch(batch):
        batch = sorted(batch, key=lambda pair: len(pair[0]), reverse=True)
        seqs = [torch.tensor(s) for s, _ in batch]
        labels = torch.tensor([y for _, y in batch])
        lengths = torch.tensor([len(s) for s in seqs])
        return pad_sequence(seqs, batch_first=True), lengths, labels
    """),
    # the permutation is returned to the caller, which may restore the order
    Valid("""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

    def pack_batch(seqs):
        lengths = torch.tensor([len(s) for s in seqs])
        padded = pad_sequence(seqs, batch_first=True)
        lengths, idx = torch.sort(lengths, descending=True)
        return pack_padded_sequence(padded[idx], lengths, batch_first=True), idx
    """),
    # sorting for another reason (top-k scores), no packing
    Valid("""
    import torch

    def top_classes(scores):
        values, indices = scores.sort(descending=True)
        return indices[:, :5]
    """),
]

SortedPackOrderLost.INVALID = [
    Invalid(_ENCODER + """
        def forward(self, tokens, lengths):
            lengths, perm = lengths.sort(descending=True)
            tokens = tokens[perm]
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True)
            _, hidden = self.rnn(packed)
            return self.fc(hidden[-1])
    """, lines=[13], fixed=_ENCODER + """
        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, hidden = self.rnn(packed)
            return self.fc(hidden[-1])
    """),
    # torch.sort with new names, aliased module import, reorder inline in the pack call
    Invalid("""
    import torch
    import torch.nn.utils.rnn as rnn_utils

    def encode(rnn, padded, lengths):
        sorted_lengths, sort_idx = torch.sort(lengths, descending=True)
        packed = rnn_utils.pack_padded_sequence(padded[sort_idx], sorted_lengths, enforce_sorted=True)
        output, h_n = rnn(packed)
        output, _ = rnn_utils.pad_packed_sequence(output)
        return output, h_n
    """, lines=[5], fixed="""\
import torch
import torch.nn.utils.rnn as rnn_utils

def encode(rnn, padded, lengths):
    packed = rnn_utils.pack_padded_sequence(padded, lengths, enforce_sorted=False)
    output, h_n = rnn(packed)
    output, _ = rnn_utils.pad_packed_sequence(output)
    return output, h_n
"""),
    # the sorted lengths are also used to build a mask: only display-only
    Invalid(_ENCODER + """
        def forward(self, tokens, lengths):
            sorted_lens, perm = lengths.sort(descending=True)
            tokens = tokens.index_select(0, perm)
            packed = pack_padded_sequence(self.embed(tokens), sorted_lens.cpu(), batch_first=True)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True)
            mask = torch.arange(out.size(1))[None, :] < sorted_lens[:, None]
            return self.fc((out * mask.unsqueeze(-1)).sum(1))
    """, lines=[13]),
    # a collate that sorts the sequences but builds the labels before the sort
    Invalid("""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def pad_batch(batch):
        seqs = [torch.tensor(s) for s, _ in batch]
        labels = torch.tensor([y for _, y in batch])
        seqs.sort(key=len, reverse=True)
        lengths = torch.tensor([len(s) for s in seqs])
        return pad_sequence(seqs, batch_first=True), lengths, labels
    """, lines=[7]),
]
