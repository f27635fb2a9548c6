"""Following padded batches from where they are made to where they are used.

Padding-related rules (RNN010 and the ones after it) ask "does a padded
tensor reach this call?". :class:`Flow` answers it for one function body (or a
module's top-level code): it walks the statements in source order, keeps an
environment from names (``x``, ``self.lstm``) to abstract :data:`Value` s, and
records every call that hands a known value to a module, a model or a
function (:class:`KnownCall`). Rules decide which uses are findings.

What is tracked, and nothing more (anything else is "unknown", never a
finding):

* padded tensors (:class:`Padded`): ``pad_sequence(...)``, element 0 of
  ``pad_packed_sequence(...)``, ``Embedding(padding_idx=...)`` outputs, values a
  project function returns padded or hands back (see :func:`returned`), items of a
  ``DataLoader`` whose ``collate_fn`` or ``Dataset.__getitem__`` pads, rows padded
  by hand and buffers filled per example; kept through ``.to()``/``.cuda()``/
  ``.transpose()``-like methods, slicing, and non-recurrent torch layers
  (embedding, dropout, linear, norms); packing ends it;
* tuples of those (:class:`Items`), dicts of them (:class:`Fields`), loaders
  (:class:`Loader`), torch modules built in the code (:class:`Module`) and
  instances of project classes (:class:`Instance`).

A top-level function also runs with what other files' calls of it hand it
(:func:`file_runs`), so a training loop whose loader and model come from
``main.py`` is followed.

The same walk summarises a file for the project index (:func:`summarise`, which
the flow package hands the index: :data:`rnnlint.flow.SUMMARISERS`), so that a
training script knows whether a model defined in another file packs its input.
The index stores those facts; this module asks it for them, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import libcst as cst

from rnnlint.flow import library, torchtext
from rnnlint.flow.resolve import flow_of, site_of
from rnnlint.flow.values import INSTANCE, LIBRARY
from rnnlint.names import ImportMap, ImportMapView, dotted
from rnnlint.nodes import Visitor, body_of, children, find_all, keyword_arg, param_names
from rnnlint.rule import FileContext

RNN_UTILS = "torch.nn.utils.rnn."
PAD_SEQUENCE = RNN_UTILS + "pad_sequence"
PAD_PACKED = RNN_UTILS + "pad_packed_sequence"
PACK_PADDED = RNN_UTILS + "pack_padded_sequence"
PACK_FUNCTIONS = frozenset({PACK_PADDED, RNN_UTILS + "pack_sequence"})
#: recurrent modules that run over a whole sequence (cells take one step and cannot be packed)
SEQUENCE_RNNS = frozenset({"torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU"})
EMBEDDINGS = frozenset({"torch.nn.Embedding"})
#: torch layers whose output is still padded where their input was
TRANSPARENT_LAYERS = frozenset(
    f"torch.nn.{name}"
    for name in ("Embedding", "Dropout", "Dropout1d", "Linear", "LayerNorm", "Identity", "ReLU", "GELU",
                 "Tanh", "Sigmoid", "ELU", "LeakyReLU")
)
TRANSPARENT_FUNCTIONS = frozenset(
    f"torch.nn.functional.{name}" for name in ("dropout", "relu", "gelu", "elu", "leaky_relu", "embedding")
) | frozenset({"torch.tanh", "torch.relu", "torch.sigmoid", "torch.flip"})
#: tensor (and module) methods whose result is still what the receiver was
KEEP_METHODS = frozenset(
    {"to", "cuda", "cpu", "float", "long", "int", "half", "double", "bfloat16", "transpose", "permute",
     "contiguous", "detach", "clone", "type", "t", "train", "eval", "flip"}
)
#: calls that turn a padded array into a tensor (or back) without changing its rows
CONVERSIONS = frozenset({"torch.tensor", "torch.Tensor", "torch.LongTensor", "torch.FloatTensor", "torch.as_tensor",
                         "torch.from_numpy", "numpy.array", "numpy.asarray", "torch.autograd.Variable",
                         "torch.cuda.LongTensor", "torch.cuda.FloatTensor"})
#: calls that stack a list of padded rows into one batch
STACKS = frozenset({"numpy.stack", "torch.stack", "numpy.vstack", "numpy.array", "numpy.asarray"})
#: calls that join a row and its padding into one padded row
CONCATENATIONS = frozenset({"torch.cat", "torch.concat", "numpy.concatenate", "numpy.hstack", "numpy.append"})
#: datasets that hand out rows of the arrays they are given, unchanged
DATASETS = frozenset({"torch.utils.data.TensorDataset"})
#: buffers made to be filled per example
BUFFERS = frozenset({"numpy.zeros", "numpy.ones", "numpy.full", "numpy.empty", "torch.zeros", "torch.ones",
                     "torch.full", "torch.empty"})
LOADER_WRAPPERS = library.ITERATION_WRAPPERS
#: names a variable holding sequence lengths usually has
LENGTH_WORDS = ("lengths", "lens", "length", "len")


@dataclass(frozen=True)
class Padded:
    origin: str  # for messages: "pad_sequence(...) output"; "@0" marks a parameter in summaries
    #: the pad as written where padding was done by hand (``0`` of ``[0] * (n - len(x))``); "" when the
    #: value cannot be written (a string pad mapped to ids later); None where the padding is a library's
    by_hand: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PaddedRows(Padded):
    """A list whose rows were padded one by one (``rows[i] = rows[i] + [pad] * ...``): a row is padded too."""


@dataclass(frozen=True)
class Items:
    """A tuple of values, by position (``None`` where unknown)."""

    items: tuple


@dataclass(frozen=True)
class Fields:
    """A dict of values by string key (``{"src": padded, "lengths": ...}``): a dict batch, a dataset item."""

    items: tuple  # ((key, value), ...), only the known values

    def get(self, key: str) -> "Value":
        return next((v for k, v in self.items if k == key), None)


@dataclass(frozen=True)
class Loader:
    """Something iterated over: each item is ``item``."""

    item: "Value"


@dataclass(frozen=True)
class Module:
    """A torch module built in the code: ``nn.LSTM(...)``, ``nn.Embedding(..., padding_idx=0)``."""

    qualname: str
    batch_first: str | None = "False"  # literal text, None when not a literal
    padding_idx: bool = False
    bidirectional: bool | None = False  # None when not a literal

    @property
    def short(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def is_sequence_rnn(self) -> bool:
        return self.qualname in SEQUENCE_RNNS


@dataclass(frozen=True)
class Instance:
    """An instance of a project class (or of a name the flow cannot see into), as written."""

    name: str
    #: ``(file, definition name)`` when the instance was made in another file, where ``name`` was written
    home: tuple | None = field(default=None, compare=False)


def locate(index, importer, instance: Instance) -> tuple | None:
    """Where the class of ``instance`` (seen in ``importer``) is defined: ``(file, name)`` or None."""
    return instance.home or index.lookup(importer, instance.name)


@dataclass(frozen=True)
class Closure:
    """A function another function makes and returns (``collate = make_collate(pad_id)``)."""

    name: str  # as the maker names it
    function: cst.FunctionDef = field(compare=False, repr=False)
    file: object = None  # the Path of the file that defines it


Value = Union[Padded, Items, Fields, Loader, Module, Instance, Closure, None]


@dataclass
class KnownCall:
    """A call that receives at least one known value."""

    call: cst.Call
    callee: Value | str  # a Module/Instance, "self" for ``self(x)``, or a function name as written
    args: list[tuple[int | str, Value, cst.Arg]]  # (position or keyword, value, argument)
    statement: cst.CSTNode | None  # the SimpleStatementLine it stands in
    names: dict[str, cst.BaseExpression | None]  # names bound before it: value (a parameter: its default)
    body: cst.CSTNode | None = None  # the function (or module) the call is in
    layers: dict[str, Module] = field(default_factory=dict)  # the torch modules bound before it, by name

    def exact_at_real_positions(self) -> bool:
        """A one-way recurrence whose final state is dropped (``out, _ = self.rnn(...)``), read only where
        it is exact. Over right padding its outputs at the real positions never see a later pad step, so
        nothing needs packing when the outputs are

        * a decoder's, started from a given state (``self.decoder(x, state)``): the loss masks the rest;
        * read only at each example's own positions: ``out[torch.arange(b), lengths - 1]``,
          ``out[i, :n]`` (an index or a bound computed per example, never a fixed ``out[:, -1]``);
        * scored step by step: a language model's or a one-way tagger's ``forward`` that turns every
          step's output into that step's scores with layers acting on one step (dropout, ``Linear``)
          and returns them (a loss that scores the pad steps is RNN013's)."""
        if not isinstance(self.callee, Module) or self.callee.bidirectional is not False:
            return False
        statement = self.statement
        if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
                and isinstance(statement.body[0], cst.Assign) and statement.body[0].value is self.call):
            return False
        target = statement.body[0].targets[0].target
        if not (isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2
                and isinstance(target.elements[1].value, cst.Name) and target.elements[1].value.value == "_"):
            return False
        if any(key in (1, "hx") for key, _, _ in self.args):
            return True
        outputs = target.elements[0].value
        return isinstance(outputs, cst.Name) and self.body is not None and (
            _read_per_example(self.body, outputs) or _scored_per_step(self.body, statement, outputs, self.layers))

    def padded_input(self) -> tuple[Padded, cst.Arg] | None:
        """The padded first argument (a recurrent module's input), if any."""
        for key, value, arg in self.args:
            if key == 0 and isinstance(value, Padded):
                return value, arg
        return None


class Resolver:
    """What the flow may ask about names defined elsewhere. The default knows nothing."""

    def call(self, name: str) -> Value:
        """Value of calling ``name`` (a project class -> Instance, a padding function -> Padded)."""
        return None

    def collate(self, name: str) -> Value:
        """The batch a ``collate_fn=name`` produces."""
        return self.call(name)

    def item(self, name: str) -> Value:
        """An item of the project dataset class ``name`` (what its ``__getitem__`` returns)."""
        return None

    def passes(self, name: str) -> dict:
        """Which parameters the function ``name`` hands back: returned position -> ``[index, name]``
        (``encode(rows)`` that maps padded rows to ids returns them still padded)."""
        return {}

    def injected(self, expr: cst.BaseExpression) -> Value:
        """The module a class is handed and keeps (``self.encoder = encoder``): what its callers build."""
        return None

    def closure_returns(self, closure: "Closure") -> Value:
        """What a function made by another function returns when called (a collate closure's batch)."""
        return None

    def batch_attributes(self, loop: cst.For) -> dict[str, Value]:
        """``{"batch.text": value}`` for a loop over batches that a library fills by attribute (a legacy
        torchtext iterator: ``batch.text`` is padded, or ``(padded, lengths)``)."""
        return {}


@dataclass
class Result:
    uses: list[KnownCall] = field(default_factory=list)
    returns: list[Value] = field(default_factory=list)


def _literal(expr: cst.BaseExpression | None) -> str | None:
    if expr is None:
        return "False"
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value
    return None


def module_value(qualname: str, call: cst.Call) -> Module:
    batch_first = keyword_arg(call, "batch_first")
    padding = keyword_arg(call, "padding_idx")
    has_padding = padding is not None and not (isinstance(padding.value, cst.Name) and padding.value.value == "None")
    bidirectional = keyword_arg(call, "bidirectional")
    both = _literal(bidirectional.value if bidirectional else None)
    return Module(qualname, _literal(batch_first.value if batch_first else None), has_padding,
                  None if both is None else both == "True")


class Flow:
    """Abstract interpretation of one body in source order (see the module docstring)."""

    def __init__(self, imports: ImportMap, resolver: Resolver | None = None, extra_rnns: frozenset[str] = frozenset()):
        self.imports = imports
        self.resolver = resolver or Resolver()
        self.rnns = SEQUENCE_RNNS | extra_rnns
        self.env: dict[str, Value] = {}
        self.names: dict[str, cst.BaseExpression | None] = {}
        self.result = Result()
        self._statement: cst.CSTNode | None = None
        self._body: cst.CSTNode | None = None  # the function or module being run
        self.buffers: dict[str, str] = {}  # names bound to np.zeros-like buffers -> their fill value as written
        self.views: dict[str, str] = {}  # loop targets that are views of a buffer -> the buffer
        self.lambdas: dict[str, cst.Lambda] = {}  # names bound to a lambda
        self.own_methods: dict[str, Value] = {}  # what ``self.<method>(...)`` returns, in a class's method

    # -- entry points --------------------------------------------------------

    def run_function(self, function: cst.FunctionDef, env: dict[str, Value] | None = None) -> Result:
        for param in (*function.params.posonly_params, *function.params.params, *function.params.kwonly_params):
            self.names[param.name.value] = param.default  # None: no default, a value like any other
        self.env.update(env or {})
        self._body = function
        self.statements(body_of(function))
        return self.result

    def run_module(self, module: cst.Module) -> Result:
        self._body = module
        self.statements(module.body)
        return self.result

    # -- statements ----------------------------------------------------------

    def statements(self, body) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            return
        if isinstance(stmt, cst.SimpleStatementLine):
            self._statement = stmt
            for small in stmt.body:
                self.small(small)
            return
        if isinstance(stmt, cst.For):
            items = self.value(stmt.iter)
            if isinstance(items, Padded):  # each row of a padded batch is padded too
                self.bind(stmt.target, Padded(items.origin, items.by_hand), None)
            else:
                self.bind(stmt.target, items.item if isinstance(items, Loader) else None, None)
                if items is None:
                    self.env.update(self.resolver.batch_attributes(stmt))
            self._views(stmt.target, stmt.iter)
            self.statements(body_of(stmt))
        elif isinstance(stmt, cst.While):
            self.value(stmt.test)
            self.statements(body_of(stmt))
        elif isinstance(stmt, cst.If):
            self.value(stmt.test)
            self.statements(body_of(stmt))
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self.value(item.item)
            self.statements(body_of(stmt))
        elif isinstance(stmt, cst.Try):
            self.statements(body_of(stmt))
            for handler in stmt.handlers:
                self.statements(body_of(handler))
        else:
            return
        orelse = getattr(stmt, "orelse", None)
        if isinstance(orelse, cst.If):
            self.statement(orelse)
        elif orelse is not None:
            self.statements(body_of(orelse))
        final = getattr(stmt, "finalbody", None)
        if final is not None:
            self.statements(body_of(final))

    def small(self, small: cst.BaseSmallStatement) -> None:
        if isinstance(small, cst.Assign):
            for target in small.targets:
                if isinstance(target.target, cst.Name):
                    if isinstance(small.value, cst.Lambda):
                        self.lambdas[target.target.value] = small.value
                    else:
                        self.lambdas.pop(target.target.value, None)
        if isinstance(small, cst.Assign):
            value = self.value(small.value)
            if _is_buffer(small.value, self.imports):
                value = None
                for target in small.targets:
                    if dotted(target.target):
                        self.buffers[dotted(target.target)] = _buffer_fill(small.value, self.imports)
            for target in small.targets:
                if isinstance(target.target, cst.Subscript):
                    self._fill(target.target, value)
                    continue
                self.bind(target.target, value, small.value)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.bind(small.target, self.value(small.value), small.value)
        elif isinstance(small, cst.AugAssign):
            self.value(small.value)
            self.bind(small.target, None, None)
        elif isinstance(small, cst.Return):
            self.result.returns.append(self.value(small.value) if small.value is not None else None)
        elif isinstance(small, cst.Expr):
            self.value(small.value)
            call = small.value
            if (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute)
                    and call.func.attr.value in ("append", "extend") and call.args):
                # rows padded by hand collected in a list: the list is the padded batch
                owner = dotted(call.func.value)
                if owner and isinstance(self.value(call.args[0].value), Padded):
                    self.env[owner] = self.value(call.args[0].value)

    def _views(self, target: cst.BaseExpression, iterable: cst.BaseExpression) -> None:
        """``for row, token in zip(buffer[:, i], seq)``: ``row`` is a view of the buffer, and ``zip`` stops
        at the example's own length, so what the loop writes through it fills the buffer per example."""
        if not (isinstance(iterable, cst.Call) and dotted(iterable.func) == "zip"
                and isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == len(iterable.args)):
            return
        for element, arg in zip(target.elements, iterable.args):
            if not isinstance(arg.value, cst.Subscript):
                continue  # zip(onehot, labels): the buffer's rows, one label each, not a sequence
            owner, name = dotted(arg.value.value), dotted(element.value)
            if owner in self.buffers and name is not None:
                self.views[name] = owner

    def _fill(self, target: cst.Subscript, value: Value) -> None:
        """``buffer[i, :len(seq)] = seq``: a zero buffer filled per example up to its length is padded."""
        owner = dotted(target.value)
        if owner and isinstance(value, Padded):  # rows[i] = rows[i] + [pad] * (n - len(rows[i]))
            self.env[owner] = PaddedRows(value.origin, value.by_hand)
            return
        if owner in self.views:  # written through a view that zip() stops at the example's length
            buffer = self.views[owner]
            self.env[buffer] = Padded(f"{buffer}, a buffer filled per example up to its length",
                                      self.buffers[buffer])
            return
        if owner in self.buffers and any(
            isinstance(e.slice, cst.Slice) and _varies(e.slice) for e in target.slice
        ):
            self.env[owner] = Padded(f"{owner}, a buffer filled per example up to its length",
                                     self.buffers[owner])

    def bind(self, target: cst.BaseExpression, value: Value, expr: cst.BaseExpression | None) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = target.elements
            starred = any(isinstance(e, cst.StarredElement) for e in elements)
            parts = expr.elements if isinstance(expr, (cst.Tuple, cst.List)) and len(expr.elements) == len(elements) else None
            for position, element in enumerate(elements):
                item = value.items[position] if isinstance(value, Items) and position < len(value.items) else None
                part = parts[position].value if parts is not None else None
                self.bind(element.value, None if starred else item, part)
            return
        name = dotted(target)
        if name is None:
            return
        self.names[name] = expr
        if value is None:
            self.env.pop(name, None)
        else:
            self.env[name] = value

    # -- expressions ---------------------------------------------------------

    def value(self, expr: cst.BaseExpression | None) -> Value:
        if expr is None:
            return None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            name = dotted(expr)
            if name is not None:
                return now(self.env.get(name))
            self.value(expr.value)  # type: ignore[union-attr]
            return None
        if isinstance(expr, cst.Call):
            return self.call(expr)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            if _pads_by_hand(expr):
                return Padded(f"padded by hand ({_short(expr)})", _pad_written(expr))
            left, right = self.value(expr.left), self.value(expr.right)
            joined = left if isinstance(left, Padded) else right  # 'S' + padded, padded + 'E': still padded
            return joined if isinstance(joined, Padded) else None
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
            element = self.value(expr.elt)
            if isinstance(element, Padded):
                return element
            # a map over one padded row (``[vocab[t] for t in padded_row]``) is still padded
            source = self.value(expr.for_in.iter) if expr.for_in.inner_for_in is None else None
            return source if isinstance(source, Padded) else None
        if isinstance(expr, cst.Subscript):
            base = self.value(expr.value)
            for element in expr.slice:
                if isinstance(element.slice, cst.Index):
                    index = self.value(element.slice.value)
                    if isinstance(index, Padded) and base is None:
                        return index  # np.eye(n)[padded ids]: one-hot rows of a padded batch
            if isinstance(base, PaddedRows):
                return Padded(base.origin, base.by_hand)
            if isinstance(base, Padded):  # x[:, :-1] is still padded; x[:, t] and x[:, t:t + 1] are one time step
                return base if all(isinstance(e.slice, cst.Slice) and not _one_step(e.slice)
                                   for e in expr.slice) else None
            if isinstance(base, Fields) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) \
                    and isinstance(expr.slice[0].slice.value, cst.SimpleString):
                return base.get(expr.slice[0].slice.value.evaluated_value)  # batch["src"]
            if isinstance(base, Items) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
                index = _int(expr.slice[0].slice.value)
                if index is not None and -len(base.items) <= index < len(base.items):
                    return base.items[index]
            return None
        if isinstance(expr, cst.IfExp):  # row[:n] if len(row) > n else row + [pad] * (n - len(row))
            self.value(expr.test)
            body, orelse = self.value(expr.body), self.value(expr.orelse)
            return body if isinstance(body, Padded) else orelse if isinstance(orelse, Padded) else None
        if isinstance(expr, cst.Dict):
            fields = []
            for element in expr.elements:
                value = self.value(element.value)
                key = getattr(element, "key", None)
                if value is not None and isinstance(key, cst.SimpleString):
                    fields.append((key.evaluated_value, value))
            return Fields(tuple(fields)) if fields else None
        if isinstance(expr, (cst.Tuple, cst.List)):
            values = tuple(self.value(e.value) for e in expr.elements)
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return None
            return Items(values) if any(v is not None for v in values) else None
        if isinstance(expr, cst.Lambda):
            return None
        for child in children(expr):  # anything else: still see the calls inside
            if isinstance(child, cst.BaseExpression):
                self.value(child)
        return None

    def call(self, call: cst.Call) -> Value:
        func = call.func
        args = [(self._key(call, arg), self.value(arg.value), arg) for arg in call.args]
        first = next((v for k, v, _ in args if k == 0), None)
        name = dotted(func)
        qualname = self.imports.resolve_dotted(name) if name else None
        if qualname == PAD_SEQUENCE:
            return Padded("pad_sequence(...) output")
        if qualname == PAD_PACKED:
            return Items((Padded("pad_packed_sequence(...) output"), None))
        if qualname in PACK_FUNCTIONS:
            return None
        if isinstance(func, cst.Attribute) and func.attr.value in KEEP_METHODS:
            receiver = self.value(func.value)
            if isinstance(receiver, (Padded, Instance, Module)):
                return receiver
        callee = now(self.env.get(name)) if name else None
        if callee is None and name == "self":
            callee = "self"
        if isinstance(callee, Module):
            if callee.qualname in self.rnns:
                self._use(call, callee, args)
                return None
            if callee.padding_idx:
                return first if isinstance(first, Padded) else Padded(f"{callee.short}(padding_idx=...) output")
            if callee.qualname in TRANSPARENT_LAYERS:
                return first if isinstance(first, Padded) else None
            return None
        if isinstance(callee, Instance) or callee == "self":
            self._use(call, callee, args)
            if isinstance(callee, Instance) and any(isinstance(v, Padded) for _, v, _ in args):
                return _passed(self.resolver.passes(callee.name), args)  # an embedding layer of the project
            return None
        if name is None:
            self.value(func)
            return None
        if qualname in TRANSPARENT_FUNCTIONS:
            return first if isinstance(first, Padded) else None
        if qualname in CONCATENATIONS:
            parts = call.args[0].value if call.args else None
            if isinstance(parts, (cst.Tuple, cst.List)):
                for element in parts.elements:
                    tail = _pad_tail(element.value)
                    if tail is not None:  # cat((row, tensor([pad] * (n - len(row)))))
                        return Padded(f"padded by hand ({_short(tail)})", _pad_of_tail(tail))
        if qualname in CONVERSIONS or qualname in STACKS:
            if qualname in STACKS and isinstance(first, Items):
                return next((v for v in first.items if isinstance(v, Padded)), None)
            return first if isinstance(first, Padded) else None
        if qualname in DATASETS:
            values = tuple(v for k, v, _ in args if isinstance(k, int))
            if len(args) == 1 and args[0][0] == "*" and isinstance(args[0][1], Items):  # TensorDataset(*tensors)
                values = args[0][1].items
            return Items(values) if any(isinstance(v, Padded) for v in values) else None
        if qualname is not None and qualname.startswith("torch."):
            if qualname in self.rnns or qualname in TRANSPARENT_LAYERS or qualname in EMBEDDINGS:
                return module_value(qualname, call)
            if qualname.rsplit(".", 1)[-1] == "DataLoader":
                return self._loader(call)
            return None
        if name in ("enumerate",) and isinstance(first, Loader):
            return Loader(Items((None, first.item)))
        if name in LOADER_WRAPPERS and isinstance(first, Loader):
            return first
        if name == "next" and isinstance(first, Loader):
            return first.item
        if name.rsplit(".", 1)[-1] == "DataLoader":  # lightning / accelerate re-exports
            return self._loader(call)
        if name.startswith("self.") and name[5:] in self.own_methods:
            return self.own_methods[name[5:]]
        if name.startswith("self.") or name.split(".")[0] in _BUILTINS:
            return None
        if "." in name and name.split(".")[0] in self.names:  # a method of a local value
            return None
        if any(v is not None for _, v, _ in args):
            self._use(call, name, args)
        if name in self.lambdas:  # pad = lambda row, n: row + [0] * (n - len(row))
            body = self.lambdas.pop(name)  # a recursive lambda is evaluated once
            try:
                return self.value(body.body)
            finally:
                self.lambdas[name] = body
        result = self.resolver.call(name)
        if result is None and any(isinstance(v, Padded) for _, v, _ in args):
            result = _passed(self.resolver.passes(name), args)
        return result

    def _loader(self, call: cst.Call) -> Value:
        arg = keyword_arg(call, "collate_fn")
        if arg is None:
            # no collate_fn: each batch stacks rows of the dataset as they are (padded rows stay padded)
            dataset = keyword_arg(call, "dataset") or next((a for a in call.args if a.keyword is None), None)
            data = self.value(dataset.value) if dataset is not None else None
            if isinstance(data, Instance):  # a Dataset class of the project: its items are what __getitem__ returns
                data = self.resolver.item(data.name)
            return Loader(data) if isinstance(data, (Padded, Items, Fields)) else None
        collate = arg.value
        if isinstance(collate, cst.Lambda) and isinstance(collate.body, cst.Call):
            collate = collate.body.func
        elif isinstance(collate, cst.Call) and dotted(collate.func) in ("partial", "functools.partial") and collate.args:
            collate = collate.args[0].value
        made = self.value(collate) if isinstance(collate, (cst.Name, cst.Call)) else None
        name = made.name if isinstance(made, Closure) else dotted(collate)
        if name is None:
            return None
        batch = self.resolver.closure_returns(made) if isinstance(made, Closure) else self.resolver.collate(name)
        origin = f"batches padded by collate_fn {name}"
        if isinstance(batch, Padded):  # replace(): keeps what a subclass of Padded adds (a pad value)
            batch = replace(batch, origin=origin)
        elif isinstance(batch, Items):
            batch = Items(tuple(replace(v, origin=origin) if isinstance(v, Padded) else v for v in batch.items))
        return Loader(batch) if batch is not None else None

    def _use(self, call: cst.Call, callee, args) -> None:
        layers = {name: value for name, value in self.env.items() if isinstance(value, Module)}
        self.result.uses.append(KnownCall(call, callee, args, self._statement, dict(self.names), self._body, layers))

    @staticmethod
    def _key(call: cst.Call, arg: cst.Arg) -> int | str:
        if arg.keyword is not None:
            return arg.keyword.value
        if arg.star:
            return "*"
        return [a for a in call.args if a.keyword is None].index(arg)


_BUILTINS = frozenset({"len", "print", "range", "zip", "list", "dict", "tuple", "sorted", "max", "min", "sum",
                       "isinstance", "getattr", "super", "int", "float", "str", "bool", "torch", "np", "math"})


def _is_buffer(expr: cst.BaseExpression, imports: ImportMap) -> bool:
    """``np.zeros((n, max_len))``, ``np.ones((n, max_len)) * pad``: a buffer of a fixed width."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        return _is_buffer(expr.left, imports) or _is_buffer(expr.right, imports)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "astype":
        return _is_buffer(expr.func.value, imports)
    return isinstance(expr, cst.Call) and imports.resolve(expr.func) in BUFFERS


def _buffer_fill(expr: cst.BaseExpression, imports: ImportMap) -> str:
    """What a buffer holds before it is filled: ``0`` (zeros), ``1`` (ones), ``v`` of ``full(shape, v)`` or ``ones * v``."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        buffer, other = (expr.left, expr.right) if _is_buffer(expr.left, imports) else (expr.right, expr.left)
        return _short(other) if _buffer_fill(buffer, imports) == "1" else ""
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "astype":
        return _buffer_fill(expr.func.value, imports)
    name = imports.resolve(expr.func) if isinstance(expr, cst.Call) else ""
    last = (name or "").rsplit(".", 1)[-1]
    if last == "zeros":
        return "0"
    if last == "ones":
        return "1"
    if last == "full" and isinstance(expr, cst.Call):
        value = keyword_arg(expr, "fill_value") or (expr.args[1] if len(expr.args) > 1 else None)
        return _short(value.value) if value is not None else ""
    return ""


def _pad_tail(expr: cst.BaseExpression) -> cst.BinaryOperation | None:
    """``[pad] * (n - len(row))``, maybe converted (``torch.LongTensor([pad] * (n - len(row)))``)."""
    while isinstance(expr, cst.Call) and len(expr.args) == 1:
        expr = expr.args[0].value
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        operands = (expr.left, expr.right)
        if any(isinstance(o, cst.List) and len(o.elements) == 1 for o in operands) and any(
                isinstance(o, cst.BinaryOperation) and isinstance(o.operator, cst.Subtract) for o in operands):
            return expr
    return None


def _pad_of_tail(tail: cst.BinaryOperation) -> str:
    for operand in (tail.left, tail.right):
        if isinstance(operand, cst.List):
            return _short(operand.elements[0].value)
    return ""


def _pad_written(expr: cst.BinaryOperation) -> str:
    """``0`` of ``row + [0] * (n - len(row))``; "" for a string pad (mapped to an id later) or a complex one."""
    for side in (expr.left, expr.right):
        if isinstance(side, cst.BinaryOperation) and isinstance(side.operator, cst.Multiply):
            for operand in (side.left, side.right):
                if isinstance(operand, cst.List) and len(operand.elements) == 1:
                    return _short(operand.elements[0].value)
    return ""


def _one_step(part: cst.Slice) -> bool:
    """``t:t + 1``: one time step, kept as a dimension."""
    upper, lower = part.upper, part.lower
    return (lower is not None and isinstance(upper, cst.BinaryOperation) and isinstance(upper.operator, cst.Add)
            and isinstance(upper.right, cst.Integer) and upper.right.value == "1"
            and _short(upper.left) == _short(lower))


def _varies(part: cst.Slice) -> bool:
    """A slice bound that is not a literal: ``:len(seq)``, ``-len(row):``, ``:n``."""
    bounds = [b for b in (part.lower, part.upper) if b is not None]
    return any(not isinstance(b, cst.Integer) and not (
        isinstance(b, cst.UnaryOperation) and isinstance(b.expression, cst.Integer)) for b in bounds)


def _pads_by_hand(expr: cst.BinaryOperation) -> bool:
    """``seq + [pad] * (max_len - len(seq))`` or ``word + "P" * (n - len(word))``."""
    for side in (expr.left, expr.right):
        if isinstance(side, cst.BinaryOperation) and isinstance(side.operator, cst.Multiply):
            operands = (side.left, side.right)
            literal = any(isinstance(o, (cst.List, cst.SimpleString)) for o in operands)
            shortfall = any(isinstance(o, cst.BinaryOperation) and isinstance(o.operator, cst.Subtract)
                            for o in operands)
            if literal and shortfall:
                return True
    return False


def _short(expr: cst.CSTNode) -> str:
    text = cst.Module(body=[]).code_for_node(expr)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(expr: cst.BaseExpression) -> int | None:
    if isinstance(expr, cst.Integer):
        return int(expr.evaluated_value)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus) and isinstance(expr.expression, cst.Integer):
        return -int(expr.expression.evaluated_value)
    return None


# -- classes ------------------------------------------------------------------


def methods(cls: cst.ClassDef) -> dict[str, cst.FunctionDef]:
    return {s.name.value: s for s in body_of(cls) if isinstance(s, cst.FunctionDef)}


def submodules(cls: cst.ClassDef, imports: ImportMap, resolver: Resolver) -> dict[str, Value]:
    """``self.<name>`` -> what is assigned to it anywhere in the class (torch modules, project models).

    A part the project must be asked about (``self.encoder = Encoder(...)``: a lookup that may parse
    the file defining it; ``self.encoder = encoder``: the flow model's callers) is a :class:`_Later`,
    asked when a run first reads it (see :func:`now`): most never are by the runs that can report.
    """
    found: dict[str, Value | _Later] = {}
    handed: list[cst.Assign] = []  # ``self.encoder = encoder``: asked of the flow model if it is called
    called: set[str] = set()

    class Finder(Visitor):
        def visit_Call(self, node: cst.Call) -> None:
            written = dotted(node.func)
            if written is not None:
                called.add(written)

        def visit_Assign(self, node: cst.Assign) -> None:
            value = node.value
            while (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                   and value.func.attr.value in KEEP_METHODS and isinstance(value.func.value, cst.Call)):
                value = value.func.value
            if isinstance(value, cst.Name):  # a part handed to the constructor
                handed.append(node)
                return
            if not isinstance(value, cst.Call):
                return
            name = dotted(value.func)
            if name is None:
                return
            qualname = imports.resolve_dotted(name)
            if qualname.startswith("torch."):
                keep(node, module_value(qualname, value))
            else:
                keep(node, lambda name=name: _instance(resolver.call(name)))

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return True

    def keep(node: cst.Assign, result) -> None:
        """The assignment's value for each ``self.<name>`` it writes: the last that resolves wins."""
        for target in node.targets:
            attr = dotted(target.target)
            if attr and attr.startswith("self.") and attr.count(".") == 1:
                if callable(result):
                    earlier = found.get(attr)
                    found[attr] = _Later(result, earlier)
                else:
                    found[attr] = result

    Finder().walk(cls)
    for node in handed:  # only parts the class calls: a size or a rate handed in is no module
        if any(dotted(t.target) in called for t in node.targets):
            keep(node, lambda value=node.value: resolver.injected(value))
    return found


class _Later:
    """A submodule asked of the project when first read: ``ask()``, else what ``earlier`` (an earlier
    assignment of the same attribute) holds, as when every assignment was asked in order."""

    __slots__ = ("ask", "earlier", "known", "value")

    def __init__(self, ask, earlier) -> None:
        self.ask, self.earlier, self.known, self.value = ask, earlier, False, None

    def get(self) -> Value:
        if not self.known:
            self.known = True  # a question that leads back here finds nothing, as before it was answered
            value = self.ask()
            self.value = value if value is not None else now(self.earlier)
        return self.value


def now(value) -> Value:
    """An environment's value as a run reads it: a :class:`_Later` submodule is asked then."""
    return value.get() if type(value) is _Later else value


def _instance(value: Value) -> Value:
    return value if isinstance(value, Instance) else None


def forward_uses(cls: cst.ClassDef, imports: ImportMap, resolver: Resolver,
                  rnns: frozenset[str] = frozenset()) -> list[KnownCall]:
    """The calls of ``cls.forward`` that receive its arguments, each marked ``Padded("@i")``."""
    return _forward_run(cls, imports, resolver, rnns).uses


def _forward_run(cls: cst.ClassDef, imports: ImportMap, resolver: Resolver,
                 rnns: frozenset[str] = frozenset()) -> Result:
    forward = methods(cls)["forward"]
    asks_project = isinstance(resolver, ProjectResolver) and imports is resolver.ctx.imports
    env: dict[str, Value] = dict(class_parts(resolver.ctx, cls, resolver) if asks_project  # type: ignore[attr-defined]
                                 else submodules(cls, imports, resolver))
    env.update({p: Padded(f"@{i}") for i, p in enumerate(forward_params(forward))})
    return Flow(imports, resolver, rnns).run_function(forward, env)


def forward_feeds(cls: cst.ClassDef, imports: ImportMap, resolver: Resolver,
                  rnns: frozenset[str] = frozenset()) -> list[tuple[int, KnownCall]]:
    """``(argument position, recurrent call)``: where ``forward`` runs a sequence RNN over an argument, unpacked."""
    fed = []
    for use in forward_uses(cls, imports, resolver, rnns):
        if isinstance(use.callee, Module) and use.callee.is_sequence_rnn and not use.exact_at_real_positions():
            padded = use.padded_input()
            if padded is not None and padded[0].origin.startswith("@"):
                fed.append((int(padded[0].origin[1:]), use))
    return fed


def padded_callers(ctx, path, class_name: str) -> dict[int, tuple[str, int, str]]:
    """Calls in *other* files of the project that hand ``class_name`` (defined in ``path``) a padded batch.

    ``argument position -> (file, line, origin)`` of the first such call: read from each file that
    mentions the class, analysed with the same padding flow as the file itself.
    """
    flow = ctx.index.flow()
    found: dict[int, tuple[str, int, str]] = {}
    for other, words in flow.project_files().items():
        if other == path or class_name not in words or not flow.may_call_into(other, path):
            continue
        context = file_context(ctx, other)
        if context is None:
            continue
        for run in file_runs(context):
            for use in run.result.uses:
                if not isinstance(use.callee, Instance) or ctx.index.lookup(other, use.callee.name) != (path, class_name):
                    continue
                for key, value, _ in use.args:
                    if isinstance(key, int) and isinstance(value, Padded) and key not in found:
                        found[key] = (flow.display(other), flow.line(other, use.call) or 1, value.origin)
    return found


def forward_params(function: cst.FunctionDef) -> list[str]:
    """Positional parameters after ``self``."""
    return param_names(function, kwonly=False)[1:]


# -- summaries for the project index --------------------------------------------


class _SummaryResolver(Resolver):
    """Inside one file without the index: every non-torch callee may be a project model."""

    def __init__(self, imports: ImportMap, functions: dict[str, dict]):
        self.imports = imports
        self.functions = functions  # name -> its summary facts (padded_returns, pads)

    def passes(self, name: str) -> dict:
        return self.functions.get(name, {}).get("passes", {})

    def call(self, name: str) -> Value:
        if name in self.functions:
            return returned(self.functions[name], f"padded by {name}(...)")
        head = self.imports.resolve_dotted(name).split(".")[0]
        if head in ("torch", "numpy", "np") or name.split(".")[0] in _BUILTINS:
            return None
        return Instance(name)


def returned(facts: dict, origin: str) -> Value:
    """The value that a function (or a dataset's item) summarised by ``facts`` gives.

    ``facts["padded_returns"]`` holds the padded positions of the returned tuple (-1: the whole value) or
    the padded keys of a returned dict; ``facts["pads"]`` the pad written by hand at each position, when
    the padding was done by hand (a number as written, or "" when it is not a literal).
    """
    positions = facts.get("padded_returns") or []
    pads = facts.get("pads") or {}
    loaders = {int(k): v for k, v in (facts.get("loaders") or {}).items()}  # position -> the item's facts

    def at(position) -> Value:
        if position in loaders:
            item = returned(loaders[position], origin)
            return Loader(item) if item is not None else None
        return Padded(origin, pads.get(str(position))) if position in positions else None

    if not positions and not loaders:
        return None
    if -1 in positions or -1 in loaders:
        return at(-1)
    keys = [p for p in positions if isinstance(p, str)]
    if keys:
        return Fields(tuple((key, at(key)) for key in keys))
    return Items(tuple(at(i) for i in range(max([*positions, *loaders]) + 1)))


def padded_facts(values: list[Value]) -> dict:
    """The summary facts of returned ``values`` (see :func:`returned`)."""
    positions: dict[int | str, Padded] = {}
    loaders: dict[str, dict] = {}  # a returned DataLoader (or tuple position holding one) of padded batches
    for value in values:
        if isinstance(value, Items):
            pairs = list(enumerate(value.items))
        elif isinstance(value, Fields):
            pairs = list(value.items)
        else:
            pairs = [(-1, value)]
        for key, item in pairs:
            if isinstance(item, Padded):
                positions.setdefault(key, item)
            elif isinstance(item, Loader) and isinstance(key, int) and str(key) not in loaders:
                inner = padded_facts([item.item])
                if inner:
                    loaders[str(key)] = inner
    facts: dict = {}
    if positions:
        facts["padded_returns"] = sorted(positions, key=lambda p: (isinstance(p, str), str(p)))
    pads = {str(p): _portable_pad(v.by_hand) for p, v in positions.items() if v.by_hand is not None}
    if pads:
        facts["pads"] = pads
    if loaders:
        facts["loaders"] = loaders
    return facts


def _renamed(value: Value, origin: str) -> Value:
    """``value`` with each padded part's origin replaced (as the caller sees it)."""
    if isinstance(value, Padded):
        return replace(value, origin=origin)
    if isinstance(value, Items):
        return Items(tuple(_renamed(v, origin) for v in value.items))
    if isinstance(value, Fields):
        return Fields(tuple((k, _renamed(v, origin)) for k, v in value.items))
    if isinstance(value, Loader):
        return Loader(_renamed(value.item, origin))
    return value


def _own(value: Value) -> Value:
    """``value`` without what merely passes a parameter through (``Padded("@i")`` of a summary run)."""
    if isinstance(value, Padded):
        return None if value.origin.startswith("@") else value
    if isinstance(value, Items):
        return Items(tuple(_own(v) for v in value.items))
    if isinstance(value, Fields):
        return Fields(tuple((k, _own(v)) for k, v in value.items))
    if isinstance(value, Loader):
        return Loader(_own(value.item))
    return value


def _passes(values: list[Value], params: list[str]) -> dict:
    """Returned position (-1: the whole value) -> ``[index, name]`` of the parameter handed back."""
    found: dict[str, list] = {}
    for value in values:
        pairs = list(enumerate(value.items)) if isinstance(value, Items) else [(-1, value)]
        for position, item in pairs:
            if isinstance(item, Padded) and item.origin[:1] == "@" and item.origin[1:].isdigit():
                index = int(item.origin[1:])
                found.setdefault(str(position), [index, params[index]])
    return found


def _passed(passes: dict, args) -> Value:
    """What a call returns of the padded arguments it was given (see :meth:`Resolver.passes`)."""
    if not passes:
        return None

    def argument(index: int, name: str) -> Value:
        return next((v for k, v, _ in args if k == index or k == name), None)

    if "-1" in passes:
        return argument(*passes["-1"])
    positions = {int(k): argument(*v) for k, v in passes.items()}
    values = tuple(positions.get(i) for i in range(max(positions) + 1))
    return Items(values) if any(v is not None for v in values) else None


def _portable_pad(text: str) -> str:
    """A pad as another file can use it: a number stays; a name of this file cannot be written there."""
    try:
        expr = cst.parse_expression(text)
    except cst.ParserSyntaxError:
        return ""
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        expr = expr.expression
    return text if isinstance(expr, (cst.Integer, cst.Float)) else ""


def summarise(module: cst.Module, imports: ImportMap, calls: dict[str, list[str]] | None = None) -> dict[str, dict]:
    """Per top-level function and class: the padding facts other files need.

    * functions: ``padded_returns``, positions of the returned tuple (or keys of
      the returned dict) that are padded (-1: the returned value itself), with
      ``pads`` (the pad written by hand, when it is a number), ``loaders``
      (returned DataLoaders and their batches' facts) and ``passes`` (parameters
      handed back: ``encode(rows)``); see :func:`returned`;
    * Dataset classes: the same facts of one item (``__getitem__``);
    * classes with ``forward``: ``feeds``, forward parameter position -> the
      ``[callee, argument position]`` pairs that parameter reaches, unpacked, as
      an argument of a submodule call (``torch.nn.LSTM`` or a project class as
      written in the file), to be resolved by :func:`feeds_recurrent`.

    ``calls`` (definition -> dotted callees, from the index) lets it skip the
    bodies that cannot matter, as most of a large tree: functions that call
    no padding function (nor a function of the file that does), classes that
    build neither a recurrent module nor a (capitalised) class of the project.
    """
    if not imports.imports_from("torch", "numpy"):  # data helpers often import numpy alone
        return {}
    calls = calls or {}
    out: dict[str, dict] = {}
    functions: dict[str, dict] = {}
    padders = {PAD_SEQUENCE, PAD_PACKED}

    def may_pad(name: str) -> bool:
        if name not in calls:
            return True
        return any(q in padders or q in BUFFERS or q in CONCATENATIONS or q in CONVERSIONS or q in STACKS
                   or q in DATASETS or q.endswith("DataLoader") or c == "len" or functions.get(c)
                   for c, q in ((c, imports.resolve_dotted(c)) for c in calls[name]))

    def may_feed(name: str) -> bool:
        if name not in calls:
            return True
        for callee in calls[name]:
            qualname = imports.resolve_dotted(callee)
            constructor = qualname.rsplit(".", 1)[-1][:1].isupper()
            if qualname in SEQUENCE_RNNS or qualname in EMBEDDINGS or (
                    constructor and not qualname.startswith("torch.")):
                return True
        return False

    # top-level functions, and static methods under their qualified name (``Helpers.make_batch``)
    function_defs = [(s.name.value, s) for s in module.body if isinstance(s, cst.FunctionDef)]
    function_defs += [
        (f"{c.name.value}.{name}", m) for c in module.body if isinstance(c, cst.ClassDef)
        for name, m in methods(c).items() if any(dotted(d.decorator) == "staticmethod" for d in m.decorators)
    ]
    # ``make_batch = Helpers.make_batch``: the alias returns what the method does, for the callers below too
    qualified = {id(stmt): name for name, stmt in function_defs}
    aliases: dict[str, list[str]] = {}
    for alias, stmt in module_functions(module).items():
        source = qualified.get(id(stmt))
        if source is not None and source != alias:
            aliases.setdefault(source, []).append(alias)
    for name, stmt in function_defs + function_defs:  # twice: helpers defined below their callers
        if may_pad(name) and not functions.get(name):
            params = param_names(stmt, kwonly=False)
            env = {p: Padded(f"@{i}") for i, p in enumerate(params)}
            result = Flow(imports, _SummaryResolver(imports, functions)).run_function(stmt, env)
            functions[name] = padded_facts([_own(v) for v in result.returns])
            passes = _passes(result.returns, params)
            if passes:
                functions[name]["passes"] = passes
            for known in (name, *aliases.get(name, ())):
                functions[known] = functions[name]
                if functions[name]:
                    out[known] = dict(functions[name])
    resolver = _SummaryResolver(imports, functions)
    for stmt in module.body:
        if not isinstance(stmt, cst.ClassDef):
            continue
        getitem = methods(stmt).get("__getitem__")
        if getitem is not None and may_pad(stmt.name.value):  # a Dataset: what one item holds padded
            own = {}
            for name, method in methods(stmt).items():  # helpers of __getitem__: self._encode(text)
                if name != "__getitem__" and not name.startswith("__"):
                    returns = Flow(imports, resolver).run_function(method).returns
                    own[name] = next((v for v in returns if padded_facts([v])), None)
            flow = Flow(imports, resolver)
            flow.own_methods = {k: v for k, v in own.items() if v is not None}
            item = padded_facts(flow.run_function(getitem).returns)
            if item:
                out[stmt.name.value] = item
        forward = methods(stmt).get("forward")
        if forward is None or not may_feed(stmt.name.value):
            continue
        feeds: dict[str, list[list]] = {}
        run = _forward_run(stmt, imports, resolver)
        passes = _passes(run.returns, forward_params(forward))
        if passes:  # an embedding (or other shape-keeping) layer of the project: its output is its input
            out.setdefault(stmt.name.value, {})["passes"] = passes
        for use in run.uses:
            callee = use.callee
            if isinstance(callee, Module) and callee.is_sequence_rnn:
                if use.exact_at_real_positions():
                    continue
                target = callee.qualname
            elif isinstance(callee, Instance):
                target = callee.name
            else:
                continue
            for key, value, _ in use.args:
                if isinstance(key, int) and isinstance(value, Padded) and value.origin.startswith("@"):
                    if isinstance(callee, Module) and key != 0:
                        continue
                    entry = [target, key]
                    bucket = feeds.setdefault(value.origin[1:], [])
                    if entry not in bucket:
                        bucket.append(entry)
        if feeds:
            out.setdefault(stmt.name.value, {})["feeds"] = feeds
    return out


def feeds_recurrent(index, importer, class_name: str, position: int, depth: int = 0) -> str | None:
    """Does forward parameter ``position`` of ``class_name`` (as written in ``importer``)
    reach a recurrent module unpacked? Returns where (``"LSTM in models/net.py"``) or None."""
    if depth > 6:
        return None
    hit = index.lookup(importer, class_name)
    if hit is None:
        return None
    file, name = hit
    summary = index.summary(file)
    definition = summary.definitions.get(name) if summary else None
    if definition is None or definition.kind != "class":
        return None
    view = ImportMapView(summary)
    for target, argument in definition.feeds.get(str(position), []):
        qualname = view.resolve_dotted(target)
        if qualname in SEQUENCE_RNNS or (qualname in index.recurrent_names and "Cell" not in qualname):
            return f"its {qualname.rsplit('.', 1)[-1]} ({index.flow().display(index.real(file))})"
        inner = feeds_recurrent(index, file, target, argument, depth + 1)
        if inner:
            return inner
    return None


def builds_recurrent(index, file, class_name: str, depth: int = 0) -> bool:
    """Does the class (or a project base) build a recurrent module itself? Then :func:`feeds_recurrent`
    knows what its forward feeds; otherwise its recurrent layers come from outside (its constructor)."""
    for home, _, definition in index.lineage(file, class_name, depth=3 - depth):
        view = ImportMapView(index.summary(home))
        if any(view.resolve_dotted(c) in index.recurrent_names for c in definition.calls):
            return True
    return False


# -- lengths ------------------------------------------------------------------


def is_length_name(name: str) -> bool:
    """``lengths``, ``lens``, ``seq_lens``, ``src_len``, ``text_lengths``, ``x_len``..."""
    words = name.lower().split("_")
    return any(word in LENGTH_WORDS for word in words) and not any(word in _NOT_LENGTHS for word in words)


_NOT_LENGTHS = frozenset({"max", "min", "total", "num", "n", "pad", "batch", "hidden", "embed", "window", "chunk"})


def lengths_in_scope(names: dict[str, cst.BaseExpression | None]) -> tuple[str, bool] | None:
    """A name bound before a call that holds per-sequence lengths: ``(name, is_python_list)``.

    Parameters qualify (a forward's ``lengths``); assigned names qualify unless the
    value is clearly a number (``seq_len = 35``, ``len(x)``, ``x.size(1)``).
    Plural names are preferred over ``*_len``.
    """
    candidates = []
    for name, expr in names.items():
        if "." in name or not is_length_name(name):
            continue
        if expr is not None and _scalar(expr):
            continue
        plural = name.lower().endswith("s")
        candidates.append((not plural, name, _python_list(expr)))
    if not candidates:
        return None
    candidates.sort()
    _, name, is_list = candidates[0]
    return name, is_list


def _scalar(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, (cst.Integer, cst.Float, cst.BinaryOperation, cst.UnaryOperation)):
        return True
    if isinstance(expr, cst.Call):
        name = dotted(expr.func) or ""
        if name in ("len", "int", "max", "min") or name.endswith((".size", ".item", ".numel", ".dim")):
            return True
    if isinstance(expr, cst.Subscript) and (dotted(expr.value) or "").endswith(".shape"):
        return True
    return False


def _python_list(expr: cst.BaseExpression | None) -> bool:
    if isinstance(expr, (cst.List, cst.ListComp)):
        return True
    return isinstance(expr, cst.Call) and dotted(expr.func) == "list"



# -- whole files, for rules ---------------------------------------------------------


class ProjectResolver(Resolver):
    """Answers through the project index: project classes, padding functions in any file."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def call(self, name: str) -> Value:
        hit = self.ctx.index.lookup(self.ctx.path, name)
        if hit is None:
            return None
        file, definition_name = hit
        # a class is an instance whatever its summary says: its outline (no libcst parse) tells
        outline = self.ctx.index.outline(file)
        if outline is not None and getattr(outline.definitions.get(definition_name), "kind", None) == "class":
            return Instance(name)
        summary = self.ctx.index.summary(file)
        definition = summary.definitions.get(definition_name) if summary else None
        if definition is None:
            return None
        if definition.kind == "class":
            return Instance(name)
        if definition.kind in ("function", "assign"):  # an assignment: an alias of a padding function
            value = returned(vars(definition), f"padded by {name}(...)")
            if value is None and (definition.kind == "assign" or self._calls_padders(file, definition)
                                  or self._calls_makers(file, definition)):
                value = self._run(file, definition_name, name)  # an alias of a static method: its body
            return value if value is not None else self._closure(file, definition_name)
        return None

    def _calls_makers(self, file, definition) -> bool:
        """Does the function call a project function that makes a closure (``collate = make_collate(pad)``)?
        Summaries cannot follow one: the function runs with the project's knowledge instead."""
        for callee in definition.calls:
            hit = self.ctx.index.lookup(file, callee)
            if hit is not None and self._closure(*hit) is not None:
                return True
        return False

    def _closure(self, file, function_name: str) -> Closure | None:
        """``def make_collate(pad): def collate(batch): ...; return collate``: the function it returns."""
        memo = self.ctx.index.flow().scratch.setdefault("padding.makers", {})
        if (file, function_name) not in memo:
            memo[(file, function_name)] = self._made(file, function_name)
        return memo[(file, function_name)]

    def _made(self, file, function_name: str) -> Closure | None:
        ctx = self.ctx if file == self.ctx.path.resolve() else file_context(self.ctx, file)
        maker = module_functions(ctx.module).get(function_name) if ctx is not None else None
        if maker is None:
            return None
        inner = {stmt.name.value: stmt for stmt in body_of(maker) if isinstance(stmt, cst.FunctionDef)}
        returned_names = {dotted(r.value) for stmt in body_of(maker) if not isinstance(stmt, cst.FunctionDef)
                          for r in find_all(stmt, cst.Return, skip=(cst.FunctionDef, cst.ClassDef))
                          if r.value is not None}
        made = [inner[n] for n in returned_names if n in inner]
        return Closure(made[0].name.value, made[0], file) if len(made) == 1 and len(returned_names) == 1 else None

    def closure_returns(self, closure: Closure) -> Value:
        memo = self.ctx.index.flow().scratch.setdefault("padding.closures", {})
        key = (closure.file, id(closure.function))
        if key not in memo:
            memo[key] = None  # recursion guard
            ctx = self.ctx if closure.file == self.ctx.path.resolve() else file_context(self.ctx, closure.file)
            if ctx is not None:
                returns = Flow(ctx.imports, ProjectResolver(ctx)).run_function(closure.function).returns
                memo[key] = next((v for v in returns if padded_facts([v])), None)
        return memo[key]

    def _calls_padders(self, file, definition) -> bool:
        """Does the function call a project function that pads (or hands padding through)? Its own
        summary cannot know, as summaries are made one file at a time."""
        for callee in definition.calls:
            hit = self.ctx.index.lookup(file, callee)
            summary = self.ctx.index.summary(hit[0]) if hit is not None and hit[0] != file else None
            found = summary.definitions.get(hit[1]) if summary else None
            if found is not None and (found.padded_returns or found.loaders or found.passes):
                return True
        return False

    def _run(self, file, function_name: str, written: str) -> Value:
        """What the function returns, followed with the whole project's knowledge (once per run)."""
        memo = self.ctx.index.flow().scratch.setdefault("padding.returns", {})
        key = (file, function_name)
        if key not in memo:
            memo[key] = None  # recursion guard
            ctx = self.ctx if file == self.ctx.path.resolve() else file_context(self.ctx, file)
            function = module_functions(ctx.module).get(function_name) if ctx is not None else None
            if function is not None:
                returns = Flow(ctx.imports, ProjectResolver(ctx)).run_function(function).returns
                memo[key] = next((v for v in returns if padded_facts([v])), None)
        value = memo[key]
        return _renamed(value, f"padded by {written}(...)") if value is not None else None

    def passes(self, name: str) -> dict:
        return _passes_of(self.ctx.index, self.ctx.path, name)

    def injected(self, expr: cst.BaseExpression) -> Value:
        """Asked of the flow model: the one module every caller hands in (a project model, a torch layer)."""
        flow, _ = flow_of(self.ctx)
        found = flow.values(expr, site_of(self.ctx, expr), models=True)
        kinds = {(v.kind, v.value if v.kind == LIBRARY else id(v.node)) for v in found}
        if len(kinds) != 1:
            return None  # unknown, or several different parts: not guessed
        value = found[0]
        if value.kind == LIBRARY and value.call is not None and value.value.startswith("torch."):
            return module_value(value.value, value.call)
        if value.kind == INSTANCE and isinstance(value.node, cst.ClassDef):
            here = self.ctx.path.resolve()
            home = (value.path, value.node.name.value) if value.path != here else None
            return Instance(value.node.name.value, home)
        return None

    def batch_attributes(self, loop: cst.For) -> dict[str, Value]:
        if not torchtext.uses_torchtext(self.ctx.index.flow(), self.ctx.path):
            return {}  # asked of every loop over something unknown: the common answer costs nothing
        flow, facts = flow_of(self.ctx)
        name, fields = torchtext.loop_fields(flow, loop, facts.site_of(loop))
        out: dict[str, Value] = {}
        for attr, batch in fields.items():
            if batch.padded:
                padded = Padded(f"{name}.{attr}, padded by its torchtext Field")
                out[f"{name}.{attr}"] = Items((padded, None)) if batch.lengths else padded
        return out

    def item(self, name: str) -> Value:
        hit = self.ctx.index.lookup(self.ctx.path, name)
        summary = self.ctx.index.summary(hit[0]) if hit is not None else None
        definition = summary.definitions.get(hit[1]) if summary else None
        if definition is None or definition.kind != "class":
            return None
        return returned(vars(definition), f"items of {name}, padded by its __getitem__")


@dataclass
class BodyRun:
    """One analysed body: a function (or the module), with the values its caller passed in."""

    node: cst.CSTNode  # FunctionDef or Module
    cls: cst.ClassDef | None
    result: Result


_MAX_RUNS_PER_FUNCTION = 8


def file_runs(ctx, flow: type[Flow] = Flow, resolver: Resolver | None = None, callers: bool = True) -> list[BodyRun]:
    """Every body of the file, followed into same-file functions and models with known values.

    The module's top-level code, each top-level function and each method run
    with what they know by themselves; then a function (or a model's
    ``forward``, or ``self(...)``) called with a padded batch, a loader or a
    model runs again with those values bound to its parameters.

    With ``callers``, a top-level function also runs with what calls of it
    in other files of the project hand it (``train(model, loader)`` called
    from ``main.py`` with a padded loader); those files are read without it.

    A rule that tracks more than padding (RNN013: the padding value, loss
    calls) passes its own ``Flow`` subclass (and resolver); runs are memoised
    per subclass.
    """
    key = "padding.runs" if flow is Flow else f"padding.runs.{flow.__module__}.{flow.__qualname__}"
    key += "" if callers else ".local"
    return ctx.memo(key, lambda: _file_runs(ctx, flow, resolver, callers))


def _foreign_uses(ctx, function_name: str) -> list[KnownCall]:
    """Calls of ``function_name`` (a top-level function of this file) in other files of the project that
    hand it known values; instances among them carry where their class is defined."""
    flow = ctx.index.flow()
    here = ctx.path.resolve()
    found: list[KnownCall] = []
    for other, words in flow.project_files().items():
        if other == here or function_name not in words or not flow.may_call_into(other, here):
            continue
        context = file_context(ctx, other)
        if context is None:
            continue
        for run in file_runs(context, callers=False):
            for use in run.result.uses:
                if not isinstance(use.callee, str) or ctx.index.lookup(other, use.callee) != (here, function_name):
                    continue
                args = [(key, _homed(ctx.index, other, value), arg) for key, value, arg in use.args]
                found.append(KnownCall(use.call, use.callee, args, use.statement, {}, use.body))
    return found


def _homed(index, importer, value: Value) -> Value:
    if isinstance(value, Instance) and value.home is None:
        home = index.lookup(importer, value.name)
        return replace(value, home=home) if home is not None else None
    return value


def class_parts(ctx, cls: cst.ClassDef, resolver: Resolver) -> dict[str, Value]:
    """:func:`submodules` of a class of ``ctx``'s file, once per class and file context: what a class
    holds in ``self.<name>`` is the same for every flow over the file (a rule's resolver changes only
    what padded values look like), and the file's runs and its forwards' runs both ask."""
    return ctx.memo(f"padding.submodules.{id(cls)}", lambda: submodules(cls, ctx.imports, resolver))


def file_context(ctx, path):
    """The analysis context of another file of the project, made once per run."""
    contexts = ctx.index.flow().scratch.setdefault("padding.contexts", {})
    if path not in contexts:
        module, text = ctx.index.tree(path), ctx.index.text(path)
        contexts[path] = FileContext(path, text, module, ctx.index) if module is not None and text is not None else None
    return contexts[path]


def _file_runs(ctx, flow_class: type[Flow] = Flow, resolver: Resolver | None = None, callers: bool = True) -> list[BodyRun]:
    resolver = resolver or ProjectResolver(ctx)
    rnns = frozenset(n for n in ctx.index.recurrent_names if "Cell" not in n)
    functions = module_functions(ctx.module)
    classes: dict[str, cst.ClassDef] = {}
    for stmt in ctx.module.body:
        if isinstance(stmt, cst.ClassDef):
            classes[stmt.name.value] = stmt
    # what each class holds in self.<name> is the same for every flow (a rule's resolver changes only
    # what padded values look like): computed once per class and file context
    modules = {name: class_parts(ctx, cls, resolver) for name, cls in classes.items()}
    runs: list[BodyRun] = []
    module_env: dict[str, Value] = {}  # what the module's top level leaves in its names: the functions' globals
    seen: set = set()
    counts: dict[int, int] = {}
    queue: list[tuple[cst.CSTNode, cst.ClassDef | None, dict[str, Value]]] = [(ctx.module, None, {})]
    queue += [(f, None, {}) for f in functions.values()]
    for name, cls in classes.items():
        queue += [(m, cls, dict(modules[name])) for m in methods(cls).values()]

    def enter(function: cst.FunctionDef, cls: cst.ClassDef | None, params: list[str], use: KnownCall) -> None:
        env = dict(modules[cls.name.value]) if cls is not None else {}
        passed = False
        for key, value, _ in use.args:
            if value is None:
                continue
            param = params[key] if isinstance(key, int) and key < len(params) else key
            if isinstance(param, str) and param in params:
                env[param] = value
                passed = True
        if passed:
            queue.append((function, cls, env))

    if callers:
        for function in functions.values():
            if _takes_values(function):
                params = param_names(function)
                for use in _foreign_uses(ctx, function.name.value):
                    enter(function, None, params, use)

    while queue:
        node, cls, env = queue.pop(0)
        key = (id(node), tuple(sorted((k, v) for k, v in env.items() if not k.startswith("self."))))
        if key in seen or counts.get(id(node), 0) >= _MAX_RUNS_PER_FUNCTION:
            continue
        seen.add(key)
        counts[id(node)] = counts.get(id(node), 0) + 1
        flow = flow_class(ctx.imports, resolver, rnns)
        if isinstance(node, cst.Module):
            result = flow.run_module(node)
            module_env = {k: v for k, v in flow.env.items() if "." not in k}
        else:
            result = flow.run_function(node, {**_globals_for(ctx, node, module_env), **env})
        runs.append(BodyRun(node, cls, result))
        for use in result.uses:
            target: cst.ClassDef | None = None
            if use.callee == "self":
                target = cls
            elif isinstance(use.callee, Instance):
                hit = locate(ctx.index, ctx.path, use.callee)
                if hit is not None and hit[0] == ctx.path.resolve():
                    target = classes.get(hit[1])
            elif isinstance(use.callee, str) and use.callee in functions:
                function = functions[use.callee]
                params = param_names(function)
                enter(function, None, params, use)
            if target is not None and "forward" in methods(target):
                forward = methods(target)["forward"]
                enter(forward, target, forward_params(forward) + [
                    p.name.value for p in forward.params.kwonly_params], use)
    return runs


def _globals_for(ctx, function: cst.FunctionDef, module_env: dict[str, Value]) -> dict[str, Value]:
    """The module-level values ``function`` reads as globals: every name of the module's top level that
    the function does not bind itself (a parameter, an assignment, a loop target). A notebook builds its
    loader at the top and trains on it in a function: ``for batch in loader`` there is that loader."""
    if not module_env:
        return {}
    local = set(param_names(function)) | set(flow_of(ctx)[1].assigns.get(function, {}))
    return {name: value for name, value in module_env.items() if name not in local}


def _passes_of(index, importer, name: str) -> dict:
    """What the function (or the class's ``forward``, inherited from a project base) ``name`` hands back."""
    hit = index.lookup(importer, name)
    summary = index.summary(hit[0]) if hit is not None else None
    definition = summary.definitions.get(hit[1]) if summary else None
    if definition is None:
        return {}
    if definition.kind != "class":
        return definition.passes
    return next((cls.passes for _, _, cls in index.lineage(*hit, depth=4) if cls.passes), {})


def _read_per_example(body: cst.CSTNode, outputs: cst.Name) -> bool:
    """Is every read of ``outputs`` in ``body`` a subscript at positions computed per example
    (``out[torch.arange(b), lengths - 1]``, ``out[k, :, :int(n)]``)? A fixed index (``out[:, -1]``), a
    bare name (``out[t]`` in a loop over every step), any other use (returned, reduced, passed on) is not."""
    name = outputs.value
    reads = [n for n in find_all(body, cst.Name) if n.value == name and n is not outputs]
    subscripts = [s for s in find_all(body, cst.Subscript) if isinstance(s.value, cst.Name) and s.value.value == name]
    if not subscripts or len(reads) != len(subscripts):
        return False
    return all(any(_computed(e.slice) for e in s.slice) and not any(_fixed(e.slice) for e in s.slice)
               for s in subscripts)


#: torch layers that compute each time step's output from that step alone: the transparent ones but the embedding
STEP_LAYERS = TRANSPARENT_LAYERS - EMBEDDINGS
#: tensor methods that move axes about without mixing time steps
STEP_METHODS = frozenset({"permute", "transpose", "contiguous"})


def _scored_per_step(body: cst.CSTNode, statement: cst.CSTNode, outputs: cst.Name, layers: dict[str, Module]) -> bool:
    """Does ``body`` (a ``forward``) turn ``outputs``, after ``statement`` that binds them, into per-step
    scores it returns: every later statement that reads them is ``x = <steps>`` or ``return <steps>``,
    where ``<steps>`` applies only :data:`STEP_LAYERS` (a ``Linear`` among them) and :data:`STEP_METHODS`?
    Any other read (pooled, sliced at a fixed step, attended over, returned raw) is not."""
    statements = body_of(body)
    if statement not in statements:
        return False
    tracked = {outputs.value: False}  # name -> a Linear was applied on its way from the outputs

    def steps(expr: cst.BaseExpression) -> bool | None:
        """Projected (True) or not yet (False) when ``expr`` is per-step in a tracked name; else None."""
        if isinstance(expr, cst.Name):
            return tracked.get(expr.value)
        if not isinstance(expr, cst.Call):
            return None
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in STEP_METHODS:
            return steps(expr.func.value)
        layer = layers.get(dotted(expr.func) or "")
        if layer is None or layer.qualname not in STEP_LAYERS or len(expr.args) != 1 or expr.args[0].keyword:
            return None
        inner = steps(expr.args[0].value)
        return None if inner is None else inner or layer.qualname == "torch.nn.Linear"

    returned = False
    for stmt in statements[statements.index(statement) + 1:]:
        if not any(isinstance(n, cst.Name) and n.value in tracked for n in find_all(stmt, cst.Name)):
            continue
        line = stmt.body if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        small = line[0] if line else None
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            found = steps(small.value)
            if found is None:
                return False
            tracked[small.targets[0].target.value] = found
        elif isinstance(small, cst.Return) and small.value is not None and steps(small.value):
            returned = True
        else:
            return False
    return returned


def _fixed(part: cst.BaseSlice) -> bool:
    """``-1``, ``0``: the same step of every example."""
    value = part.value if isinstance(part, cst.Index) else None
    if isinstance(value, cst.UnaryOperation):
        value = value.expression
    return isinstance(value, cst.Integer)


def _computed(part: cst.BaseSlice) -> bool:
    if isinstance(part, cst.Slice):
        return any(isinstance(b, (cst.Call, cst.BinaryOperation)) for b in (part.lower, part.upper))
    return isinstance(part, cst.Index) and isinstance(part.value, (cst.Call, cst.BinaryOperation))


def module_functions(module: cst.Module) -> dict[str, cst.FunctionDef]:
    """The module's functions by the name callers use: top-level ones, and static methods bound to a
    module-level name (``make_batch = Helpers.make_batch``)."""
    found = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    classes = {s.name.value: s for s in module.body if isinstance(s, cst.ClassDef)}
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Assign):
            assign = stmt.body[0]
            source = dotted(assign.value) or ""
            owner, _, method = source.partition(".")
            function = methods(classes[owner]).get(method) if owner in classes and method else None
            if function is not None and any(dotted(d.decorator) == "staticmethod" for d in function.decorators):
                for target in assign.targets:
                    if isinstance(target.target, cst.Name):
                        found[target.target.value] = function
    return found


def _takes_values(function: cst.FunctionDef) -> bool:
    """Does the function use a parameter as a batch source or a model: loop over it, or call it?"""
    params = set(param_names(function))
    if not params:
        return False
    for node in find_all(function, (cst.For, cst.Call)):
        head = node.iter if isinstance(node, cst.For) else node.func
        while isinstance(head, cst.Call) and head.args:  # enumerate(loader), tqdm(loader)
            head = head.args[0].value
        if isinstance(head, cst.Name) and head.value in params:
            return True
    return False


def rnn_utils_name(imports: ImportMap, function: str) -> tuple[str, tuple[str, ...]]:
    """How to write ``torch.nn.utils.rnn.<function>`` in a file, and the import it needs, if any.

    Reuses what the file imports: the function itself, ``torch.nn.utils.rnn``
    under an alias, the file's habit of importing its functions by name,
    ``torch.nn`` (``nn.utils.rnn.f``) or ``torch``; otherwise adds
    ``from torch.nn.utils.rnn import <function>``.
    """
    for local, full in imports.names.items():
        if full == RNN_UTILS + function:
            return local, ()
    direct = (function, (f"from torch.nn.utils.rnn import {function}",))
    for prefix, suffix in (("torch.nn.utils.rnn", ""), (None, None), ("torch.nn", "utils.rnn."), ("torch", "nn.utils.rnn.")):
        if prefix is None:  # the file imports other functions by name: do the same
            if any(full.startswith(RNN_UTILS) for full in imports.names.values()):
                return direct
            continue
        for local, full in imports.names.items():
            if full == prefix and "." not in local:
                return f"{local}.{suffix}{function}", ()
    return direct
