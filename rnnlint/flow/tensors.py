"""Facts on tensors that cross functions, classes and files: lengths on a device.

``pack_padded_sequence`` needs its lengths on the host. In real projects the
lengths are moved to the GPU in the training script (``lengths.to(device)``)
and packed in a model file's ``forward``, one or two modules down
(``self.encoder(x, lengths)``). This module joins the two ends:

* :meth:`Lengths.sinks` — the *forward summary* of a module class: the
  ``pack_padded_sequence`` calls that the value of one ``forward`` argument
  reaches without being taken off the device, through local assignments,
  ``torch.sort``/``.sort()``/``.int()``-like calls (which keep the device)
  and calls of submodules (whose class the flow model resolves, injected
  through constructors included);
* :meth:`Lengths.scan` — the calls of one file that pass a tensor moved to a
  device (``.cuda()``, ``.to(device)``) to a module whose summary packs it.

What moves, keeps and sanitises is read from :mod:`rnnlint.flow.library`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from rnnlint.flow import library, torchtext
from rnnlint.flow.scopes import FileFacts, Site
from rnnlint.flow.values import CONST, INSTANCE
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, param_names


@dataclass(frozen=True)
class Sink:
    """A ``pack_padded_sequence`` call reached by a ``forward`` argument."""

    call: cst.Call
    lengths: cst.BaseExpression
    path: Path
    owner: str  # the class whose forward holds it
    derived: bool = False  # computed from the argument (``(x != pad).sum(1)``), not the argument itself


@dataclass(frozen=True)
class Hit:
    """A call passing lengths moved to a device into a module that packs them."""

    call: cst.Call
    move: cst.Call  # the ``.to(device)`` / ``.cuda()`` that moved them (or the torchtext iterator that did)
    path: Path
    sinks: tuple[Sink, ...]
    move_path: Path  # the file of ``move``


class Lengths:
    def __init__(self, flow) -> None:
        self.flow = flow
        self._sinks: dict[tuple, tuple[Sink, ...]] = {}
        self._scans: dict[Path, tuple[Hit, ...]] = {}
        self.generation = flow.generation
        self._packs: bool | None = None

    # -- the module side -----------------------------------------------------------------

    def sinks(self, facts: FileFacts, cls: cst.ClassDef, position: int | str, depth: int = 0) -> tuple[Sink, ...]:
        key = (facts.path, id(cls), position)
        if key in self._sinks:
            return self._sinks[key]
        self._sinks[key] = ()  # recursion
        forward = facts.methods.get(cls, {}).get("forward")
        found: tuple[Sink, ...] = ()
        if forward is not None and depth < 6:
            name = _param_name(forward, position)
            if name is not None:
                found = tuple(self.param_sinks(facts, forward, name, depth))
        self._sinks[key] = found
        return found

    def param_sinks(self, facts: FileFacts, function: cst.FunctionDef, name: str | tuple[str, ...], depth: int = 0,
                    direct: bool = False) -> list[Sink]:
        """The pack calls the parameter ``name`` of ``function`` reaches, still on its device; ``direct``:
        only those ``function`` makes itself (not through the modules it calls).

        ``name`` may be several parameters: then the pack calls any of them reaches, in one walk. What a
        value keeps is the *or* of what its parts keep (see :func:`keeps`), so following them together
        tracks at each statement exactly the names that following each alone would."""
        lengths = self
        site = facts.site(function)
        found: list[Sink] = []
        tracked = {name} if isinstance(name, str) else set(name)
        derived: set[str] = set()  # tracked names that hold a value computed from the argument

        class Walk(Visitor):
            def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
                return node is function

            def visit_Lambda(self, node: cst.Lambda) -> bool:
                return False

            def visit_Call(self, node: cst.Call) -> None:
                qualname = facts.imports.resolve(node.func)
                if qualname in library.PACK_LENGTHS:
                    arg = _argument(node, *library.PACK_LENGTHS[qualname])
                    if arg is not None and keeps(arg, tracked, facts, lengths.flow):
                        owner = site.cls.name.value if site.cls is not None else function.name.value
                        found.append(Sink(node, arg, facts.path, owner, _computed(arg, derived)))
                    return
                for position, arg in _arguments(node) if not direct else ():
                    if keeps(arg, tracked, facts, lengths.flow):
                        found.extend(lengths.callee_sinks(node, site, position, depth + 1))

            def leave_Assign(self, node: cst.Assign) -> None:
                for target in node.targets:
                    bind(target.target, node.value)

            def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
                if node.value is not None:
                    bind(node.target, node.value)

        def bind(target: cst.BaseExpression, value: cst.BaseExpression) -> None:
            if isinstance(target, (cst.Tuple, cst.List)):
                elements = [e.value for e in target.elements]
                if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(elements):
                    for sub, val in zip(elements, value.elements):
                        bind(sub, val.value)
                    return
                # ``sorted_lengths, order = lengths.sort(...)``: the first result carries the lengths
                for i, sub in enumerate(elements):
                    bind_name(sub, i == 0 and keeps(value, tracked, facts, lengths.flow), _computed(value, derived))
                return
            bind_name(target, keeps(value, tracked, facts, lengths.flow), _computed(value, derived))

        def bind_name(target: cst.BaseExpression, keep: bool, computed: bool) -> None:
            written = dotted(target)
            if written is None:
                return
            if keep:
                tracked.add(written)
            else:
                tracked.discard(written)
            if keep and computed:
                derived.add(written)
            else:
                derived.discard(written)

        Walk().walk(function)
        return found

    def callee_sinks(self, call: cst.Call, site: Site, position: int | str, depth: int) -> list[Sink]:
        """Sinks of the module ``call`` calls (``self.encoder(x, lengths)``, ``model(x, lengths)``)."""
        if depth > 6 or isinstance(call.func, cst.Attribute) and call.func.attr.value in library.OFF_DEVICE_METHODS:
            return []
        out: list[Sink] = []
        for value in self.flow.values(call.func, site, models=True):
            if value.kind != INSTANCE:
                continue
            other = self.flow.file(value.path)
            if other is not None:
                out.extend(self.sinks(other, value.node, position, depth))
        return out

    # -- the caller side -----------------------------------------------------------------

    def scan(self, facts: FileFacts) -> tuple[Hit, ...]:
        """Calls of this file that hand lengths moved to a device to a module that packs them."""
        if facts.path in self._scans:
            return self._scans[facts.path]
        hits: list[Hit] = []
        if not self.project_packs():
            self._scans[facts.path] = ()
            return ()
        for calls in facts.calls.values():
            for call, function, _ in calls:
                if not _may_be_module(call, facts):
                    continue
                for position, arg in _arguments(call):
                    move, where = moved(arg, facts, function, use=call), facts.path
                    if move is None and torchtext.uses_torchtext(self.flow, facts.path):
                        batch = iterator_lengths(self.flow, arg, facts, function)
                        move, where = (batch.iterator, batch.iterator_path) if batch is not None else (None, None)
                    if move is None:
                        continue
                    sinks = self.callee_sinks(call, facts.site(function), position, 0)
                    if sinks:
                        hits.append(Hit(call, move, facts.path, tuple(sinks), where))
        self._scans[facts.path] = tuple(hits)
        return self._scans[facts.path]

    def project_packs(self) -> bool:
        """Does any module of the project pack an argument of its ``forward`` as it came? Without one, no
        caller's lengths can reach a pack, and no file needs the caller-side scan."""
        if self._packs is None:
            self._packs = False
            # first the packs each forward makes itself, which answer most projects at once; only without
            # one are the submodules each forward hands its arguments to followed (a keyword-only
            # parameter packed there: the costly search, and the same answer as before it was split)
            forwards = []
            ends = False  # does some forward pack a parameter of its own that only a keyword can fill?
            for path, words in self.flow.project_files().items():
                if "pack_padded_sequence" not in words or "forward" not in words:
                    continue
                facts = self.flow.file(path)
                for methods in (facts.methods.values() if facts is not None else ()):
                    forward = methods.get("forward")
                    if forward is None:
                        continue
                    params = tuple(p.name.value for p in forward.params.params[1:])
                    forwards.append((facts, forward, params))
                    if params and self.param_sinks(facts, forward, params, direct=True):
                        self._packs = True
                        return True
                    # every name _param_name can give (and ``self``, which holds no lengths)
                    others = tuple(name for name in param_names(forward) if name not in params)
                    ends = ends or bool(others and self.param_sinks(facts, forward, others, direct=True))
            # The search through submodules ends at a forward that packs one of its own parameters as it
            # came, under a name a call can fill (a pack is recognised only in a file that names
            # pack_padded_sequence, and a submodule's sinks are its forward's): without such a forward
            # it finds nothing, and is not made.
            self._packs = ends and any(self.param_sinks(facts, forward, params)
                                       for facts, forward, params in forwards if params)
        return self._packs

    def callers(self, sink: Sink, within: frozenset[Path] | None = None) -> list[Hit]:
        """Every call in the project that hands device lengths to ``sink``; ``within``: the files that can
        matter to the asking rule, when the run knows them (a caller elsewhere could be reported by no
        rule: the run would skip it)."""
        out = []
        for path, words in self.flow.project_files().items():
            if not _may_move_to_device(words) or within is not None and path not in within:
                continue
            facts = self.flow.file(path)
            if facts is None:
                continue
            out.extend(hit for hit in self.scan(facts) if any(s.call is sink.call for s in hit.sinks))
        return out


def packs_on_device(facts: FileFacts) -> list[tuple[cst.Call, cst.BaseExpression, str]]:
    """The ``pack_padded_sequence`` calls of one file whose lengths are on a device by what the same
    function shows before the call, in source order: ``(call, lengths argument, the move as written)``.

    The argument is ``lengths.cuda()``, ``lengths.to(device)``, ``torch.tensor(..., device=device)``,
    or a name whose last assignment before the call in that function is one of those (through calls
    that keep the device, and tuple unpacking of tuples); a parameter, a loop target or an augmented
    assignment is not known to be on a device. Across functions and files see :class:`Lengths`.
    """
    found: list[tuple[cst.Call, cst.BaseExpression, str]] = []

    class Walk(Visitor):
        def __init__(self) -> None:
            self.scopes: list[dict[str, str]] = [{}]  # per scope: name -> the move ("" on the host/unknown)

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            params = (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)
            self.scopes.append({p.name.value: "" for p in params})

        def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
            self.scopes.pop()

        def leave_Assign(self, original_node: cst.Assign) -> None:
            for target in original_node.targets:
                self.bind(target.target, original_node.value)

        def leave_AnnAssign(self, original_node: cst.AnnAssign) -> None:
            if original_node.value is not None:
                self.bind(original_node.target, original_node.value)

        def leave_AugAssign(self, original_node: cst.AugAssign) -> None:
            self.bind(original_node.target, None)

        def visit_For(self, node: cst.For) -> None:
            self.bind(node.target, None)

        def visit_Call(self, node: cst.Call) -> None:
            qualname = facts.imports.resolve(node.func)
            if qualname not in library.PACK_LENGTHS:
                return
            lengths = _argument(node, *library.PACK_LENGTHS[qualname])
            how = self.moved(lengths) if lengths is not None else ""
            if how:
                found.append((node, lengths, how))

        def bind(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
            if isinstance(target, (cst.Tuple, cst.List)):
                parts = None
                if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
                    parts = [e.value for e in value.elements]
                for position, element in enumerate(target.elements):
                    self.bind(element.value, parts[position] if parts else None)
                return
            name = dotted(target)
            if name is not None:
                self.scopes[-1][name] = self.moved(value) if value is not None else ""

        def moved(self, expr: cst.BaseExpression, depth: int = 0) -> str:
            if depth > 8:
                return ""
            written = dotted(expr)
            if written is not None:
                return next((scope[written] for scope in (self.scopes[-1], self.scopes[0]) if written in scope), "")
            if not isinstance(expr, cst.Call):
                return ""
            func = expr.func
            if facts.imports.resolve(func) in library.DEVICE_FACTORIES:
                device = _argument(expr, "device", -1)
                return facts.module.code_for_node(expr) if device is not None and _is_device(device) else ""
            if not isinstance(func, cst.Attribute):
                return ""
            method = func.attr.value
            if method in library.TO_DEVICE_METHODS:
                return facts.module.code_for_node(expr)
            if method == "to":
                target = _argument(expr, "device", 0)
                if target is not None and _is_cpu(target):
                    return ""
                if target is not None and _is_device(target):
                    return facts.module.code_for_node(expr)
                return self.moved(func.value, depth + 1)  # .to(torch.long): the same device
            if method in library.SAME_DEVICE_METHODS:
                return self.moved(func.value, depth + 1)
            return ""

    Walk().walk(facts.module)
    return found


def lengths_of(flow) -> Lengths:
    """The run's lengths analysis; its memos hold nodes, so they last while no file's facts change."""
    current = getattr(flow, "lengths", None)
    if current is None or current.generation != flow.generation:
        current = flow.lengths = Lengths(flow)
    return current


def _may_move_to_device(words: frozenset[str]) -> bool:
    """Could a file with these words put a tensor on an accelerator? ``.cuda()``, or ``.to(x)`` with a
    device ``x`` (see :func:`_is_device`: a name with "device", "cuda" or "gpu" in it). Reading only such
    files keeps the search for callers from parsing the whole project for every sink."""
    return any("cuda" in w or "gpu" in w.lower() or "device" in w.lower() or w == "dev" for w in words)


def _may_be_module(call: cst.Call, facts: FileFacts) -> bool:
    """Could ``call`` be a call of a project module (``model(x, lengths)``, ``self.encoder(...)``)?

    Tensor methods, library functions and the packing call itself are not: skipping them keeps the
    flow model's questions to the calls that matter.
    """
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in _TENSOR_METHODS:
        return False
    qualname = facts.imports.resolve(func)
    return qualname is None or qualname.split(".")[0] not in _LIBRARY_ROOTS


_TENSOR_METHODS = library.SAME_DEVICE_METHODS | library.OFF_DEVICE_METHODS | library.TO_DEVICE_METHODS | {
    "append", "extend", "update", "format", "item", "size", "dim", "numel", "sum", "mean", "max", "min",
    "backward", "step", "zero_grad", "log", "print", "add_scalar", "forward"}
_LIBRARY_ROOTS = frozenset({"torch", "numpy", "np", "math", "os", "sys", "time", "random", "logging", "print",
                            "len", "range", "list", "dict", "tuple", "zip", "enumerate", "min", "max", "sum",
                            "isinstance", "str", "int", "float", "open", "json", "pickle"})


def keeps(expr: cst.BaseExpression, tracked: set[str], facts: FileFacts, flow=None, depth: int = 0) -> bool:
    """Is ``expr`` one of the tracked values, or computed from one on its device?

    Besides the tracked names themselves: a part of one (``x[:, :n]``), the methods
    and functions of :mod:`~rnnlint.flow.library` that keep the device (``.long()``,
    ``.sum(1)``, ``torch.sort``), a comparison or arithmetic with one (``x != pad``:
    a mask on the batch's device), and, when ``flow`` is given, a project function
    that returns a part of the argument it was given (``trim(x)`` with
    ``return x[:, :n]``).
    """
    written = dotted(expr)
    if written is not None:
        return written in tracked
    if isinstance(expr, cst.Subscript):
        return keeps(expr.value, tracked, facts, flow, depth)
    if isinstance(expr, cst.Comparison):
        return keeps(expr.left, tracked, facts, flow, depth) or any(
            keeps(c.comparator, tracked, facts, flow, depth) for c in expr.comparisons)
    if isinstance(expr, cst.BinaryOperation):
        return keeps(expr.left, tracked, facts, flow, depth) or keeps(expr.right, tracked, facts, flow, depth)
    if isinstance(expr, cst.Call):
        func = expr.func
        qualname = facts.imports.resolve(func)
        if qualname in library.SAME_DEVICE_FUNCTIONS and expr.args:
            return keeps(expr.args[0].value, tracked, facts, flow, depth)
        if qualname in library.OFF_DEVICE_FUNCTIONS:
            return False
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in library.OFF_DEVICE_METHODS:
                return False
            if method == "to" and expr.args and _is_cpu(expr.args[0].value):
                return False
            if method in library.SAME_DEVICE_METHODS:
                return keeps(func.value, tracked, facts, flow, depth)
        return flow is not None and depth < 3 and _returns_argument(expr, tracked, facts, flow, depth)
    return False


def _computed(expr: cst.BaseExpression, derived: set[str]) -> bool:
    """Is ``expr`` computed from the tracked argument rather than the argument as it came (moved, sorted,
    reshaped): a comparison, an arithmetic, a count, a project function's result, or a name holding one?
    Only the chain the value travels is read, not the other arguments (``x.reshape(b * n)``)."""
    if isinstance(expr, (cst.Comparison, cst.BinaryOperation)):
        return True
    if isinstance(expr, cst.Subscript):
        return _computed(expr.value, derived)
    if isinstance(expr, cst.Call):
        written = dotted(expr.func) or ""
        if written.rsplit(".", 1)[-1] in library.COUNTING:
            return True
        if isinstance(expr.func, cst.Attribute) and not written.startswith("torch."):
            return _computed(expr.func.value, derived)  # a method of the value: ``.long()``, ``.to(device)``
        if written.startswith("torch.") and expr.args:
            return _computed(expr.args[0].value, derived)  # ``torch.sort(lengths)``
        return True  # a project function's result
    return dotted(expr) in derived


def _returns_argument(call: cst.Call, tracked: set[str], facts: FileFacts, flow, depth: int) -> bool:
    """Does the project function ``call`` calls hand back (a part of) a tracked argument it was given?"""
    written = dotted(call.func)
    given = [position for position, arg in _arguments(call) if keeps(arg, tracked, facts, flow, depth + 1)]
    if not written or not given:
        return False  # no tracked argument: nothing to look up
    function, other = flow.function(written, facts)
    returns = other.returns.get(function, []) if function is not None else []
    for position in given if returns else ():
        name = _param_name(function, position)
        if name is not None and all(keeps(r, {name}, other, flow, depth + 1) for r in returns):
            return True
    return False


def moved(expr: cst.BaseExpression, facts: FileFacts, function: cst.FunctionDef | None, depth: int = 0,
          use: cst.CSTNode | None = None) -> cst.Call | None:
    """The call that put ``expr`` on an accelerator (``x.cuda()``, ``x.to(device)``), if the file shows one.
    ``use``: where ``expr`` is read (a call); a name's assignments that come after it, outside any loop
    around both, do not count (see :meth:`FileFacts.reaches`)."""
    if depth > 6:
        return None
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        method = expr.func.attr.value
        if method in library.TO_DEVICE_METHODS:
            return expr
        if method == "to" and expr.args and _is_device(expr.args[0].value):
            return expr
        if method in library.OFF_DEVICE_METHODS:
            return None
        if method in library.SAME_DEVICE_METHODS:
            return moved(expr.func.value, facts, function, depth + 1, use)
        return None
    if isinstance(expr, cst.Subscript):
        return moved(expr.value, facts, function, depth + 1, use)
    if isinstance(expr, cst.Name):  # in a function, or a script's top-level loop
        for value in facts.assigned(function if function is not None else facts.module, expr.value):
            if use is not None and not facts.reaches(value, use, expr.value):
                continue
            found = moved(value, facts, function, depth + 1, value)
            if found is not None:
                return found
    return None


def iterator_lengths(flow, expr: cst.BaseExpression, facts: FileFacts, function: cst.FunctionDef | None,
                     depth: int = 0) -> torchtext.FieldBatch | None:
    """The torchtext field whose lengths ``expr`` is, when its iterator put them on an accelerator
    (``text, lengths = batch.text`` with ``include_lengths=True`` and ``device=device``)."""
    if depth > 6:
        return None
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        if expr.func.attr.value in library.SAME_DEVICE_METHODS and not (
                expr.func.attr.value == "to" and expr.args and _is_cpu(expr.args[0].value)):
            return iterator_lengths(flow, expr.func.value, facts, function, depth + 1)
        return None
    if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) \
            and isinstance(expr.slice[0].slice.value, cst.Integer) and expr.slice[0].slice.value.evaluated_value == 1:
        batch = torchtext.field_at(flow, expr.value, facts.site(function))
        return batch if batch is not None and batch.lengths and _on_device(flow, batch) else None
    if isinstance(expr, cst.Name) and function is not None:
        for value in facts.assigned(function, expr.value):
            found = iterator_lengths(flow, value, facts, function, depth + 1)
            if found is not None:
                return found
    return None


def _on_device(flow, batch: torchtext.FieldBatch) -> bool:
    """Does the iterator's ``device=`` name an accelerator? A value the model resolves decides
    (``"cuda"``, a GPU index; ``"cpu"``, ``-1``: the host); otherwise it is judged as ``.to(device)`` is."""
    if batch.device is None:
        return False
    found = [v.value for v in flow.values(batch.device, batch.device_site) if v.kind == CONST]
    if found:
        return any(v.startswith("cuda") if isinstance(v, str) else isinstance(v, int) and not isinstance(v, bool)
                   and v >= 0 for v in found)
    return _is_device(batch.device)


_DTYPES = frozenset({"long", "int", "int64", "int32", "float", "float32", "float16", "double", "bool", "half",
                     "bfloat16", "uint8", "int16", "int8"})


def _is_cpu(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.SimpleString):
        return str(expr.evaluated_value).startswith("cpu")
    if isinstance(expr, cst.Call) and dotted(expr.func) in ("torch.device", "device") and expr.args:
        return _is_cpu(expr.args[0].value)
    return False


def _is_device(expr: cst.BaseExpression) -> bool:
    """A device, not a dtype: ``"cuda"``, ``device``, ``self.device``, ``torch.device(...)`` (not ``"cpu"``)."""
    if _is_cpu(expr):
        return False
    if isinstance(expr, cst.SimpleString):
        return str(expr.evaluated_value).startswith("cuda")
    written = dotted(expr)
    if written is not None:
        last = written.rsplit(".", 1)[-1]
        return last not in _DTYPES and "device" in last.lower() or last.lower() in ("cuda", "gpu", "dev")
    return isinstance(expr, cst.Call) and dotted(expr.func) in ("torch.device", "device")


def _param_name(function: cst.FunctionDef, position: int | str) -> str | None:
    params = [*function.params.posonly_params, *function.params.params]
    if params and params[0].name.value in ("self", "cls"):
        params = params[1:]
    if isinstance(position, str):
        names = {p.name.value for p in (*params, *function.params.kwonly_params)}
        return position if position in names else None
    return params[position].name.value if position < len(params) else None


def _arguments(call: cst.Call):
    """``(position or keyword, expression)`` of each argument that can be matched to a parameter."""
    position = 0
    for arg in call.args:
        if arg.star:
            return
        if arg.keyword is not None:
            yield arg.keyword.value, arg.value
        else:
            yield position, arg.value
            position += 1


def _argument(call: cst.Call, keyword: str, position: int) -> cst.BaseExpression | None:
    for key, value in _arguments(call):
        if key == keyword or key == position:
            return value
    return None
