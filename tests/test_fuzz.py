"""Fuzzing ``check`` and ``fix --apply --unsafe-fixes`` with generated programs.

Three sources of programs:

* **mutated fixtures**: every fixture project, rewritten by a mutation that
  keeps its meaning (see :data:`MUTATIONS`); the findings must not change;
* **composed training scripts**: random but realistic training code built from
  fragments (models, optimizers, loops whose statements come in any order,
  AMP, packing, hidden-state carry-over), placed at module level, in a
  function or in a method, with LF or CRLF newlines;
* **hypothesmith**: syntactically valid Python from the grammar and from
  libcst's node types, put after a recurrent-training header so that the
  rules' text prefilter lets it through.

Generated files are written with LF or CRLF newlines, as UTF-8, UTF-8 with a
BOM, or latin-1 with a coding cookie. On every program the invariants of
:func:`check_project` hold: no crash and no "internal error", every written
file parses, keeps its mode, BOM, cookie and newline style, fixing twice
changes nothing, a file that is not fixed is never rewritten (same bytes, same
mtime), and what ``fix`` says remains is what ``check`` then finds.

Which mutations must keep the findings: all five here are meaning-preserving by
construction (each one refuses to apply where it could change meaning, e.g. a
name passed by keyword or imported by another file is never renamed). Renaming
and aliasing keep every line, so findings are compared as (code, line); the
other three move lines, so findings are compared as counts per rule code per
file. Mutations that change meaning (dropping a clip, swapping backward and
step) are not in this list: they belong to the rules' own examples.

This bounded run is part of the default test run (two mutations per project, 8
hypothesis examples per generator, 20 composed programs); the long run,
``python tests/benchmarks/fuzz_long.py --programs N``, applies every mutation to
every fixture project and then runs N random programs, with the same machinery.
"""

from __future__ import annotations

import ast
import os
import random
import shutil
import textwrap
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst
import pytest

from rnnlint.config import load_config
from rnnlint.static.registry import load_rules
from rnnlint.static.runner import Session, run
from rnnlint.source import read_source

from tests.helpers import generated_python, needs_hypothesmith, rnnlint_process

pytestmark = pytest.mark.slow  # each case runs the whole engine (and often the CLI) on many mutated projects

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
# every static rule, off-by-default ones included: the fuzzer should reach them all
STATIC_CODES = tuple(
    code for code, rule in load_rules(()).items() if "\x00graph-rule\x00" not in (rule.triggers or ())
)


# -- the invariants -------------------------------------------------------------


def static_config(root: Path):
    return replace(load_config([root]), select=STATIC_CODES, graph=False)


def make_session(root: Path) -> Session:
    return Session(static_config(root), use_cache=False)


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if ".rnnlint" not in p.name)


def _snapshot(path: Path) -> tuple[bytes, int, int]:
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_mode


def _parses(path: Path) -> str | None:
    """None when the file is valid Python for both parsers, else why not."""
    text = read_source(path).text
    try:
        cst.parse_module(text)
        ast.parse(text)
    except (cst.ParserSyntaxError, SyntaxError) as exc:
        return str(exc).splitlines()[0]
    return None


def _layout_changes(old: bytes, new: bytes) -> list[str]:
    """What a fix must keep: the BOM, the coding cookie, the newline style."""
    problems = []
    if old.startswith(b"\xef\xbb\xbf") != new.startswith(b"\xef\xbb\xbf"):
        problems.append("the fix added or dropped the BOM")
    if old.split(b"\n", 2)[:2] != new.split(b"\n", 2)[:2] and b"coding" in b"".join(old.split(b"\n", 2)[:2]):
        problems.append("the fix changed the coding cookie lines")
    crlf = old.count(b"\r\n")
    if crlf and crlf == old.count(b"\n") and new.count(b"\r\n") != new.count(b"\n"):
        problems.append("the fix mixed LF into a CRLF file")
    if not crlf and b"\r" not in old and b"\r" in new:
        problems.append("the fix put CR into an LF file")
    return problems


@dataclass
class Result:
    """What one program did: its findings before the fix, and every broken invariant."""

    codes: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # file -> [(code, line)]
    failures: list[str] = field(default_factory=list)
    written: int = 0

    def code_counts(self) -> dict[str, Counter]:
        return {name: Counter(code for code, _ in found) for name, found in self.codes.items()}


def check_project(root: Path, fix: bool = True) -> Result:
    """Check, fix, re-fix and re-check every Python file under ``root``, in-process."""
    result = Result()
    files = python_files(root)

    def fail(path: Path, what: str) -> None:
        result.failures.append(f"{path.relative_to(root)}: {what}")

    session = make_session(root)
    for path in files:
        try:
            outcome = session.check(path)
        except Exception as exc:  # noqa: BLE001 - a crash is what we look for
            fail(path, f"check crashed: {type(exc).__name__}: {exc}")
            continue
        for message in outcome.messages:
            fail(path, f"check said: {message}")
        result.codes[path.relative_to(root).as_posix()] = [(d.code, d.line) for d in outcome.diagnostics]
    if not fix:
        return result

    before = {path: _snapshot(path) for path in files}
    remaining = {}
    # the whole project in one run, as ``fix --apply`` does it (what remains is settled over the written project)
    for path, outcome in zip(files, run(files, static_config(root), mode="fix", write=True, unsafe=True, jobs=1,
                                        use_cache=False)):
        if any("internal error" in message for message in outcome.messages):
            fail(path, f"fix crashed: {outcome.messages}")
            continue
        for message in outcome.messages:
            fail(path, f"fix said: {message}")
        remaining[path] = sorted((d.code, d.line) for d in outcome.diagnostics)
        if outcome.written:
            result.written += 1
            if not outcome.fixed:
                fail(path, "written although no finding was fixed")
            why = _parses(path)
            if why is not None:
                fail(path, f"the fixed file does not parse: {why}")
            if path.stat().st_mode != before[path][2]:
                fail(path, "file mode changed by the fix")
            for problem in _layout_changes(before[path][0], path.read_bytes()):
                fail(path, problem)
        elif _snapshot(path) != before[path]:
            fail(path, "not fixed, yet its bytes or mtime changed")
        if not result.codes.get(path.relative_to(root).as_posix()) and outcome.written:
            fail(path, "a file without findings was rewritten")

    session = make_session(root)
    for path in files:
        if path not in remaining:
            continue
        try:
            again = session.fix(path, write=False, unsafe=True)
            after = session.check(path)
        except Exception as exc:  # noqa: BLE001
            fail(path, f"second fix crashed: {type(exc).__name__}: {exc}")
            continue
        if again.diff:
            fail(path, "fixing twice changes the file again:\n" + again.diff)
        found = sorted((d.code, d.line) for d in after.diagnostics)
        if found != remaining[path]:
            fail(path, f"fix said {remaining[path]} remain, check then finds {found}")
    return result


def check_text(directory: Path, text: str, name: str = "train.py", newline: str = "\n",
               encoding: str = "utf-8") -> Result:
    """One generated program as the only file of a fresh project.

    ``encoding``: ``utf-8``, ``utf-8-sig`` (a BOM) or ``latin-1`` (a coding cookie is added).
    """
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    if encoding == "latin-1":
        text = "# -*- coding: latin-1 -*-\n# données: Zoë\n" + text
    (directory / name).write_bytes(text.replace("\n", newline).encode(encoding, errors="replace"))
    return check_project(directory)


# -- name analysis (ast: cheap, and enough to decide what a mutation may touch) --


def _bound_names(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in sub.names)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _project_facts(texts: dict[str, str]) -> tuple[set[str], set[str]]:
    """Names other files may depend on: imported by name from a project module, or passed as keywords."""
    modules = {part.removesuffix(".py") for name in texts for part in Path(name).parts}
    imported, keywords = set(), set()
    for text in texts.values():
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in modules):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.keyword) and node.arg:
                keywords.add(node.arg)
    return imported, keywords


# -- mutations ------------------------------------------------------------------


class _Renamer(cst.CSTTransformer):
    """Rename variables everywhere they are a plain name: never an attribute,
    a keyword argument, or a name inside an import statement (handled apart)."""

    def __init__(self, mapping: dict[str, str], alias_imports: bool = False) -> None:
        self.mapping = mapping
        self.alias_imports = alias_imports

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(attr=original.attr)  # only the value side holds plain names

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)  # keywords keep their names

    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False

    def _alias(self, updated):
        if not self.alias_imports or isinstance(updated.names, cst.ImportStar):
            return updated
        names = []
        for alias in updated.names:
            bound = alias.asname.name.value if alias.asname else None
            if bound is None and isinstance(alias.name, cst.Name):
                bound = alias.name.value
            if bound in self.mapping:
                alias = alias.with_changes(asname=cst.AsName(name=cst.Name(self.mapping[bound])))
            names.append(alias)
        return updated.with_changes(names=names)

    def leave_Import(self, original, updated):
        return self._alias(updated)

    def leave_ImportFrom(self, original, updated):
        return self._alias(updated)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        new = self.mapping.get(original.value)
        return updated.with_changes(value=new) if new else updated


def _rename(text: str, mapping: dict[str, str], alias_imports: bool = False) -> str:
    return cst.parse_module(text).visit(_Renamer(mapping, alias_imports)).code


def rename_variables(texts: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """``model``/``optimizer``/``loss`` (and friends) get other names: same meaning, same findings.

    A name is left alone where renaming could change meaning: it is bound by an
    import in that file, imported from another file, or passed as a keyword.
    """
    imported, keywords = _project_facts(texts)
    candidates = ["model", "optimizer", "loss", "criterion", "opt", "hidden", "scaler", "net"]
    out, changed = {}, False
    for name, text in texts.items():
        tree = ast.parse(text)
        import_bound = {
            (a.asname or a.name).split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names
        }
        mapping = {
            c: f"{c}_{rng.choice(['x', 'renamed', 'z9'])}"
            for c in candidates
            if c not in imported and c not in keywords and c not in import_bound
            and f"{c}_" not in text and c in _loaded_names(tree) | _bound_names(tree)
        }
        out[name] = _rename(text, mapping) if mapping else text
        changed = changed or out[name] != text
    return out if changed else None


def alias_imports(texts: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """``import torch.nn as nn`` -> ``... as tnn_a``, ``from torch import optim`` -> ``... as optim_a``
    and every use renamed: same meaning, same findings, at the same lines."""
    imported, keywords = _project_facts(texts)
    out, changed = {}, False
    for name, text in texts.items():
        tree = ast.parse(text)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.asname for a in node.names if a.asname)
                targets.update(a.name for a in node.names if not a.asname and "." not in a.name)
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                targets.update(a.asname or a.name for a in node.names if a.name != "*")
        # a name also bound otherwise (a parameter, an assignment) would be renamed there too: fine,
        # but not when callers pass it by keyword or other files import it from here
        mapping = {t: f"{t}_a{rng.randint(0, 9)}" for t in targets if t not in keywords and t not in imported
                   and f"{t}_a" not in text}
        if not mapping:
            out[name] = text
            continue
        out[name] = _rename(text, mapping, alias_imports=True)
        changed = changed or out[name] != text
    return out if changed else None


def _is_definition(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
        return False
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return not stmt.decorator_list
    return isinstance(stmt, (ast.Import, ast.ImportFrom))


def reorder_definitions(texts: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """Shuffle adjacent top-level imports/defs/classes that do not refer to each other.

    Same meaning; lines move, so findings are compared per rule code, not per line.
    """
    out, changed = {}, False
    for name, text in texts.items():
        module = cst.parse_module(text)
        tree = ast.parse(text)
        if len(tree.body) != len(module.body):
            out[name] = text  # a `a; b` line: libcst and ast disagree on statements
            continue
        body = list(module.body)
        stmts = list(tree.body)
        for _ in range(len(body) * 2):
            i = rng.randrange(max(1, len(body) - 1))
            if i + 1 >= len(body):
                break
            a, b = stmts[i], stmts[i + 1]
            if not (_is_definition(a) and _is_definition(b)):
                continue
            ba = {a.name} if isinstance(a, (ast.FunctionDef, ast.ClassDef)) else _bound_names(a)
            bb = {b.name} if isinstance(b, (ast.FunctionDef, ast.ClassDef)) else _bound_names(b)
            if ba & bb or ba & _loaded_names(b) or bb & _loaded_names(a):
                continue
            body[i], body[i + 1] = body[i + 1], body[i]
            stmts[i], stmts[i + 1] = stmts[i + 1], stmts[i]
        new = module.with_changes(body=body).code
        # a leading comment/docstring owned by the first statement may move with it: keep it valid
        out[name] = new if _valid(new) else text
        changed = changed or out[name] != text
    return out if changed else None


def _valid(text: str) -> bool:
    try:
        ast.parse(text)
        cst.parse_module(text)
    except (SyntaxError, cst.ParserSyntaxError):
        return False
    return True


def _split_head(tree: ast.Module) -> int:
    """Index of the first top-level statement that is not a docstring, import, def or class."""
    for i, stmt in enumerate(tree.body):
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in stmt.targets):
            continue  # module constants stay module constants
        return i
    return len(tree.body)


def wrap_in_function(texts: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """Module-level training code moves into ``def _fuzz_main(): ...`` called at the end.

    Only when nothing defined before it, and no other file, reads a name it binds:
    then the program means the same, and the rules (which work in functions as at
    module level) should report the same codes.
    """
    imported, _ = _project_facts(texts)
    out, changed = {}, False
    for name, text in texts.items():
        tree = ast.parse(text)
        module = cst.parse_module(text)
        k = _split_head(tree)
        rest = tree.body[k:]
        if not rest or len(tree.body) != len(module.body):
            out[name] = text
            continue
        bound = set().union(*(_bound_names(s) for s in rest))
        head_reads = set().union(set(), *(_loaded_names(s) for s in tree.body[:k]))
        if bound & head_reads or bound & imported or any(
            isinstance(n, (ast.Global, ast.Nonlocal, ast.Return, ast.Yield, ast.YieldFrom, ast.Await))
            for s in rest for n in ast.walk(s)
        ):
            out[name] = text
            continue
        inner = cst.parse_module("").with_changes(body=module.body[k:]).code
        function = f"def _fuzz_main():\n{textwrap.indent(inner, '    ')}\n\n_fuzz_main()\n"
        head = module.with_changes(body=module.body[:k], footer=()).code
        new = head + ("\n\n" if head.strip() else "") + function
        if not _valid(new):  # a multi-line string whose indentation matters: skip
            out[name] = text
            continue
        out[name] = new
        changed = True
    return out if changed else None


def functions_into_classes(texts: dict[str, str], rng: random.Random) -> dict[str, str] | None:
    """Each top-level function ``f`` becomes a static method of a class, and ``f = _Fz_f.f``.

    Same meaning: the body runs with the same globals; only call sites see an alias.
    """
    out, changed = {}, False
    for name, text in texts.items():
        module = cst.parse_module(text)
        body = []
        for stmt in module.body:
            if isinstance(stmt, cst.FunctionDef) and not stmt.decorators and stmt.asynchronous is None \
                    and rng.random() < 0.7:
                fname = stmt.name.value
                method = stmt.with_changes(
                    decorators=[cst.Decorator(cst.Name("staticmethod"))], leading_lines=()
                )
                cls = cst.ClassDef(
                    name=cst.Name(f"_Fz_{fname}"),
                    body=cst.IndentedBlock([method]),
                    leading_lines=stmt.leading_lines,
                )
                body.append(cls)
                body.append(cst.parse_statement(f"{fname} = _Fz_{fname}.{fname}\n"))
            else:
                body.append(stmt)
        new = module.with_changes(body=body).code
        out[name] = new if _valid(new) else text
        changed = changed or out[name] != text
    return out if changed else None


@dataclass(frozen=True)
class Mutation:
    name: str
    apply: object
    # True: the program means the same, so the findings must be the same rule codes;
    # lines_kept: and at the same lines
    preserves: bool
    lines_kept: bool = False


MUTATIONS = (
    Mutation("rename-variables", rename_variables, preserves=True, lines_kept=True),
    Mutation("alias-imports", alias_imports, preserves=True, lines_kept=True),
    Mutation("reorder-definitions", reorder_definitions, preserves=True),
    Mutation("wrap-in-function", wrap_in_function, preserves=True),
    Mutation("functions-into-classes", functions_into_classes, preserves=True),
)


def fixture_projects() -> list[Path]:
    """Each fixture project: a folder holding Python files, fixed twins left out."""
    roots = set()
    for path in FIXTURES.rglob("*.py"):
        rel = path.relative_to(FIXTURES).parts
        depth = 2 if rel[0] in ("graph", "verify") else 1
        roots.add(FIXTURES.joinpath(*rel[:depth]))
    return sorted(roots)


def copy_project(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*_fixed.py", "*.ipynb", "__pycache__"))
    return target


def mutate_project(root: Path, mutation: Mutation, rng: random.Random) -> bool:
    """Apply ``mutation`` to the project's files in place; False when it did not apply."""
    files = python_files(root)
    texts = {p.relative_to(root).as_posix(): p.read_text("utf-8") for p in files}
    mutated = mutation.apply(texts, rng)
    if mutated is None:
        return False
    for rel, text in mutated.items():
        if text != texts[rel]:
            (root / rel).write_text(text, "utf-8")
    return True


def compare_findings(original: Result, mutated: Result, mutation: Mutation) -> list[str]:
    problems = []
    if mutation.lines_kept:
        for name, found in original.codes.items():
            if sorted(found) != sorted(mutated.codes.get(name, [])):
                problems.append(f"{name}: {mutation.name} changed findings {sorted(found)} -> "
                                f"{sorted(mutated.codes.get(name, []))}")
    else:
        counts, new_counts = original.code_counts(), mutated.code_counts()
        for name, count in counts.items():
            if count != new_counts.get(name, Counter()):
                problems.append(f"{name}: {mutation.name} changed findings {dict(count)} -> "
                                f"{dict(new_counts.get(name, Counter()))}")
    return problems


# -- composed training scripts ----------------------------------------------------

_IMPORTS = [
    "import torch\nimport torch.nn as nn\nimport torch.optim as optim\n",
    "import torch\nimport torch.nn as tnn\nfrom torch import optim as O\n",
    "import torch\nfrom torch import nn, optim\nfrom torch.nn.utils import clip_grad_norm_ as clip\n",
    "import torch\nfrom torch.nn import LSTM, GRU, RNN, CrossEntropyLoss\nfrom torch.optim import Adam, SGD\n",
]


def _names(header: str) -> dict:
    nn = "tnn" if "as tnn" in header else "nn"
    direct = "from torch.nn import LSTM" in header
    return {
        "layer": (lambda kind: kind) if direct else (lambda kind: f"{nn}.{kind}"),
        "clip": "clip" if "as clip" in header else "torch.nn.utils.clip_grad_norm_",
        "ce": "CrossEntropyLoss" if direct else f"{nn}.CrossEntropyLoss",
        "nn": nn,
    }


def compose_program(rng: random.Random) -> tuple[str, str]:
    """A random, realistic recurrent training script, and the newline it should be written with."""
    header = rng.choice(_IMPORTS)
    n = _names(header)
    kind = rng.choice(["LSTM", "GRU", "RNN", "LSTM"])
    kwargs = []
    if rng.random() < 0.5:
        kwargs.append(f"num_layers={rng.choice([1, 2, 3])}")
    if rng.random() < 0.5:
        kwargs.append(f"dropout={rng.choice([0, 0.2, 0.5])}")
    if rng.random() < 0.2:
        kwargs.append(rng.choice(["peephole=True", "activation='relu'", "recurrent_dropout=0.1"]))
    if rng.random() < 0.5:
        kwargs.append("batch_first=True")
    layer = f"{n['layer'](kind)}(16, 32{''.join(', ' + k for k in kwargs)})"
    if rng.random() < 0.5:
        model_def = textwrap.dedent(f"""
            class Net({n['nn']}.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = {layer}
                    self.head = {n['nn']}.Linear(32, 10)

                def forward(self, x, h=None):
                    out, h = self.rnn(x, h)
                    return self.head(out), h


            """)
        make_model = "Net()"
    else:
        model_def = ""
        make_model = layer
    opt_kind = rng.choice(["Adam", "SGD", "RMSprop", "AdamW"])
    if "from torch.optim import Adam, SGD" in header and opt_kind not in ("Adam", "SGD"):
        opt_call = f"torch.optim.{opt_kind}"
    elif "from torch.optim import Adam, SGD" in header:
        opt_call = opt_kind
    else:
        opt_call = f"{'O' if 'as O' in header else 'optim'}.{opt_kind}"
    lr = rng.choice(["1e-3", "0.01", "0.1", "1.0", "2.5", "LR"])
    setup = [f"model = {make_model}", f"optimizer = {opt_call}(model.parameters(), lr={lr})",
             f"criterion = {n['ce']}({rng.choice(['', 'ignore_index=0'])})"]
    if lr == "LR":
        setup.insert(0, f"LR = {rng.choice(['0.5', '1e-4'])}")
    amp = rng.random() < 0.25
    if amp:
        setup.append("scaler = torch.cuda.amp.GradScaler()")
    if rng.random() < 0.3:
        setup.append("scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)")
    carry = rng.random() < 0.4
    if carry:
        setup.append("hidden = None")
    packing = rng.random() < 0.3
    # the loop body: statements in a random (sometimes wrong) order
    forward = "output, hidden = model(x, hidden)" if carry else "output, _ = model(x)"
    if packing:
        forward = (
            "lengths = lengths.to(device)\n"
            "x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True"
            + rng.choice([")", ", enforce_sorted=False)"]) + "\n" + forward
        )
    core = [forward, "loss = criterion(output.flatten(0, 1), y.flatten())"]
    backward = "scaler.scale(loss).backward()" if amp else "loss.backward()"
    step = ["scaler.step(optimizer)", "scaler.update()"] if amp else ["optimizer.step()"]
    optional = {
        "zero": "optimizer.zero_grad()",
        "clip": f"{n['clip']}(model.parameters(), {rng.choice(['1.0', 'max_norm=5.0'])})",
        "unscale": "scaler.unscale_(optimizer)",
        "sched": "scheduler.step()",
        "detach": "hidden = hidden.detach()" if carry else "pass",
        "noqa": "pass  # noqa",
    }
    body = list(core) + [backward] + step
    for key, stmt in optional.items():
        if rng.random() < 0.5 and (key != "unscale" or amp) and (key != "sched" or "scheduler" in "".join(setup)):
            body.insert(rng.randrange(len(body) + 1), stmt)
    if rng.random() < 0.15:
        body.append("a = 1; b = 2")
    if rng.random() < 0.1:
        rng.shuffle(body)
    if rng.random() < 0.15:  # two statements on one line: fixes that insert lines must cope
        i = rng.randrange(len(body) - 1)
        if "\n" not in body[i] + body[i + 1] and "#" not in body[i]:
            body[i:i + 2] = [body[i] + "; " + body[i + 1]]
    if rng.random() < 0.1:  # a call over several lines
        body = [b.replace("(model.parameters(), ", "(\n    model.parameters(),\n    ") for b in body]
    loop_header = rng.choice([
        "for x, y in loader:",
        "for x, y, lengths in loader:",
        "for epoch in range(10):\n    for x, y in loader:",
        "while True:",
    ])
    depth = loop_header.count(":")
    loop = loop_header + "\n" + textwrap.indent("\n".join(body), "    " * depth)
    if rng.random() < 0.2:
        loop = "with torch.autocast('cuda'):\n" + textwrap.indent(loop, "    ")
    place = rng.choice(["module", "function", "method", "nested"])
    code = "\n".join(setup) + "\n" + loop
    if place == "function":
        code = "def train(loader, device):\n" + textwrap.indent(code, "    ") + "\n"
    elif place == "method":
        code = ("class Trainer:\n    def fit(self, loader, device):\n"
                + textwrap.indent(code.replace("model", "self.model") if rng.random() < 0.5 else code, "        "))
    elif place == "nested":
        code = ("def main():\n    def inner(loader, device):\n" + textwrap.indent(code, "        ")
                + "\n    return inner\n")
    program = surface_noise(header + "\n" + model_def + code, rng)
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    return program, newline


def pick_encoding(rng: random.Random) -> str:
    return rng.choice(["utf-8"] * 6 + ["utf-8-sig", "latin-1"])


def surface_noise(program: str, rng: random.Random) -> str:
    """Same program, other layout: indentation unit, comments, blank lines, final newline."""
    unit = rng.choice(["    ", "    ", "  ", "\t"])
    lines = []
    for line in program.split("\n"):
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 4
        line = unit * depth + stripped
        if stripped and rng.random() < 0.08:
            line += rng.choice(["  # note", "  # noqa: RNN999", "  # type: ignore"])
        lines.append(line)
        if stripped and rng.random() < 0.05:
            lines.append(unit * depth + "# a comment line" if rng.random() < 0.5 else "")
    program = "\n".join(lines).rstrip("\n")
    return program + ("\n" if rng.random() < 0.85 else "")


# -- hypothesmith -----------------------------------------------------------------

RNN_HEADER = (
    "import torch\nimport torch.nn as nn\nfrom torch import optim\n"
    "model = nn.LSTM(8, 8, dropout=0.5)\noptimizer = optim.Adam(model.parameters(), lr=0.5)\n"
)
RNN_LOOP = "for x, y in loader:\n    out, h = model(x)\n    loss = out.sum()\n    loss.backward()\n    optimizer.step()\n"


def embed_generated(source: str, where: str) -> str | None:
    """Put generated code where the rules look: after the header, or inside the training loop."""
    if where == "after":
        program = RNN_HEADER + source + ("\n" if not source.endswith("\n") else "") + RNN_LOOP
    else:
        indented = textwrap.indent(source, "    ") or "    pass\n"
        program = RNN_HEADER + "for x, y in loader:\n" + indented + ("\n" if not indented.endswith("\n") else "") \
            + "    loss.backward()\n    optimizer.step()\n"
    return program if _valid(program) else None


# -- the bounded run (part of the default test run) --------------------------------


def _report(failures: list[str]) -> str:
    return "\n".join(failures[:20]) + (f"\n... and {len(failures) - 20} more" if len(failures) > 20 else "")


PROJECTS = fixture_projects()


# CI applies this many of the five mutations to each project, a different pair for each project so that
# every mutation runs on several; ``tests/benchmarks/fuzz_long.py`` applies all five to every project.
MUTATIONS_PER_PROJECT = 2


def rotated(items: tuple, start: int) -> list:
    return [items[(start + k) % len(items)] for k in range(len(items))]


def mutate_and_check(project: Path, work: Path, mutations: list, rng: random.Random,
                     limit: int | None = None) -> list[str]:
    """The project's own findings, then each of ``mutations`` that applies (at most ``limit``) checked
    against them; the first one applied also goes through the fix invariants."""
    original = check_project(copy_project(project, work / "original"), fix=False)
    if original.failures:
        return [f"unmutated: {f}" for f in original.failures]
    problems, applied = [], 0
    for mutation in mutations:
        if applied == limit:
            break
        root = copy_project(project, work / mutation.name)
        if not mutate_project(root, mutation, rng):
            continue  # does not apply here: the next one takes its place
        mutated = check_project(root, fix=applied == 0)
        applied += 1
        problems += [f"{mutation.name}: {f}" for f in mutated.failures]
        if mutation.preserves:
            problems += compare_findings(original, mutated, mutation)
    return problems


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.relative_to(FIXTURES).as_posix())
def test_mutated_fixtures_keep_their_findings_and_fix_cleanly(project, tmp_path):
    """Two mutations per project, rotating through the five so that each runs on several projects (and each
    goes through the fix invariants on some); the long run, ``python tests/benchmarks/fuzz_long.py``, applies
    every mutation to every project before its random programs."""
    mutations = rotated(MUTATIONS, PROJECTS.index(project))
    problems = mutate_and_check(project, tmp_path, mutations, random.Random(project.name), MUTATIONS_PER_PROJECT)
    assert not problems, _report(problems)


def test_composed_training_scripts(tmp_path):
    rng = random.Random(20240601)
    failures = []
    for i in range(20):  # the long run composes many more
        program, newline = compose_program(rng)
        result = check_text(tmp_path / f"p{i % 4}", program, newline=newline, encoding=pick_encoding(rng))
        failures += [f"program {i}:\n{program}\n-> {f}" for f in result.failures]
    assert not failures, _report(failures)


from hypothesis import HealthCheck, assume, given, settings, strategies as st  # noqa: E402

FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("RNNLINT_FUZZ_EXAMPLES", "8")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@needs_hypothesmith
@FUZZ_SETTINGS
@given(source=generated_python("from_node"), where=st.sampled_from(["after", "loop"]))
def test_hypothesmith_from_node(tmp_path_factory, source, where):
    program = embed_generated(source, where)
    assume(program is not None)
    result = check_text(tmp_path_factory.mktemp("node"), program)
    assert not result.failures, program + "\n" + _report(result.failures)


@needs_hypothesmith
@FUZZ_SETTINGS
@given(source=generated_python("from_grammar"),
       where=st.sampled_from(["after", "loop"]))
def test_hypothesmith_from_grammar(tmp_path_factory, source, where):
    program = embed_generated(source, where)
    assume(program is not None)
    result = check_text(tmp_path_factory.mktemp("grammar"), program)
    assert not result.failures, program + "\n" + _report(result.failures)


def test_generated_programs_through_the_real_cli(tmp_path):
    """A few programs through ``python -m rnnlint``: exit 0/1, no traceback, fixed files parse."""
    rng = random.Random(7)
    for i in range(12):
        program, newline = compose_program(rng)
        (tmp_path / f"train_{i}.py").write_bytes(program.replace("\n", newline).encode())
    (tmp_path / "clean.py").write_text("import torch\nx = torch.zeros(3)\n")
    clean_before = _snapshot(tmp_path / "clean.py")
    check = rnnlint_process("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert check.returncode in (0, 1) and "Traceback" not in check.stderr and "internal error" not in check.stderr
    fixed = rnnlint_process("fix", "--static", "--no-cache", "--apply", "--unsafe-fixes", ".", cwd=tmp_path)
    assert fixed.returncode in (0, 1), fixed.stderr
    assert "Traceback" not in fixed.stderr and "error" not in fixed.stderr, fixed.stderr
    for path in python_files(tmp_path):
        assert _parses(path) is None, path
    assert _snapshot(tmp_path / "clean.py") == clean_before
    again = rnnlint_process("fix", "--static", "--no-cache", "--unsafe-fixes", ".", cwd=tmp_path)
    assert "+++ b/" not in again.stdout and "Nothing to fix" in again.stderr  # no diff: what remains is listed
