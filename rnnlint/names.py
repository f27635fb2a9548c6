"""Qualified-name resolution from a file's own imports.

libcst's ``QualifiedNameProvider`` needs full scope analysis of every module,
which costs more than the parse itself. Rules only need to know what a dotted
name refers to ("is ``tnn.LSTM`` really ``torch.nn.LSTM``?"), and imports give
that answer: we read every import statement once and map local names to the
dotted names they bind. Relative imports keep their leading dots; the project
index resolves them against the importing file's directory.
"""

from __future__ import annotations

import functools

import libcst as cst

from rnnlint.nodes import Visitor

# Long import paths that mean the same object as a short public one.
_CANONICAL_PREFIXES = (
    ("torch.nn.modules.rnn.", "torch.nn."),
    ("torch.nn.modules.loss.", "torch.nn."),
    ("torch.nn.modules.sparse.", "torch.nn."),
    ("torch.nn.modules.", "torch.nn."),
    ("torch.nn.utils.clip_grad.", "torch.nn.utils."),
    ("torch.nn.utils.rnn.", "torch.nn.utils.rnn."),
    ("torch.cuda.amp.grad_scaler.", "torch.amp."),
    ("torch.cuda.amp.", "torch.amp."),
    ("torch.amp.grad_scaler.", "torch.amp."),
    ("torch.optim.lr_scheduler.", "torch.optim.lr_scheduler."),
    ("pytorch_lightning.", "lightning.pytorch."),
    ("lightning.pytorch.trainer.trainer.", "lightning.pytorch."),
    ("lightning.", "lightning."),
    ("tensorflow.python.keras.", "tensorflow.keras."),
    ("tf_keras.", "keras."),
    ("tensorflow.keras.", "keras."),
)
_OPTIM_SUBMODULES = (
    "adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "sgd", "adagrad",
    "adadelta", "lbfgs", "asgd", "rprop", "sparse_adam",
)


@functools.lru_cache(maxsize=None)  # asked of the same few thousand names tens of thousands of times a run
def canonical(qualname: str) -> str:
    """Map private or legacy import paths onto the public name rules match on."""
    for prefix, replacement in _CANONICAL_PREFIXES:
        if qualname.startswith(prefix):
            qualname = replacement + qualname[len(prefix):]
            break
    if qualname.startswith("torch.optim."):
        parts = qualname.split(".")
        if len(parts) == 4 and parts[2] in _OPTIM_SUBMODULES:
            qualname = "torch.optim." + parts[3]
    if qualname.startswith("lightning.pytorch.") and qualname.endswith(".Trainer"):
        qualname = "lightning.pytorch.Trainer"
    return qualname


def dotted(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, None for anything else."""
    parts: list[str] = []
    # ``type(...) is``: libcst's node classes have no subclasses, and isinstance on them (abstract base
    # classes) costs several times more; rules ask this of a hundred thousand nodes in a large run
    while type(node) is cst.Attribute:
        parts.append(node.attr.value)
        node = node.value
    if type(node) is cst.Name:
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def _module_name(node: cst.BaseExpression | None) -> str:
    return dotted(node) or "" if node is not None else ""


class ImportMap:
    """Local name -> dotted name it was imported as, for one file."""

    def __init__(self, module: cst.Module | None = None) -> None:
        self.names: dict[str, str] = {}
        self.star_modules: list[str] = []
        if module is not None:
            collector = _ImportCollector(self)
            for node in _import_statements(module.body):
                collector.walk(node)

    def resolve(self, node: cst.BaseExpression) -> str | None:
        """The canonical dotted name an expression refers to, or None."""
        name = dotted(node)
        if name is None:
            return None
        return self.resolve_dotted(name)

    def resolve_dotted(self, name: str) -> str:
        head, _, rest = name.partition(".")
        target = self.names.get(head)
        if target is None:
            return canonical(name)
        return canonical(f"{target}.{rest}" if rest else target)

    def imports_from(self, *prefixes: str) -> bool:
        """True when any import of the file starts with one of ``prefixes``."""
        return any(
            q == p or q.startswith(p + ".")
            for q in list(self.names.values()) + self.star_modules
            for p in prefixes
        )


def _import_statements(body):
    """Import statements anywhere in the statement structure, without walking expressions.

    A full visitor walk of the tree costs about as much as parsing it; imports
    only ever appear as statements, so descending through statement bodies is
    enough (and much cheaper).
    """
    for stmt in body:
        if type(stmt) in _IMPORT_NODES:  # inside ``if x: import y``
            yield stmt
        elif type(stmt) is cst.SimpleStatementLine:
            for small in stmt.body:
                if type(small) in _IMPORT_NODES:
                    yield small
        else:
            for child in _bodies(stmt):
                yield from _import_statements(child)


_IMPORT_NODES = frozenset({cst.Import, cst.ImportFrom})  # compared by type, as in dotted()
_SUITES = frozenset({cst.IndentedBlock, cst.SimpleStatementSuite})


def _bodies(stmt: cst.CSTNode):
    """Statement lists directly inside a compound statement (if/else, try, with, def, class, ...)."""
    for name in ("body", "orelse", "finalbody", "handlers"):
        part = getattr(stmt, name, None)
        if isinstance(part, (list, tuple)):  # Try.handlers
            for handler in part:
                yield from _bodies(handler)
        elif type(part) in _SUITES:
            yield part.body
        elif type(part) is cst.If:  # elif
            yield [part]
        elif isinstance(part, cst.CSTNode):  # Else, Finally
            yield from _bodies(part)


class _ImportCollector(Visitor):
    def __init__(self, imports: ImportMap) -> None:
        self.imports = imports

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            full = dotted(alias.name) or ""
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.imports.names[alias.asname.name.value] = full
            else:
                head = full.split(".")[0]
                self.imports.names.setdefault(head, head)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        base = "." * len(node.relative) + _module_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            self.imports.star_modules.append(base)
            return False
        sep = "" if base.endswith(".") else "."
        for alias in node.names:
            name = dotted(alias.name) or ""
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.imports.names[local] = f"{base}{sep}{name}"
        return False


class ImportMapView(ImportMap):
    """An :class:`ImportMap` over a file summary's imports (``rnnlint.static.index.FileSummary``: its
    ``imports`` and ``star_modules``) instead of a parsed module."""

    def __init__(self, summary) -> None:
        super().__init__()
        self.names = summary.imports
        self.star_modules = summary.star_modules


def assigned_names(target: cst.BaseExpression) -> list[str]:
    """Dotted names bound by an assignment target (``out, (h, c)`` -> out, h, c)."""
    name = dotted(target)
    if name is not None:
        return [name]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for element in target.elements for n in assigned_names(element.value)]
    if isinstance(target, cst.StarredElement):
        return assigned_names(target.value)
    return []
