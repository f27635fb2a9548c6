"""The index's outlines (CPython's parser) say exactly what its libcst summaries say.

The project index answers lookups, lineages and "does this reach a recurrent layer?" from a file's
outline, so a file that a question only passes through is never parsed with libcst; its findings
depend on the two agreeing, definition for definition, call for call.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from unittest import mock

import libcst as cst
import pytest

from rnnlint.static import index as index_module
from rnnlint.static.index import Definition, FileSummary, ProjectIndex, summarise
from rnnlint.static.outline import outline

REPO = Path(__file__).resolve().parents[1]

# what a summary must get right: one-line suites (libcst's summary skips what they define), names
# that are constants in CPython's tree, starred bases, source order of calls the two trees store apart
_EDGES = textwrap.dedent('''\
    import torch.nn as tnn
    from . import *
    from .layers import Encoder as Enc, Decoder
    try:
        from apex import FusedLSTM
        Fast = FusedLSTM
    except ImportError: Fast = None
    else:
        Other = tnn.GRU
    finally:
        Never = tnn.LSTM
    if True: One = tnn.LSTM
    elif False:
        Two = make(tnn.RNN)
    else:
        def three():
            return {key(): value() for key, value in pairs()}, a() if b() else c()
    class Model(*bases, tnn.Module, metaclass=Meta):
        @decorate(first())
        def forward(self, x):
            def inner():
                return None
            \x0c
            return Enc(x)(y), f"{fmt()}", True, {k(): v(), **more()}
    LSTM = tnn.LSTM
    a, b = pair()
    x: int = annotated()
    ''')


def _summary(text: str) -> dict:
    return summarise(cst.parse_module(text)).to_json()


def _outline(text: str) -> dict:
    imports, stars, definitions = outline(text)
    return FileSummary(imports, stars, {k: Definition(**v) for k, v in definitions.items()}).to_json()


def test_the_outline_of_odd_code_is_the_summary():
    assert _outline(_EDGES) == _summary(_EDGES)
    assert "Never" not in _outline(_EDGES)["definitions"] and "One" not in _outline(_EDGES)["definitions"]


@pytest.mark.slow  # the whole fixture tree
def test_every_fixture_outlines_as_it_summarises():
    compared = 0
    for file in sorted((REPO / "fixtures").rglob("*.py")):
        text = file.read_text("utf-8", errors="replace")
        try:
            expected = _summary(text)
        except (cst.ParserSyntaxError, RecursionError):
            continue
        if outline(text) is None:  # CPython refuses what libcst accepts (it is more lenient)
            continue
        assert _outline(text) == expected, file
        compared += 1
    assert compared > 100


def test_a_name_passed_on_by_a_package_is_found_without_parsing_the_package(tmp_path):
    """``from models import Seq2Seq`` through ``models/__init__.py``: the lookup and the recurrence
    question read the package from its outline; libcst parses only the file that defines the model,
    and only when a question needs its summarisers' facts (here, none does)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("from .seq2seq import Seq2Seq\n__all__ = ['Seq2Seq']\n")
    (tmp_path / "models" / "seq2seq.py").write_text(
        "import torch.nn as nn\nclass Encoder(nn.Module):\n    def __init__(self):\n"
        "        self.rnn = nn.LSTM(4, 4)\nclass Seq2Seq(nn.Module):\n    def __init__(self):\n"
        "        self.encoder = Encoder()\n")
    train = tmp_path / "train.py"
    train.write_text("from models import Seq2Seq\nmodel = Seq2Seq()\n")
    index = ProjectIndex(tmp_path)
    with mock.patch.object(index_module, "parse_python", side_effect=AssertionError("parsed with libcst")):
        assert index.lookup(train, "Seq2Seq") == ((tmp_path / "models" / "seq2seq.py").resolve(), "Seq2Seq")
        assert index.is_recurrent(train, "Seq2Seq")
        assert not index.is_recurrent(train, "Missing")
