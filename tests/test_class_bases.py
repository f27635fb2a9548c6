"""What a project class inherits from its project bases, found through other files (ProjectIndex.lineage)."""

from __future__ import annotations

from tests.helpers import REPO, check

# the real-code fixture's classifier, its tokenizer built by a project class instead
_FIXTURE = (REPO / "fixtures/realcode/tokenizer_pad/textcls.py").read_text("utf-8")
_OWN = _FIXTURE[_FIXTURE.index("        self.tokenizer = Tokenizer("):_FIXTURE.index("        self.embed")]
MODEL = _FIXTURE.replace(_OWN, "        self.tokenizer = WordTokenizer(vocab, max_length)\n").replace(
    "import torch.nn as nn\n", "import torch.nn as nn\n\nfrom tok import WordTokenizer\n")
FORWARD = next(n for n, line in enumerate(MODEL.splitlines(), 1) if "= self.encoder(" in line)

PADDING_BASE = '''from tokenizers import Tokenizer
from tokenizers.models import WordLevel


class BaseTokenizer:
    def __init__(self, vocab, max_length):
        self.tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
        self.tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]", length=max_length)
'''


def test_a_tokenizer_that_pads_in_a_base_class_of_another_file_is_found(tmp_path):
    (tmp_path / "base.py").write_text(PADDING_BASE, "utf-8")
    tok = "from base import BaseTokenizer\n\n\nclass WordTokenizer(BaseTokenizer):\n    pass\n"
    found = check(tmp_path, MODEL, files={"tok.py": tok}, select=["RNN010"])
    assert [(d.code, d.line) for d in found] == [("RNN010", FORWARD)]
    assert "WordTokenizer turns on padding to a fixed length at base.py:8" in found[0].message


def test_bases_that_loop_end_the_walk_without_a_finding(tmp_path):
    loop = ("from tokenizers import Tokenizer\n\n\nclass WordTokenizer(CharTokenizer):\n    pass\n\n\n"
            "class CharTokenizer(WordTokenizer):\n    pass\n")
    assert check(tmp_path, MODEL, files={"tok.py": loop}, select=["RNN010"]) == []


def test_a_padding_base_too_far_up_is_not_followed(tmp_path):
    """Four project bases up: past the depth the walk follows (three), as before."""
    (tmp_path / "base.py").write_text(PADDING_BASE, "utf-8")
    chain = "from base import BaseTokenizer\n\n\nclass A(BaseTokenizer):\n    pass\n\n\n" + "".join(
        f"class {child}({parent}):\n    pass\n\n\n" for parent, child in (("A", "B"), ("B", "C"), ("C", "WordTokenizer")))
    assert check(tmp_path, MODEL, files={"tok.py": chain}, select=["RNN010"]) == []
    near = chain.replace("class WordTokenizer(C)", "class WordTokenizer(B)")
    assert [d.line for d in check(tmp_path, MODEL, files={"tok.py": near}, select=["RNN010"])] == [FORWARD]


def test_a_base_that_turns_padding_on_later_is_seen_by_the_next_cached_run(tmp_path):
    """The files up a tokenizer's bases are searched for ``enable_padding`` in their text, without a parse
    when it is not there; the model file's cached result still depends on them: a base that starts padding
    brings the finding on the next run, with the cache on."""
    import json

    from tests.helpers import MAIN, rnnlint, write_project

    quiet = PADDING_BASE.replace(PADDING_BASE[PADDING_BASE.index("        self.tok.enable_padding"):], "")
    (tmp_path / "base.py").write_text(quiet, "utf-8")
    tok = "from base import BaseTokenizer\n\n\nclass WordTokenizer(BaseTokenizer):\n    pass\n"
    write_project(tmp_path, MODEL, {"tok.py": tok})

    def lines() -> list[int]:
        ran = rnnlint("check", "--static", "--select", "RNN010", "--output-format", "json", MAIN, cwd=tmp_path)
        return [d["line"] for d in json.loads(ran.stdout)]

    assert lines() == []
    (tmp_path / "base.py").write_text(PADDING_BASE, "utf-8")
    assert lines() == [FORWARD]
