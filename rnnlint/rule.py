"""What a rule is, and what it can see.

A rule is one class in the rule pack (``rules/``). Like a Fixit rule it is a
libcst visitor: it defines ``visit_<Node>`` / ``leave_<Node>`` methods, and the
runner walks each file's tree once, calling every enabled rule's methods for
each node. ``finish()`` runs after the walk for rules that reason about the
whole file. A rule reports with :meth:`Rule.report`; where it can repair the
code it attaches edits built from nodes (``replace``, ``insert_before``, ...);
the runner turns those into text edits once positions are known.

The class carries its own documentation and its own examples:

* the docstring is what ``rnnlint explain`` prints (what, why, example, fix safety);
* ``VALID`` snippets must produce no finding at all (and must parse);
* ``INVALID`` examples (:class:`Invalid`) must produce exactly the findings
  they list, on the lines they list, and ``fix --unsafe-fixes`` must turn the
  snippet into exactly their ``fixed`` text (or, without one, change nothing).

The test suite runs every rule's examples.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from rnnlint.diagnostics import Applicability, Severity

if TYPE_CHECKING:  # libcst is imported by what parses (analysis, the rules), not by what only selects rules
    import libcst as cst

    from rnnlint.static.index import ProjectIndex

#: words that make a definition recurrent for the built-in rules: substrings, so that ``LSTMCell``,
#: ``SimpleRNN``, ``CuDNNGRU`` and ``ConvLSTM2D`` count too
RECURRENT_WORDS = ("RNN", "LSTM", "GRU")

_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)  # a reST inline literal in a rule's docstring


@dataclass(frozen=True)
class Option:
    """A rule option read from ``[tool.rnnlint.<rule-name>]``.

    Numbers are checked for meaning, not only type: always finite (``nan`` and
    ``inf`` are TOML floats), and within ``minimum`` / ``maximum`` when given
    (``exclusive_minimum``: strictly above the minimum). A clip norm of ``-1``
    would make the safe fix write nonsense; a timeout of 0 would turn every
    finding into a note.
    """

    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False

    def allowed(self) -> str:
        """What a value may be, in words: ``"a finite number > 0"``."""
        if isinstance(self.default, bool):
            return "true or false"
        if isinstance(self.default, (list, tuple)):
            return "a list of strings"
        if isinstance(self.default, str):
            return "a string"
        what = "an integer" if isinstance(self.default, int) else "a finite number"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {_number(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"<= {_number(self.maximum)}")
        return what + (" " + " and ".join(bounds) if bounds else "")

    def check(self, key: str, value: Any) -> Any:
        """Validate a configured value; raise ValueError naming ``key``, the value and what is allowed."""
        expected = type(self.default)
        problem = ValueError(f"{key} must be {self.allowed()}, got {value!r}")
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(self.default, (list, tuple)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise problem
            return tuple(value)
        if not isinstance(value, expected) or isinstance(value, bool) != isinstance(self.default, bool):
            raise problem
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise problem
            if self.minimum is not None and (
                value < self.minimum or (self.exclusive_minimum and value == self.minimum)
            ):
                raise problem
            if self.maximum is not None and value > self.maximum:
                raise problem
        return value


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Invalid:
    """An example that must be reported, exactly so (the harness in tests/ checks each part).

    ``lines``: the line of every finding of the rule in ``code``, in order, so
    also how many there are (``[3, 3]``: two findings on line 3). ``fixed``:
    the text ``rnnlint fix --unsafe-fixes`` makes of ``code``; left out, it
    states that the example has no fix to apply, and fixing must change
    nothing. ``files`` adds other files of a small project (path -> source) so
    that project-aware behaviour (a model defined in another module) is tested
    too; only ``code`` (the project's ``train.py``) is checked.
    """

    code: str
    lines: tuple[int, ...] = ()
    fixed: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))  # written as a list in the rule files


@dataclass(frozen=True)
class Valid:
    code: str
    files: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


# -- symbolic edits: resolved to text edits once positions are known ----------


@dataclass(frozen=True)
class NodeEdit:
    kind: str  # "replace" | "insert_before" | "insert_after" | "delete_statement" | "add_arg" | "remove_arg"
    node: cst.CSTNode
    text: str = ""
    part: cst.CSTNode | None = None  # remove_arg: the argument of ``node`` to remove


def replace(node: cst.CSTNode, new: cst.CSTNode | str) -> NodeEdit:
    """Replace ``node`` by ``new`` (a node, rendered with the file's own style, or text)."""
    if isinstance(new, str):
        return NodeEdit("replace", node, new)
    import libcst as cst

    text = cst.Module(body=[]).code_for_node(new)
    return NodeEdit("replace", node, text)


def insert_before(statement: cst.CSTNode, text: str) -> NodeEdit:
    """Insert whole lines of code before ``statement``, at its indentation."""
    return NodeEdit("insert_before", statement, text)


def insert_after(statement: cst.CSTNode, text: str) -> NodeEdit:
    """Insert whole lines of code after ``statement``, at its indentation."""
    return NodeEdit("insert_after", statement, text)


def delete_statement(statement: cst.CSTNode) -> NodeEdit:
    """Remove the lines of a statement that stands on lines of its own."""
    return NodeEdit("delete_statement", statement)


def add_arg(call: cst.Call, text: str) -> NodeEdit:
    """Append an argument (``"gradient_clip_val=1.0"``) to a call, in the call's own layout.

    Done on text, not by re-rendering the call, so that a call spread over
    several lines inside an indented block keeps its indentation.
    """
    return NodeEdit("add_arg", call, text)


def remove_arg(call: cst.Call, arg: cst.Arg) -> NodeEdit:
    """Remove one argument of a call, with its comma.

    Done on text, not by re-rendering the call: a rendered call loses the
    indentation of its continuation lines, so every line of a multi-line call
    inside an indented block would change.
    """
    return NodeEdit("remove_arg", call, part=arg)


@dataclass
class Report:
    """A finding as a rule makes it, before positions are resolved."""

    rule: "Rule"
    node: cst.CSTNode
    message: str
    fix_message: str | None
    edits: tuple[NodeEdit, ...]
    applicability: Applicability | None
    imports: tuple[str, ...]
    related: tuple = ()  # Related locations: where the value came from


class FileContext:
    """Everything a rule may look at for one file.

    Computed once per file and shared by all rules: the parsed module, its import
    map (to resolve aliases), the project index, and the configured options.
    """

    def __init__(self, path: Path, text: str, module: cst.Module, index: "ProjectIndex") -> None:
        from rnnlint.names import ImportMap

        self.path = path
        self.text = text
        self.module = module
        self.imports = ImportMap(module)
        self.index = index
        index.add(path, module, self.imports)
        self._memo: dict[str, Any] = {}

    def qualname(self, node: cst.BaseExpression) -> str | None:
        """Canonical dotted name of ``node`` (``tnn.LSTM`` -> ``torch.nn.LSTM``)."""
        return self.imports.resolve(node)

    def is_recurrent(self, name: str) -> bool:
        """Does calling ``name`` (as written in this file) build a recurrent module?"""
        return self.index.is_recurrent(self.path, name)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Share an expensive per-file analysis between rules."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class Rule:
    """Base class of every rule. Subclasses set the class attributes below."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    default_enabled: ClassVar[bool] = True
    #: applicability of the rule's fix; None when the rule never fixes
    fix_applicability: ClassVar[Applicability | None] = None
    #: cheap text prefilter: the rule runs on a file containing one of these
    #: strings; an entry that is itself a tuple needs all of its strings
    triggers: ClassVar[tuple] = ()
    #: what makes a file matter to this rule (see :mod:`rnnlint.static.projectmap`): a definition whose code
    #: holds one of these words (substrings: ``LSTM`` covers ``LSTMCell`` and ``ConvLSTM2D``) is
    #: recurrent, and the rule reads only the files that build, use, train or feed a recurrent
    #: definition; every other file is mapped and skipped. None: the rule reads every file its
    #: triggers pass (a rule about something other than recurrent models).
    relevant_words: ClassVar[tuple[str, ...] | None] = RECURRENT_WORDS
    options: ClassVar[dict[str, Option]] = {}
    VALID: ClassVar[list] = []
    INVALID: ClassVar[list] = []

    def __init__(self, ctx: FileContext, options: dict[str, Any], reports: list[Report]) -> None:
        self.ctx = ctx
        self.settings = options
        self._reports = reports

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        fix: str | None = None,
        edits: Iterable[NodeEdit] = (),
        applicability: Applicability | None = None,
        imports: Iterable[str] = (),
        related: Iterable = (),
    ) -> None:
        """Report a finding at ``node``.

        ``fix`` describes the repair ("Insert clip_grad_norm_ before step()"),
        ``edits`` make it, ``imports`` are ``import x`` / ``from x import y``
        lines the edits need (added once, after the file's last top import), ``related`` the
        :class:`~rnnlint.diagnostics.Related` places the value came through (for JSON and SARIF).
        """
        edits = tuple(edits)
        self._reports.append(
            Report(
                rule=self,
                node=node,
                message=message,
                fix_message=fix if edits else None,
                edits=edits,
                applicability=(applicability or self.fix_applicability) if edits else None,
                imports=tuple(imports),
                related=tuple(related),
            )
        )

    def finish(self) -> None:
        """Called after the walk; override for whole-file reasoning."""

    @classmethod
    def wants(cls, text: str) -> bool:
        """Could this rule report anything in ``text``? (No parse needed.)"""
        return triggered(cls.triggers, text)

    # -- documentation -----------------------------------------------------

    @classmethod
    def doc(cls) -> str:
        """The docstring as users read it (``rnnlint rules``/``explain``, SARIF): reST's
        double-backtick literals become Markdown's single ones, which read as code in a
        terminal and render as code on GitHub."""
        import inspect

        return _LITERAL.sub(r"`\1`", inspect.cleandoc(cls.__doc__ or ""))

    @classmethod
    def summary(cls) -> str:
        return cls.doc().split("\n", 1)[0]

    @classmethod
    def fixable(cls) -> bool:
        return cls.fix_applicability is not None

    @classmethod
    def visitor_methods(cls) -> dict[str, str]:
        """``{"visit_Call": "visit_Call", ...}``: the node hooks this rule defines."""
        return {
            name: name
            for name in dir(cls)
            if (name.startswith("visit_") or name.startswith("leave_")) and callable(getattr(cls, name))
        }


def triggered(triggers: tuple, text) -> bool:
    """Does ``text`` pass a rule's ``triggers`` (see :attr:`Rule.triggers`)? ``text`` may also be the set
    of trigger strings a text holds (the runner looks for each once per file)."""
    if not triggers:
        return True
    return any((t in text) if isinstance(t, str) else all(part in text for part in t) for t in triggers)


def dedent(code: str) -> str:
    """Examples are written indented inside the class; this makes them files."""
    import textwrap  # the examples' reader (docs, tests) needs it, a run does not

    return textwrap.dedent(code).lstrip("\n")
