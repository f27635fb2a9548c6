"""Is this value a recurrent model? Asked of values the flow model resolved.

A training function rarely builds its model: ``def train(model, loader,
optimizer)`` is called from ``main.py`` with ``Seq2Seq(encoder, decoder)``,
whose GRUs are built by the caller and handed to the constructor. A value is
a recurrent model when it is

* a recurrent module of the library (``nn.LSTM(...)``), or an instance of a
  project class that the project index finds recurrent (by inheritance or by
  composition in its body);
* an instance whose constructor was given a recurrent model (injected
  submodules: ``Seq2Seq(encoder=GRUEncoder(...))``);
* an instance of a class that builds its recurrent layer by name
  (``getattr(nn, rnn_type)(...)`` with ``rnn_type`` resolving to ``"GRU"``), or
  that packs sequences for a layer it was given (``pack_padded_sequence`` in its
  methods: a wrapper that only exists to feed a recurrence).
"""

from __future__ import annotations

import libcst as cst

from rnnlint.flow.scopes import FileFacts
from rnnlint.flow.values import CLASS, CONST, INSTANCE, LIBRARY, Value
from rnnlint.names import dotted

_RECURRENT_SHORT = frozenset({"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"})
_PACKERS = frozenset({"torch.nn.utils.rnn.pack_padded_sequence", "torch.nn.utils.rnn.pack_sequence"})


def is_recurrent(flow, value: Value, depth: int = 0) -> bool:
    if value.kind == LIBRARY:
        return value.value in flow.index.recurrent_names
    if value.kind != INSTANCE or depth > 3:
        return False
    if flow.index.is_recurrent(value.path, value.value):
        return True
    facts = flow.file(value.path)
    if facts is None:
        return False
    cls = value.node
    if _builds_by_name(flow, facts, cls) or packs(facts, cls):
        return True
    # submodules handed to the constructor
    if value.call is not None and value.call_site is not None:
        for arg in value.call.args:
            if any(is_recurrent(flow, v, depth + 1) for v in flow.values(arg.value, value.call_site, models=True)):
                return True
    return class_builds_recurrent(flow, facts, cls, depth)


def class_builds_recurrent(flow, facts: FileFacts, cls: cst.ClassDef, depth: int = 0) -> bool:
    """Does a ``self.x = ...`` of the class build a recurrent model, as the flow model resolves it
    (``self.model = self.model_cls(...)`` with ``model_cls`` a recurrent class picked in a classmethod)?"""
    if depth > 3:
        return False
    for assigned in facts.self_assigns.get(cls, {}).values():
        for expr, method in assigned:
            if isinstance(expr, cst.Call) and any(
                    is_recurrent(flow, v, depth + 1) for v in flow.values(expr, facts.site(method), models=True)):
                return True
    return False


def recurrent(flow, values: list[Value]) -> bool | None:
    """True when one of the values is a recurrent model, False when all are known models that are not,
    None when none of them is a model the flow model can judge."""
    judged = [v for v in values if v.kind in (INSTANCE, LIBRARY)]
    if not judged:
        return None
    return any(is_recurrent(flow, v) for v in judged)


def _builds_by_name(flow, facts: FileFacts, cls: cst.ClassDef) -> bool:
    """``self.rnn = getattr(nn, self.rnn_type)(...)`` with a recurrent class name among the values."""
    for assigned in facts.self_assigns.get(cls, {}).values():
        for expr, method in assigned:
            if not (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Call)):
                continue
            inner = expr.func
            if dotted(inner.func) != "getattr" or len(inner.args) < 2:
                continue
            module = facts.imports.resolve(inner.args[0].value) or ""
            if module not in ("torch.nn", "nn"):
                continue
            names = flow.values(inner.args[1].value, facts.site(method))
            if any(v.kind == CONST and v.value in _RECURRENT_SHORT for v in names):
                return True
    return False


def forward_calls(flow, value: Value, method: str) -> bool:
    """Does calling the model ``value`` run ``<something>.<method>()`` in its class's ``forward``
    (a model whose ``forward`` starts with ``self.zero_grad()`` clears the gradients each time it runs)?"""
    if value.kind != INSTANCE or value.node is None:
        return False
    facts = flow.file(value.path)
    forward = facts.methods.get(value.node, {}).get("forward") if facts is not None else None
    return forward is not None and any(
        function is forward and isinstance(call.func, cst.Attribute) for call, function, _ in facts.calls.get(method, ()))


def packs(facts: FileFacts, cls: cst.ClassDef) -> bool:
    """Does a method of ``cls`` pack (whatever name the file imports the packing function under)?"""
    methods = set(facts.methods.get(cls, {}).values())
    for calls in facts.calls.values():
        for call, function, _ in calls:
            if function in methods and facts.imports.resolve(call.func) in _PACKERS:
                return True
    return False


def packs_anywhere(flow, value: Value, depth: int = 0) -> bool:
    """Does the model ``value`` pack sequences somewhere: in its class, its project bases, the project
    classes it builds as submodules, or the submodules handed to its constructor? When unsure, yes."""
    if value.kind != INSTANCE:
        return False
    if depth > 3:
        return True
    facts = flow.file(value.path)
    if facts is None:
        return True
    classes = [(value.node, value.path)]
    classes += [(b.node, b.path) for base in value.node.bases
                for b in flow.values(base.value, facts.site(None), models=True) if b.kind == CLASS]
    for cls, path in classes:
        owner = flow.file(path) if cls is not None else None
        if owner is None or packs(owner, cls):
            return True
        for assigned in owner.self_assigns.get(cls, {}).values():
            for expr, method in assigned:
                if isinstance(expr, cst.Call) and any(
                        packs_anywhere(flow, v, depth + 1)
                        for v in flow.values(expr, owner.site(method), models=True) if v.kind == INSTANCE):
                    return True
    if value.call is not None and value.call_site is not None:
        for arg in value.call.args:
            if any(packs_anywhere(flow, v, depth + 1)
                   for v in flow.values(arg.value, value.call_site, models=True) if v.kind == INSTANCE):
                return True
    return False


_IN_PLACE = frozenset({"clamp_", "clip_", "mul_", "div_", "copy_", "zero_", "fill_", "nan_to_num_", "sub_", "add_"})


def changes_gradients(flow, facts: FileFacts, function: cst.FunctionDef, depth: int = 0) -> bool:
    """Does ``function`` clip or otherwise rewrite gradients in place (recognised by what it does)?

    A call of a clip function (``clip_grad_norm_``...), an in-place method on a ``.grad``
    (``p.grad.data.clamp_(-1, 1)``, ``p.grad.mul_(scale)``), or a call of a method of the same class or
    a function of the same file that does.
    """
    from rnnlint.flow.library import CLIP_FUNCTIONS

    for calls in facts.calls.values():
        for call, owner, cls in calls:
            if owner is not function:
                continue
            if facts.imports.resolve(call.func) in CLIP_FUNCTIONS:
                return True
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _IN_PLACE:
                receiver = dotted(func.value) or ""
                if receiver.endswith(".grad") or receiver.endswith(".grad.data"):
                    return True
            if depth < 2:
                written = dotted(func) or ""
                local = None
                if written.startswith("self.") and cls is not None:
                    local = facts.methods.get(cls, {}).get(written[5:])
                elif "." not in written:
                    local = facts.functions.get(written)
                if local is not None and local is not function and changes_gradients(flow, facts, local, depth + 1):
                    return True
    return False


def method_changes_gradients(flow, call: cst.Call, site) -> bool:
    """``net.tidy_gradients(...)``: a method of the project class ``net`` is, that changes gradients."""
    func = call.func
    if not isinstance(func, cst.Attribute):
        return False
    for value in flow.values(func.value, site, models=True):
        if value.kind != INSTANCE:
            continue
        facts = flow.file(value.path)
        method = facts.methods.get(value.node, {}).get(func.attr.value) if facts is not None else None
        if method is not None and changes_gradients(flow, facts, method):
            return True
    return False
