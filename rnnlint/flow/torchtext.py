"""Legacy torchtext pipelines: what ``batch.<field>`` holds when the batch comes from a torchtext iterator.

Before torchtext 0.12 a text pipeline was declared, not written: ``TEXT =
Field(include_lengths=True)``, ``TabularDataset(..., fields=[("text", TEXT),
...])``, ``BucketIterator(train, device=device)``; the loop then reads
``text, lengths = batch.text``. No ``pad_sequence`` and no ``.to(device)``
appears in the project, yet the text is padded and the lengths are on the
GPU. This module follows such a pipeline back from ``batch.text`` through
the value-flow model (:mod:`rnnlint.flow.resolve`: the iterator may be built
in a helper of another file, the dataset and the fields at module level), and
says what the attribute is (:class:`FieldBatch`). Which classes are fields,
datasets and iterators, and which keywords matter, is data in
:mod:`rnnlint.flow.library`. Anything the model cannot resolve (a field built
by a function of another library, a flag that is not a constant) stays
unknown: no attribute is reported for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from rnnlint.flow import library
from rnnlint.flow.scopes import Site
from rnnlint.flow.values import CONST, LIBRARY, SEQUENCE, Value
from rnnlint.names import dotted
from rnnlint.nodes import find_all, keyword_arg


@dataclass(frozen=True)
class FieldBatch:
    """``batch.<name>`` of a legacy torchtext iterator: padded ids, or ``(padded ids, lengths)``."""

    name: str
    field: cst.Call  # the ``Field(...)`` call
    field_path: Path
    padded: bool  # a sequential field: padded to the longest example of the batch
    lengths: bool  # ``include_lengths=True``: the attribute is ``(padded ids, lengths)``
    iterator: cst.Call  # the iterator call, whose ``device`` both live on
    iterator_path: Path
    device: cst.BaseExpression | None  # its ``device=`` argument (None: the host)
    device_site: Site


def uses_torchtext(flow, path: Path) -> bool:
    """Can a torchtext iterator reach the code of ``path``? Only when a file that imports torchtext is linked
    to it by imports, either way (a value crosses files through an import: the caller's or the callee's).
    Asked of every loop over something unknown: the common answer, no, costs one lookup."""
    importing = flow.importing("torchtext")
    return bool(importing) and not importing.isdisjoint(flow.linked(path))


def loop_fields(flow, loop: cst.For, site: Site) -> tuple[str | None, dict[str, FieldBatch]]:
    """For ``for batch in iterator:`` (also through ``enumerate``, ``iter``, ``tqdm``), the name bound to
    each batch and what its attributes hold; ``(None, {})`` when the iterable is no torchtext iterator."""
    memo = flow.scratch.setdefault("torchtext.loops", {})
    known = memo.get(id(loop))
    if known is not None and known[0] is loop:
        return known[1]
    found: tuple[str | None, dict[str, FieldBatch]] = (None, {})
    iterable, target = _iterated(loop)
    if isinstance(target, cst.Name) and uses_torchtext(flow, site.file.path):
        fields: dict[str, FieldBatch] = {}
        for value in flow.values(iterable, site, models=True):
            if value.kind == LIBRARY and value.call is not None and _base(value.value) in library.TORCHTEXT_ITERATORS:
                for name, batch in _iterator_fields(flow, value).items():
                    fields.setdefault(name, batch)
        if fields:
            found = (target.value, fields)
    memo[id(loop)] = (loop, found)
    return found


def field_at(flow, expr: cst.BaseExpression, site: Site) -> FieldBatch | None:
    """What ``batch.text`` is, when ``batch`` is bound by a loop over a torchtext iterator in the same
    function."""
    if not (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)):
        return None
    scope = site.function if site.function is not None else site.file.module
    for loop in find_all(scope, cst.For):
        name, fields = loop_fields(flow, loop, site)
        if name == expr.value.value and expr.attr.value in fields:
            return fields[expr.attr.value]
    return None


def _iterated(loop: cst.For) -> tuple[cst.BaseExpression, cst.BaseExpression]:
    iterable, target = loop.iter, loop.target
    for _ in range(3):
        if not (isinstance(iterable, cst.Call) and iterable.args):
            break
        name = dotted(iterable.func)
        if name in library.ITERATION_WRAPPERS:
            iterable = iterable.args[0].value
        elif name == "enumerate" and isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
            iterable, target = iterable.args[0].value, target.elements[1].value
        else:
            break
    return iterable, target


def _base(qualname: str) -> str:
    """``X.splits`` builds what ``X`` does, once per split."""
    return qualname[: -len(".splits")] if qualname in library.LIBRARY_SPLITS else qualname


def _argument(call: cst.Call, keyword: str, position: int | None) -> cst.BaseExpression | None:
    arg = keyword_arg(call, keyword)
    if arg is not None:
        return arg.value
    positional = [a for a in call.args if a.keyword is None]
    if position is None or position >= len(positional) or any(a.star for a in positional[: position + 1]):
        return None
    return positional[position].value


def _iterator_fields(flow, iterator: Value) -> dict[str, FieldBatch]:
    call, site = iterator.call, iterator.call_site
    splits = iterator.value in library.LIBRARY_SPLITS
    keyword, position = library.TORCHTEXT_SPLITS_DATASETS if splits else library.TORCHTEXT_ITERATOR_DATASET
    device = keyword_arg(call, library.TORCHTEXT_DEVICE)
    out: dict[str, FieldBatch] = {}
    for dataset in _elements(flow, _argument(call, keyword, position), site):
        if dataset.kind != LIBRARY or dataset.call is None:
            continue
        for name, field in _dataset_fields(flow, dataset).items():
            kind = _field_kind(flow, field)
            if kind is not None and name not in out:
                padded, lengths = kind
                out[name] = FieldBatch(name, field.call, field.call_path, padded, lengths, call, iterator.call_path,
                                       device.value if device is not None else None, site)
    return out


def _elements(flow, expr: cst.BaseExpression | None, site: Site) -> list[Value]:
    """The values of ``expr``, a tuple or list literal standing for each of its elements."""
    out: list[Value] = []
    for value in flow.values(expr, site, models=True):
        if value.kind == SEQUENCE and value.path is not None:
            inner = flow.file(value.path)
            if inner is not None:
                for element in value.node.elements:
                    out.extend(flow.values(element.value, inner.site_of(value.node), models=True))
        else:
            out.append(value)
    return out


def _dataset_fields(flow, dataset: Value) -> dict[str, Value]:
    """Attribute name -> the field value, for a dataset call the library table describes."""
    call, site = dataset.call, dataset.call_site
    out: dict[str, Value] = {}
    named = library.TORCHTEXT_NAMED_DATASETS.get(dataset.value)
    if named is not None:
        seen: dict[tuple, int] = {}
        for name, (keyword, position) in named:
            index = seen[(keyword, position)] = seen.get((keyword, position), -1) + 1
            expr = _argument(call, keyword, position)
            values = _elements(flow, expr, site) if keyword == "fields" else flow.values(expr, site, models=True)
            if keyword == "fields":
                values = values[index:index + 1] if len(values) == len(named) else []
            if len(values) == 1:
                out[name] = values[0]
        return out
    base = _base(dataset.value)
    if base not in library.TORCHTEXT_DATASETS:
        return out
    position = None if dataset.value in library.LIBRARY_SPLITS else library.TORCHTEXT_DATASETS[base]
    for pair in flow.values(_argument(call, "fields", position), site, models=True):
        if pair.kind != SEQUENCE or pair.path is None:
            continue
        inner = flow.file(pair.path)
        for element in pair.node.elements if inner is not None else ():
            if not isinstance(element.value, (cst.Tuple, cst.List)) or len(element.value.elements) != 2:
                continue
            key, field = (e.value for e in element.value.elements)
            where = inner.site_of(pair.node)
            names = {v.value for v in flow.values(key, where) if v.kind == CONST and isinstance(v.value, str)}
            fields = [v for v in flow.values(field, where, models=True) if v.kind == LIBRARY]
            if len(names) == 1 and len(fields) == 1:
                out.setdefault(names.pop(), fields[0])
    return out


def _field_kind(flow, field: Value) -> tuple[bool, bool] | None:
    """``(padded, with lengths)`` of a Field call, or None when a flag is not a known constant."""
    if field.kind != LIBRARY or field.value not in library.TORCHTEXT_FIELDS or field.call is None:
        return None
    sequential = _flag(flow, field, library.TORCHTEXT_SEQUENTIAL, library.TORCHTEXT_FIELDS[field.value])
    lengths = _flag(flow, field, library.TORCHTEXT_INCLUDE_LENGTHS, False)
    if sequential is None or lengths is None:
        return None
    return sequential, sequential and lengths


def _flag(flow, field: Value, keyword: str, default: bool) -> bool | None:
    arg = keyword_arg(field.call, keyword)
    if arg is None:
        return None if any(a.star == "**" for a in field.call.args) else default
    found = {v.value for v in flow.values(arg.value, field.call_site) if v.kind == CONST}
    if len(found) == 1 and isinstance(next(iter(found)), bool):
        return found.pop()
    return None
