"""A model's constructor arguments as the project passes them (static: the flow model answers, nothing runs).

A training script rarely builds its model from literals:
``Model(args.vocab, args.hidden, num_layers=args.layers)`` takes argparse
defaults, a config dict, constants of another module. The project's value flow
(:mod:`rnnlint.flow`) follows each argument of every call of the class's
constructor, in any file of the project, to where it is written. An argument is
used only when it resolves to exactly one literal (or to one submodule built by
a call whose own arguments resolve, which the child builds first); anything else stays unknown
(the child then uses the parameter's default or a placeholder size, and says so)
and the reason is kept for the note. Of several call sites, the one with the
fewest unknown arguments wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst

from rnnlint.flow.models import is_recurrent
from rnnlint.flow.values import CONST, DATA, DICT, INSTANCE, LIBRARY, SEQUENCE, Value
from rnnlint.names import dotted
from rnnlint.static.projectmap import module_name

UNKNOWN = {"$unknown": True}  # an argument without one literal value (the child may use a placeholder)
BUILD = "$build"  # {"$build": {module, qualname, args, kwargs}}: a module the child builds and passes
_LITERAL = (int, float, str, bool, type(None))


@dataclass
class CallSite:
    """One call of a model's constructor, its arguments resolved as far as they go."""

    where: str  # "train.py:42"
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)  # parameter -> why it has no value

    def explained(self) -> str:
        """``the call at train.py:42, where vocab_size: len(chars) cannot be followed statically``, for notes."""
        if not self.unknown:
            return f"the call at {self.where}"
        reasons = "; ".join(f"{name}: {why}" for name, why in self.unknown.items())
        return f"the call at {self.where}, where {reasons}"


def call_sites(flow, path: Path, class_name: str, notebooks: dict | None = None) -> list[CallSite]:
    """Every call of ``class_name`` (defined in ``path``) in the project, best resolved first.

    ``notebooks``: the checked notebooks by path (their calls are located by cell); a class
    defined in one is built as its own cells build it (the flow model searches ``.py`` files).
    """
    facts = flow.file(path)
    cls = facts.classes.get(class_name) if facts is not None else None
    init = facts.methods.get(cls, {}).get("__init__") if cls is not None else None
    if init is None:  # the constructor of a base: its defaults are all there is to use
        return []
    names = _parameters(init)
    calls = flow.callers(init, facts)
    if not any(site.file is facts for _, site in calls):
        calls += [(call, facts.site(function)) for call, function, _ in facts.calls.get(class_name, [])
                  if dotted(call.func) == class_name]
    found = [_resolved(flow, call, site, names, notebooks or {}) for call, site in calls]
    return sorted(found, key=lambda c: len(c.unknown))


def receives_recurrent(flow, path: Path, class_name: str) -> bool:
    """Is the class given a recurrent module by a call of it (``Translator(encoder, decoder)``)?

    Such a class is a recurrent model although its body builds no recurrent layer:
    the flow model answers for each argument of each call in the project.
    """
    facts = flow.file(path)
    cls = facts.classes.get(class_name) if facts is not None else None
    init = facts.methods.get(cls, {}).get("__init__") if cls is not None else None
    if init is None or not _parameters(init):
        return False
    return any(is_recurrent(flow, value) for call, site in flow.callers(init, facts)
               for arg in call.args for value in flow.values(arg.value, site, models=True))


def built_classes(value: Any) -> list[tuple[str, str]]:
    """``(module, qualname)`` of every submodule the arguments ``value`` have the child build."""
    if isinstance(value, dict) and set(value) == {BUILD}:
        inner = value[BUILD]
        return [(inner["module"], inner["qualname"]), *built_classes(inner["args"]), *built_classes(inner["kwargs"])]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [found for item in items for found in built_classes(item)]


def _parameters(init: cst.FunctionDef) -> list[str]:
    return [p.name.value for p in (*init.params.posonly_params, *init.params.params)][1:]  # without self


def _resolved(flow, call: cst.Call, site, names: list[str], notebooks: dict, depth: int = 0) -> CallSite:
    path = site.file.path
    line = flow.line(path, call)
    if line and path in notebooks:
        cell, cell_line = notebooks[path].locate(line)
        where = f"{flow.display(path)}:cell {cell}:{cell_line}"
    else:
        where = f"{flow.display(path)}:{line}" if line else flow.display(path)
    result = CallSite(where)
    positions_known = True
    for position, arg in enumerate(call.args):
        if arg.star:
            result.unknown[arg.star + _code(site, arg.value)] = "a splat rnnlint does not unpack"
            positions_known = positions_known and arg.star == "**"
            continue
        if arg.keyword is None and not positions_known:
            continue  # after *args, a positional argument's parameter is unknown
        name = arg.keyword.value if arg.keyword is not None else (
            names[position] if position < len(names) else f"argument {position + 1}")
        value, why = literal(flow, arg.value, site, depth)
        if why:
            result.unknown[name] = f"{_code(site, arg.value)} {why}"
        if arg.keyword is not None:
            result.kwargs[name] = UNKNOWN if why else value
        else:
            result.args.append(UNKNOWN if why else value)
    return result


def literal(flow, expr: cst.BaseExpression, site, depth: int = 0) -> tuple[Any, str]:
    """``(value, "")`` when ``expr`` always has one literal value (JSON-able), else ``(None, why not)``."""
    if depth > 4:
        return None, "is nested too deeply"
    found = flow.values(expr, site)
    if not found:
        return None, "cannot be followed statically"
    options: dict[str, Any] = {}
    for value in found:
        got, why = _one(flow, value, depth)
        if why:
            return None, why
        options.setdefault(repr(got), got)
    if len(options) > 1:
        shown = ", ".join(list(options)[:3])
        return None, f"has several values ({shown})"
    return next(iter(options.values())), ""


def _one(flow, value: Value, depth: int) -> tuple[Any, str]:
    """One possible value as a literal: constants, JSON data, tuple, list and dict literals of literals, and
    submodules built by a call whose arguments resolve (see :func:`_built`)."""
    if value.kind in (CONST, DATA) and _jsonable(value.value):
        return value.value, ""
    facts = flow.file(value.path) if value.path is not None else None
    node = value.node
    if facts is not None and value.kind == SEQUENCE and isinstance(node, (cst.Tuple, cst.List)):
        pairs = [(None, e.value if isinstance(e, cst.Element) else None) for e in node.elements]
    elif facts is not None and value.kind == DICT and isinstance(node, cst.Dict):  # a config dict: {"hidden": 256}
        pairs = [(e.key, e.value) if isinstance(e, cst.DictElement) else (None, None) for e in node.elements]
    elif facts is not None and value.kind == DICT and isinstance(node, cst.Call) and dotted(node.func) == "dict":
        pairs = [(arg.keyword, arg.value if arg.keyword is not None else None) for arg in node.args]
    elif value.kind in (INSTANCE, LIBRARY) and value.call is not None and value.call_site is not None:
        return _built(flow, value, depth)
    else:
        return None, "is not a literal (an object, or a value computed at run time)"
    site = facts.site_of(node)
    items, keys = [], []
    for key, element in pairs:
        if element is None:
            return None, "holds a splat rnnlint does not unpack"
        item, why = literal(flow, element, site, depth + 1)
        if not why and key is not None:
            found, why = (key.value, "") if isinstance(key, cst.Name) else literal(flow, key, site, depth + 1)
            keys.append(found)
            why = why or ("" if isinstance(found, str) else "has a key that is not a string")
        if why:
            return None, why
        items.append(item)
    return (dict(zip(keys, items)) if value.kind == DICT else items), ""


def _built(flow, value: Value, depth: int) -> tuple[Any, str]:
    """A submodule handed to the constructor (``Seq2Seq(Encoder(...), Decoder(...))``, ``Tagger(nn.LSTM(8, 16))``):
    the child builds it first, from its own call's arguments, resolved the same way."""
    if depth > 3:
        return None, "is nested too deeply"
    if value.kind == LIBRARY:
        if not str(value.value).startswith("torch.nn."):
            return None, f"is a {value.value} object, which rnnlint does not build"
        module, _, name = str(value.value).rpartition(".")
        names: list[str] = []
    else:
        facts = flow.file(value.path)
        init = facts.methods.get(value.node, {}).get("__init__") if facts is not None else None
        named = module_name(value.path) if value.path.suffix == ".py" else None
        if named is None:
            return None, f"is a {value.value} object, which rnnlint cannot import"
        module, name, names = named[0], value.value, _parameters(init) if init is not None else []
    inner = _resolved(flow, value.call, value.call_site, names, {}, depth + 1)
    if inner.unknown:
        return None, f"is built by a call whose arguments are not all known ({inner.explained()})"
    return {BUILD: {"module": module, "qualname": name, "args": inner.args, "kwargs": inner.kwargs}}, ""


def _jsonable(value: Any) -> bool:
    if isinstance(value, list):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return isinstance(value, _LITERAL)


def _code(site, node: cst.CSTNode) -> str:
    text = site.file.module.code_for_node(node)
    return text if len(text) <= 40 else text[:39] + "…"
