"""What the flow model says a value is, and the path it travelled to get there.

A :class:`Value` is one possibility for an expression: a constant (``0.01``), a
dictionary literal (``{"lr": 0.01}``), an instance or a class of the project
(``HParams()``), a module of the project (``import config``), a parsed
command line (``parser.parse_args()``), or data loaded from a JSON file of the
repository. Every value keeps the steps it took from the source to the use
(:class:`Step`), so that a finding can say *where the number came from*:
``Adam lr=0.01 (config["training"]["learning_rate"], config.py:47)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libcst as cst

CONST = "const"  # value: the Python constant
DICT = "dict"  # node: the cst.Dict (or dict(...)/SimpleNamespace(...) call); value: None
DATA = "data"  # value: a JSON-like Python object loaded from a file of the repository
INSTANCE = "instance"  # node: the cst.ClassDef; value: the constructor call (or None)
CLASS = "class"  # node: the cst.ClassDef
MODULE = "module"  # path: the module's file
ARGS = "args"  # a parsed command line: path is the file whose options it holds
SEQUENCE = "sequence"  # node: a cst.Tuple / cst.List literal
LIBRARY = "library"  # value: the canonical name of a library class or function called (``torch.nn.LSTM``)
LIBRARY_CLASS = "library class"  # value: the canonical name of a library class named, not called (``nn.GRU``)


@dataclass(frozen=True)
class Step:
    """One hop of a value's path: what was written, in which file, at which node."""

    text: str
    path: Path
    node: cst.CSTNode | None = field(default=None, compare=False)
    #: a parameter's default: the calls of the project that pass the parameter, where it does not apply
    overridden_by: tuple[cst.Call, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Value:
    kind: str
    value: Any = None
    node: cst.CSTNode | None = field(default=None, compare=False)  # the literal that holds it
    path: Path | None = None  # the file of ``node``
    steps: tuple[Step, ...] = ()  # from the source to the use
    call: cst.Call | None = field(default=None, compare=False)  # instances: the constructor call
    call_path: Path | None = None
    call_site: Any = field(default=None, compare=False)  # instances: the Site of the constructor call

    def via(self, text: str, path: Path, node: cst.CSTNode | None = None,
            overridden_by: tuple[cst.Call, ...] = ()) -> "Value":
        """The same value, one hop further from its source."""
        return replace(self, steps=(*self.steps, Step(text, path, node, overridden_by)))

    @property
    def number(self) -> float | None:
        """The value as a float when it is a real number (not a bool)."""
        if self.kind != CONST or isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            return None
        return float(self.value)

    @property
    def source(self) -> Step | None:
        return self.steps[0] if self.steps else None


def together(a: Value, b: Value) -> bool:
    """Can ``a`` and ``b`` be the values of one and the same call of the function that uses them?

    ``Encoder(num_layers=2, dropout=0.3)`` in one file and ``Encoder(num_layers=1, dropout=0)`` in
    another give each parameter two values, but never 1 layer with 0.3: values that entered through
    different calls of the same function (their ``argument ... of f(...)`` steps, nearest the use
    first) are not a pair, nor is a parameter's default with an argument of a call that passes
    that parameter (``Encoder(dropout=0.3, num_layers=2)`` never meets ``num_layers=1``'s default).
    Values whose paths say nothing about it are.
    """
    for x, y in ((a, b), (b, a)):  # a parameter's default never meets an argument of a call that passes it
        overridden = {id(call) for step in x.steps for call in step.overridden_by}
        if any(id(step.node) in overridden for step in y.steps if step.text.startswith("argument ")):
            return False
    for x, y in zip(_calls(a), _calls(b)):
        if x[0] != y[0]:
            return True  # calls of different functions: nothing to compare
        if x[1] is not y[1]:
            return False
    return True


def _calls(value: Value) -> list[tuple[str, cst.CSTNode | None]]:
    return [(step.text.partition(" of ")[2], step.node) for step in reversed(value.steps)
            if step.text.startswith("argument ")]
