"""Values that a library, not the project, makes: legacy torchtext batches and modules imported by name.

A legacy torchtext pipeline pads and moves its batches without one line of the
project doing so; ``importlib.import_module(f"archs.{args.arch}")`` picks the
model class from a string. These check that the rules see what those values
are, and that a value the flow model cannot pin down (a device or a flag that
is not a constant, a module name with no default) is never guessed.
"""

from __future__ import annotations

import textwrap

import pytest

from tests import helpers


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


MODEL = src("""
    import torch.nn as nn

    class Classifier(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 32, padding_idx=1)
            self.rnn = nn.LSTM(32, 64, batch_first=True)
            self.fc = nn.Linear(64, 2)

        def forward(self, text, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embed(text), lengths, batch_first=True)
            _, (hidden, _) = self.rnn(packed)
            return self.fc(hidden[-1])
    """)

LOOP = """
    import torch
    from torchtext import data
    from tqdm import tqdm

    from model import Classifier

    TEXT = data.Field(batch_first=True, include_lengths={lengths})
    LABEL = data.LabelField()

    def train(path, device):
        train_set, valid_set = data.TabularDataset.splits(
            path=path, train="train.csv", validation="valid.csv", format="csv",
            fields=[("review", TEXT), ("label", LABEL)])
        train_iter, _ = data.BucketIterator.splits((train_set, valid_set), batch_size=64, device={device})
        model = Classifier(len(TEXT.vocab)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step, batch in enumerate(tqdm(train_iter)):
            text, lengths = batch.review
            loss = torch.nn.functional.cross_entropy(model(text, lengths), batch.label)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    """


def findings(tmp_path, main: str, files: dict[str, str], select: list[str]) -> list[tuple[str, str, int]]:
    return sorted((d.path.rsplit("/", 1)[-1], d.code, d.line) for d in helpers.check(tmp_path, main, files, select=select))


def test_torchtext_lengths_on_the_iterators_device_reach_the_models_pack(tmp_path):
    """``include_lengths=True`` and ``device=device``: ``batch.review`` is ``(padded, lengths on the GPU)``,
    through ``enumerate(tqdm(...))``, ``.splits`` and the fields list."""
    main = src(LOOP.format(lengths="True", device="device"))
    found = findings(tmp_path, main, {"model.py": MODEL}, ["RNN010", "RNN011"])
    assert ("train.py", "RNN011", 19) in found, found
    assert not [f for f in found if f[1] == "RNN010"], found  # the model packs: nothing to report


@pytest.mark.parametrize("lengths, device", [
    ("True", '"cpu"'),  # the iterator keeps the batch on the host
    ("True", "-1"),  # legacy torchtext's spelling of the host
    ("with_lengths", "device"),  # a flag that is not a constant: unknown, not guessed
])
def test_torchtext_lengths_on_the_host_or_unknown_are_not_reported(tmp_path, lengths, device):
    main = src(LOOP.format(lengths=lengths, device=device))
    if lengths == "with_lengths":
        main = main.replace("TEXT = ", "with_lengths = len(__name__) > 3\nTEXT = ")
    assert findings(tmp_path, main, {"model.py": MODEL}, ["RNN011"]) == []


def test_torchtext_padded_field_into_a_model_that_does_not_pack(tmp_path):
    main = src(LOOP.format(lengths="True", device="device")).replace(
        "model(text, lengths)", "model(text)")
    unpacked = src("""
        import torch.nn as nn

        class Classifier(nn.Module):
            def __init__(self, vocab):
                super().__init__()
                self.embed = nn.Embedding(vocab, 32)
                self.rnn = nn.GRU(32, 64, batch_first=True)
                self.fc = nn.Linear(64, 2)

            def forward(self, text):
                _, hidden = self.rnn(self.embed(text))
                return self.fc(hidden[-1])
        """)
    found = findings(tmp_path, main, {"model.py": unpacked}, ["RNN010"])
    assert ("train.py", "RNN010", 19) in found, found


ARCH = src("""
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, vocab, cell="lstm"):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64)
            self.rnn = getattr(nn, cell.upper())(64, 64, batch_first=True)
            self.out = nn.Linear(64, 5)

        def forward(self, x):
            out, _ = self.rnn(self.embed(x))
            return self.out(out)
    """)

PICK = """
    import argparse
    import importlib

    import torch

    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--arch"{default})
        parser.add_argument("--cell", choices=["LSTM", "GRU"], default="LSTM")
        args = parser.parse_args()
        module = importlib.import_module(f"models.{{args.arch}}")
        model = getattr(module, "Tagger")(1000, cell=args.cell)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for x, y in []:
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    """


def test_model_class_imported_by_an_f_string_name_is_followed(tmp_path):
    main = src(PICK.format(default=', default="tagger"'))
    found = findings(tmp_path, main, {"models/__init__.py": "", "models/tagger.py": ARCH}, ["RNN020"])
    assert found == [("train.py", "RNN020", 13)]


def test_module_name_without_a_known_value_stays_unknown(tmp_path):
    main = src(PICK.format(default=""))
    assert findings(tmp_path, main, {"models/__init__.py": "", "models/tagger.py": ARCH}, ["RNN020"]) == []


CHAIN = src("""
    import torch
    import torch.nn as nn

    def build(rate):
        model = nn.LSTM(8, 16)
        return torch.optim.Adam(model.parameters(), lr=rate)

    def stage(settings):
        return build(settings.rate)

    class Settings:
        def __init__(self, rate):
            self.rate = rate

    def main(rate=0.05):
        return stage(Settings(rate))
    """)


def test_a_question_past_the_step_budget_is_unknown_not_a_guess(tmp_path, monkeypatch):
    """Call sites that feed attributes of other parameters multiply the paths to follow; past the
    budget the answer is unknown: no finding from a part of the paths, and no run that never ends."""
    assert findings(tmp_path, CHAIN, {}, ["RNN020"]) == [("train.py", "RNN020", 6)]
    from rnnlint.flow import resolve

    monkeypatch.setattr(resolve, "_BUDGET", 5)
    (tmp_path / "small").mkdir()
    assert findings(tmp_path / "small", CHAIN, {}, ["RNN020"]) == []
