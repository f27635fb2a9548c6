"""What keeps the static stage fast, as a user would notice it (the figures are in tests/benchmarks/).

* ``rnnlint --help``, ``check`` of a file no rule can report in, and a fully
  warm run import neither libcst nor the rules: each costs about 0.2 s, more
  than the rest of such a run. Run in a fresh interpreter, ``sys.modules``
  inspected after it (as tests/test_no_torch.py does for torch).
* The rule catalogue (package data) is what the rules say; a stale one fails
  here with the command that regenerates it.
* A few files of a project (pre-commit) are decided from their import
  neighbourhood: the verdicts are those of the whole project's map.
* The flow model's project-wide searches read only the files that can hold
  an answer: a call of the function's name, an import of torchtext.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from rnnlint.config import load_config
from rnnlint.static.catalogue import CATALOGUE, generate
from rnnlint.static.projectmap import ProjectMap, imported_modules, map_text, walk_python
from rnnlint.static.registry import load_rules
from tests.helpers import rnnlint

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"

HEAVY = ("libcst", "rnnlint._pack_", "rnnlint.flow", "rnnlint.verify")  # the rules load as rnnlint._pack_*


def run_wrapped(*args: str, cwd: Path) -> dict:
    """Run rnnlint in a fresh interpreter; ``heavy``: the modules of HEAVY it imported (``-X importtime``
    names every module on stderr)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "rnnlint", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    imported = [line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    output = result.stdout + "".join(line + "\n" for line in result.stderr.splitlines()
                                     if not line.startswith("import time:"))
    return {"status": result.returncode, "output": output, "heavy": sorted(m for m in imported if m.startswith(HEAVY))}


CNN = """\
import torch
from torch import nn, optim

model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
opt = optim.Adam(model.parameters(), lr=0.1)
for x, y in []:
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
"""


def _project(root: Path) -> Path:
    """A project with a recurrent model trained in one file and a CNN trained in another."""
    (root / "pyproject.toml").write_text("[tool.rnnlint]\n")
    (root / "models").mkdir()
    (root / "models" / "__init__.py").write_text("from .tagger import Tagger\n")
    (root / "models" / "tagger.py").write_text((DATA / "lstm_train.py").read_text())
    (root / "train_rnn.py").write_text("from models import Tagger\n" + (DATA / "lstm_train.py").read_text())
    (root / "train_cnn.py").write_text(CNN)
    return root


def test_help_and_a_file_that_cannot_matter_never_import_libcst(tmp_path):
    root = _project(tmp_path)
    shown = run_wrapped("--help", cwd=root)
    assert shown["status"] == 0 and "verify" in shown["output"] and "watch" in shown["output"]
    assert shown["heavy"] == []
    # the CNN trains with a high learning rate and no clipping, but nothing recurrent is near it
    checked = run_wrapped("check", "--static", "--no-cache", "train_cnn.py", cwd=root)
    assert checked["status"] == 0, checked["output"]
    assert "No findings" in checked["output"]
    assert checked["heavy"] == [], checked["heavy"]
    # without --static, check counts the models the graph stage would build (a note): a file that names
    # no recurrent module has none, and is read as lightly as with --static
    plain = run_wrapped("check", "--no-cache", "train_cnn.py", cwd=root)
    assert plain["status"] == 0 and "No findings" in plain["output"] and "note:" not in plain["output"]
    assert plain["heavy"] == [], plain["heavy"]
    noted = run_wrapped("check", "--no-cache", "train_rnn.py", cwd=root)
    assert "not built by the graph stage" in noted["output"]  # a recurrent model is still counted


def test_a_helper_with_a_regular_expression_is_decided_from_its_text(tmp_path, monkeypatch):
    """``re.compile(`` is not Keras's ``model.compile(``: a pre-commit run on such a helper of a large
    project does not search the project for the files that import it (that search cost 0.04 s in a
    300-file checkout, more in a large one)."""
    root = _project(tmp_path)
    for i in range(25):  # a project large enough that one file is checked by its neighbourhood
        (root / f"util_{i}.py").write_text(f"VALUE_{i} = {i}\n")
    (root / "patterns.py").write_text('import re\n\nWORD = re.compile(r"\\w+")\n\n\ndef words(text):\n'
                                      '    return WORD.findall(text)\n')

    def searched(*args, **kwargs):
        raise AssertionError("the project was searched for the helper's importers")

    monkeypatch.setattr(ProjectMap, "closure", searched)
    result = rnnlint("check", "--static", "--no-cache", "patterns.py", cwd=root)
    assert result.returncode == 0 and "No findings" in result.stdout, result.stdout + result.stderr
    # a Keras training file that only compiles and fits a model built elsewhere still reaches RNN060
    (root / "fit.py").write_text("from models import build\n\nmodel = build()\nmodel.compile()\nmodel.fit(x, y)\n")
    assert "RNN060" in [rule.code for rule in load_rules().values() if rule.wants((root / "fit.py").read_text())]


def test_a_fully_warm_run_imports_neither_libcst_nor_the_rules(tmp_path):
    root = _project(tmp_path)
    cold = run_wrapped("check", "--static", ".", cwd=root)
    assert cold["status"] == 1 and "RNN041" in cold["output"], cold["output"]
    assert any(m.startswith("libcst") for m in cold["heavy"])  # the recurrent files were analysed
    warm = run_wrapped("check", "--static", ".", cwd=root)
    assert warm["output"] == cold["output"]  # the same findings, served from the cache
    assert warm["heavy"] == [], warm["heavy"]
    # without --static, check also counts the models the graph stage would build: a warm run takes each
    # file's count from the cache too, and prints the same note
    cold = run_wrapped("check", ".", cwd=root)
    assert "note: 2 models not built by the graph stage" in cold["output"], cold["output"]
    warm = run_wrapped("check", ".", cwd=root)
    assert warm["output"] == cold["output"] and warm["heavy"] == [], warm["heavy"]


def test_a_cached_model_count_is_counted_again_when_a_file_it_read_changes(tmp_path):
    """The note's count of a file depends on other files (a model's encoder, defined in another file, is what
    makes it recurrent): changing that file changes the count, as on a cold run."""
    (tmp_path / "pyproject.toml").write_text("[tool.rnnlint]\n")
    encoder = "from torch import nn\n\n\nclass Encoder(nn.Module):\n    def __init__(self):\n" \
              "        super().__init__()\n        self.layer = nn.{layer}(8, 8)\n"
    (tmp_path / "encoder.py").write_text(encoder.format(layer="LSTM"))
    (tmp_path / "model.py").write_text(
        "from torch import nn\n\nfrom encoder import Encoder\n\n\nclass Seq2Seq(nn.Module):  # encoder: an LSTM\n"
        "    def __init__(self):\n        super().__init__()\n        self.encoder = Encoder()\n")
    noted = "not built by the graph stage"
    assert "note: 2 models " + noted in rnnlint("check", ".", cwd=tmp_path).stderr
    assert "note: 2 models " + noted in rnnlint("check", ".", cwd=tmp_path).stderr  # from the cache
    (tmp_path / "encoder.py").write_text(encoder.format(layer="Linear"))  # no recurrent module left
    assert noted not in rnnlint("check", ".", cwd=tmp_path).stderr
    assert noted not in rnnlint("check", "--no-cache", ".", cwd=tmp_path).stderr


def test_a_relevant_file_reached_through_its_import_is_analysed_alone(tmp_path):
    """Pre-commit passes one file: the map of its neighbourhood finds the model it imports."""
    root = _project(tmp_path)
    (root / "fit.py").write_text("from models import Tagger\n" + CNN.replace("nn.Sequential(", "Tagger(2, 3) or ("))
    checked = run_wrapped("check", "--static", "--no-cache", "--select", "RNN001", "fit.py", cwd=root)
    assert checked["status"] == 1 and "fit.py:10:5: RNN001" in checked["output"], checked["output"]


def test_the_rule_catalogue_is_what_the_rules_say():
    assert CATALOGUE.read_text(encoding="utf-8") == generate(), (
        "rnnlint/data/rule_catalogue.json is stale: regenerate it with `python -m rnnlint.static.catalogue`")


def test_the_import_scan_finds_every_import_cpython_finds():
    """The closure reads imports without parsing: it must see all that the parser sees (more is fine)."""
    for path in [*walk_python(REPO / "rnnlint"), *walk_python(REPO / "fixtures")]:
        text = path.read_text(encoding="utf-8")
        missing = set(map_text(text).modules) - imported_modules(text)
        assert not missing, (path, missing)
    tricky = "from . import (a,\n   b as c)\nfrom pkg \\\n    import mod\nimport x.y as z, w; import v\n"
    assert {".a", ".b", "pkg.mod", "x.y", "w", "v"} <= imported_modules(tricky)
    # a continued ``from``, a line ended by CRLF, spaces by a dot: all valid Python, all imports
    continued = "from \\\ntorchtext.legacy import data\r\nfrom p.q \\\r\n    import r\r\nfrom s . t import u\n"
    assert {"torchtext.legacy.data", "p.q.r", "s.t.u"} <= imported_modules(continued)
    for text in (tricky, continued):
        assert set(map_text(text).modules) <= imported_modules(text)


@pytest.mark.slow  # the relevance map of the whole checkout, then every fixture file's closure
def test_the_neighbourhood_decides_as_the_whole_project_does():
    """For every fixture file: relevant among its closure exactly when relevant in the whole checkout."""
    config = load_config([REPO])
    files = sorted(str(p) for p in walk_python(REPO))
    words = ("GRU", "LSTM", "RNN")
    whole = ProjectMap(REPO, [Path(f) for f in files]).relevant(words)
    project = ProjectMap(config.root, [Path(f) for f in files])
    fixtures = [f for f in files if "/fixtures/" in f]
    assert fixtures
    for file in fixtures:
        alone = project.relevant(words, project.closure([file]))
        assert (Path(file) in alone) == (Path(file) in whole), file


def _subclassing_project(root: Path, subclasses: int) -> Path:
    """``base.py`` defines a module that keeps what its constructor is handed; ``build.py`` builds it with
    an LSTM; many files only subclass it (``class SubN(Base)``), as a framework's models do."""
    (root / "base.py").write_text("import torch.nn as nn\n\nclass Base(nn.Module):\n"
                                  "    def __init__(self, encoder):\n        super().__init__()\n"
                                  "        self.encoder = encoder\n")
    (root / "build.py").write_text("import torch.nn as nn\nfrom base import Base\n\n"
                                   "model = Base(\n    nn.LSTM(4, 4),\n)\n")
    for i in range(subclasses):
        (root / f"sub{i}.py").write_text(f"from base import Base\n\n\nclass Sub{i}(Base):\n"
                                         f"    def forward(self, x):\n"
                                         f"        return super(Sub{i}, self).forward(x)\n")
    return root


@pytest.mark.parametrize("call", ["Base(nn.LSTM(4, 4))", "Base (\n    nn.LSTM(4, 4))", "(Base)(nn.LSTM(4, 4))",
                                  "Base \\\r\n    (nn.LSTM(4, 4))", "Base(  # the encoder\n    nn.LSTM(4, 4))"])
def test_every_way_of_writing_a_call_is_read_as_one(tmp_path, call):
    """The text search that spares the files without a call of the class must let every call through."""
    import libcst as cst

    from rnnlint.static.index import ProjectIndex

    root = _subclassing_project(tmp_path, 2)
    (root / "build.py").write_bytes(f"import torch.nn as nn\nfrom base import Base\n\nmodel = {call}\n".encode())
    flow = ProjectIndex(root).flow()
    facts = flow.file(root / "base.py")
    init = next(f for f in facts.module.body[1].body.body if isinstance(f, cst.FunctionDef))
    assert [site.file.path.name for _, site in flow.callers(init, facts)] == ["build.py"]


def test_who_calls_a_constructor_is_read_from_the_files_that_call_it(tmp_path):
    """Values of a constructor's parameter come from the calls of the class: a file that names the class
    only as a base holds none, and is never parsed with libcst to find out (fairseq: one file's check
    parsed the 24 models that subclass its base, 4.4 s, now 1.2 s)."""
    import libcst as cst

    from rnnlint.static import index as index_module
    from rnnlint.static.index import ProjectIndex

    root = _subclassing_project(tmp_path, 12)
    index = ProjectIndex(root)
    flow = index.flow()
    facts = flow.file(root / "base.py")
    init = next(f for f in facts.module.body[1].body.body if isinstance(f, cst.FunctionDef))
    parsed: list[str] = []
    real_parse = index_module.parse_python
    with mock.patch.object(index_module, "parse_python",
                           side_effect=lambda text, accepted=False: parsed.append(text) or real_parse(text, accepted)):
        callers = flow.callers(init, facts)
    assert [site.file.path.name for _, site in callers] == ["build.py"]
    assert not [text for text in parsed if "class Sub" in text], "a file that only subclasses Base was parsed"


def test_only_files_that_name_torchtext_in_an_import_are_read_for_it(tmp_path):
    """Whether a legacy torchtext iterator can reach a loop is asked of every loop over something unknown:
    the files that import torchtext are found from the words of each file's import lines, and only those
    are outlined (fairseq: 1,019 files read by CPython's parser for a one-file check)."""
    from rnnlint.static import outline as outline_module
    from rnnlint.static.index import ProjectIndex

    root = _subclassing_project(tmp_path, 12)
    (root / "data.py").write_text("from torchtext.legacy import data as ttd\n\nTEXT = ttd.Field()\n")
    (root / "notes.py").write_text('"""torchtext is not used here"""\nimport os\n')
    index = ProjectIndex(root)
    outlined: list[str] = []
    real_outline = outline_module.outline
    with mock.patch.object(outline_module, "outline",
                           side_effect=lambda text, *a, **k: outlined.append(text) or real_outline(text, *a, **k)):
        importing = index.flow().importing("torchtext")
    assert importing == {(root / "data.py").resolve()}
    assert len(outlined) == 1 and "torchtext.legacy" in outlined[0]


def test_libcst_parses_what_the_map_saw_cpython_accept_without_asking_cpython_again(tmp_path):
    """The project map parses every file with CPython's parser; a file it accepted is not handed to that
    parser a second time before libcst reads it (a sixth of each libcst parse on fairseq), and a file it
    refused (nesting that would crash libcst's parser) still is, and is never given to libcst."""
    import ast

    from rnnlint.static.runner import Session

    (tmp_path / "model.py").write_text("from torch import nn\nlayer = nn.LSTM(4, 8)\n", "utf-8")
    (tmp_path / "deep.py").write_text("x = " + "(" * 300 + "1" + ")" * 300 + "\n", "utf-8")
    session = Session(load_config([tmp_path]), use_cache=False)
    project = session.project_map()
    for path in project.files:
        project.map(path)
    session.index.accepted = project.accepted()
    assert len(session.index.accepted) == 1  # the deep file is CPython's "too many nested parentheses"
    with mock.patch.object(ast, "parse", wraps=ast.parse) as cpython:
        assert session.index.tree(tmp_path / "model.py") is not None
        assert cpython.call_count == 0
        assert session.index.tree(tmp_path / "deep.py") is None
        assert cpython.call_count == 1


def test_a_run_collects_cycles_less_often_and_gives_the_caller_its_collector_back(tmp_path):
    """A libcst tree is hundreds of thousands of objects without a cycle: while the command line runs, the
    collector's passes come :data:`rnnlint.cli.GC_THRESHOLDS` new objects apart, not 700; a program that
    calls it in its own process finds its thresholds again afterwards, even when the command fails."""
    import gc

    from rnnlint import cli
    from rnnlint.static import runner

    (tmp_path / "train.py").write_text("from torch import nn\nlayer = nn.LSTM(4, 8)\n", "utf-8")
    seen = []
    analyse = runner.analyse

    def watching(*args, **kwargs):
        seen.append(gc.get_threshold())
        return analyse(*args, **kwargs)

    before = gc.get_threshold()
    try:
        gc.set_threshold(555, 5, 5)
        with mock.patch.object(runner, "analyse", watching):
            rnnlint("check", "--static", "--no-cache", "train.py", cwd=tmp_path)
        assert seen == [cli.GC_THRESHOLDS]
        assert gc.get_threshold() == (555, 5, 5)
        with mock.patch.object(runner, "_run", side_effect=RuntimeError("a bug")):
            assert rnnlint("check", "--static", "--no-cache", "train.py", cwd=tmp_path).returncode == 2
        assert gc.get_threshold() == (555, 5, 5)
    finally:
        gc.set_threshold(*before)
