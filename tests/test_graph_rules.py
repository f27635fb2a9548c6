"""Every graph rule's VALID / INVALID model examples, built and measured in-process.

The CLI runs graph rules in a child process (see tests/test_graph_stage.py for
that, and for isolation); here the child's worker runs inside the test process
so torch is imported once for all examples.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from rnnlint.graph.child import Worker  # noqa: E402
from rnnlint.graph.rule import GraphRule  # noqa: E402
from rnnlint.graph.stage import run_graph_stage  # noqa: E402
from rnnlint.static.registry import load_rules  # noqa: E402
from rnnlint.rule import Valid, dedent  # noqa: E402
from tests import helpers  # noqa: E402

RULES = {code: rule for code, rule in load_rules().items() if issubclass(rule, GraphRule)}


def in_process(request: dict, model_timeout: float, stage_timeout: float) -> dict:
    worker = Worker(request)
    try:
        return {spec["id"]: worker.analyse(spec) for spec in request["models"]}
    finally:
        worker.close()


def graph_check(root, main: str, files=None, select=None, options=None):
    helpers.write_project(root, main, files)
    session = helpers.session(root, select, options)
    sources = sorted(root.rglob("*.py"))
    return run_graph_stage(sources, session, executor=in_process).diagnostics


def _cases(kind: str):
    for code, rule in RULES.items():
        for number, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{code}-{kind.lower()}-{number}")


def _select(rule) -> list[str]:
    # RNN901 alone builds nothing: it reports on the other graph rules' behalf
    return [rule.code, "RNN105"] if rule.code == "RNN901" else [rule.code]


def _opts(rule, example):
    return {rule.name: example.options} if example.options else None


def test_graph_rules_have_examples_and_docs():
    assert set(RULES) >= {f"RNN10{i}" for i in range(1, 9)} | {"RNN901"}
    for code, rule in RULES.items():
        assert rule.VALID and rule.INVALID, code
        assert "Fix safety" in (rule.__doc__ or ""), code


@pytest.mark.parametrize("rule, example", list(_cases("VALID")))
def test_valid_model_is_quiet(tmp_path, rule, example):
    example = example if isinstance(example, Valid) else Valid(example)
    files = {k: dedent(v) for k, v in example.files.items()}
    found = graph_check(tmp_path, dedent(example.code), files, _select(rule), _opts(rule, example))
    assert [d for d in found if d.code == rule.code] == []
    if rule.code != "RNN901":  # the model was really built and measured
        assert [d for d in found if d.code == "RNN901"] == []


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_invalid_model_is_reported(tmp_path, rule, example):
    files = {k: dedent(v) for k, v in example.files.items()}
    source = dedent(example.code)
    found = [d for d in graph_check(tmp_path, source, files, _select(rule), _opts(rule, example)) if d.code == rule.code]
    assert [d.line for d in found] == list(example.lines), f"{rule.code} findings in:\n{source}\n{found}"
    assert all(d.message and Path(d.path).name == helpers.MAIN for d in found), found
    assert example.fixed is None and all(d.fix is None for d in found), "graph rules do not fix"


def _note(tmp_path, source: str) -> str:
    found = graph_check(tmp_path, dedent(source), select=["RNN901", "RNN106"])  # RNN106 runs the probe batch
    notes = [d.message for d in found if d.code == "RNN901"]
    assert len(notes) == 1, found
    return notes[0]


@pytest.mark.parametrize("first, template", [
    ("nn.LSTM(8, 16, batch_first=True)", 'shape = [3, 7, 8], dtype = "float32" }'),
    ("nn.Embedding(50, 16)", 'shape = [7, 3], dtype = "int64", high = 50 }'),
])
def test_the_input_template_follows_the_first_layer(tmp_path, first, template):
    """A forward() the probe cannot feed: the note's template is what the first layer takes (ids only for an Embedding)."""
    note = _note(tmp_path, f"""
        import torch.nn as nn

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.first = {first}
                self.rnn = nn.GRU(16, 16)

            def forward(self, batch):
                return self.rnn(self.first(batch.series))[0]
        """)
    assert template in note, note
    assert ("int64" in note) == ("Embedding" in first)


def test_a_dependency_version_mismatch_is_named_as_such(tmp_path):
    """"cannot import name" from an installed library: the environment differs, not a bug of the model."""
    note = _note(tmp_path, """
        import torch.nn as nn
        from torch.nn.modules.utils import _gone_in_this_version

        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(4, 8)
        """)
    assert "train.py imports `_gone_in_this_version` from `torch.nn.modules.utils`, which the installed torch 2" in note
    assert "your environment's torch differs from the version the project needs" in note
    assert "Install the versions the project's requirements name" in note and "factory" not in note


def test_a_model_still_not_built_says_where_its_arguments_came_from(tmp_path):
    """The call site is named, with each argument that has no single literal value and why."""
    helpers.write_project(tmp_path, dedent("""
        import os
        from model import Tagger

        SIZES = {"hidden": 32}
        tagger = Tagger(os.environ['CELL'], hidden=SIZES["hidden"])
        """), {"model.py": dedent("""
        import torch.nn as nn

        class Tagger(nn.Module):
            def __init__(self, cell, hidden):
                super().__init__()
                self.rnn = nn.RNN(8, hidden, nonlinearity=cell)
        """)})
    found = run_graph_stage(sorted(tmp_path.rglob("*.py")), helpers.session(tmp_path, ["RNN901", "RNN105"]),
                            executor=in_process).diagnostics
    (note,) = [d.message for d in found if d.code == "RNN901"]
    assert "(arguments from the call at train.py:5, where cell: os.environ['CELL'] cannot be followed statically)" in note
    assert "hidden" not in note.split(" could not be built")[0].split("where")[1]  # SIZES["hidden"] was resolved


def test_config_dicts_and_hyper_parameter_objects_build_the_model(tmp_path):
    """``Net(CONFIG["model"])`` gets the dict literal of settings.py; ``hp = HParams()`` in hparams.py is importable."""
    helpers.write_project(tmp_path, dedent("""
        from model import Net
        from settings import CONFIG

        net = Net(CONFIG["model"])
        """), {
        "settings.py": 'CONFIG = {"model": {"hidden": 24, "layers": 3}, "lr": 0.1}\n',
        "hparams.py": dedent("""
            class HParams:
                def __init__(self):
                    self.features = 6

            hp = HParams()
            """),
        "model.py": dedent("""
            import torch.nn as nn
            from hparams import hp

            class Net(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    self.rnn = nn.RNN(hp.features, cfg["hidden"], cfg["layers"], nonlinearity="relu")
            """)})
    found = run_graph_stage(sorted(tmp_path.rglob("*.py")), helpers.session(tmp_path, ["RNN901", "RNN102"]),
                            executor=in_process).diagnostics
    assert [(d.code, Path(d.path).name, d.line) for d in found] == [("RNN102", "model.py", 7)], found
    assert "RNN(6 -> 24, 3 layers)" in found[0].message


def test_a_model_given_its_recurrent_parts_is_built_with_them(tmp_path):
    """``Translator(enc, dec)`` builds no layer itself: the encoder and decoder its caller built are built first."""
    helpers.write_project(tmp_path, dedent("""
        import argparse
        from nets import Decoder, Encoder, Translator

        parser = argparse.ArgumentParser()
        parser.add_argument("--hid", type=int, default=32)
        args = parser.parse_args()
        model = Translator(Encoder(100, args.hid, 1), Decoder(120, args.hid, 2))
        """), {"nets.py": dedent("""
        import torch.nn as nn

        class Encoder(nn.Module):
            def __init__(self, vocab, hid, layers):
                super().__init__()
                self.emb = nn.Embedding(vocab, 16)
                self.rnn = nn.LSTM(16, hid, layers)

            def forward(self, src):
                return self.rnn(self.emb(src))[1]

        class Decoder(Encoder):
            def forward(self, tgt, state):
                return self.rnn(self.emb(tgt), state)[0]

        class Translator(nn.Module):
            def __init__(self, encoder, decoder):
                super().__init__()
                self.encoder, self.decoder = encoder, decoder

            def forward(self, src, tgt):
                return self.decoder(tgt, self.encoder(src))
        """)})
    found = run_graph_stage(sorted(tmp_path.rglob("*.py")), helpers.session(tmp_path, ["RNN901", "RNN107"]),
                            executor=in_process).diagnostics
    assert [(d.code, Path(d.path).name, d.line) for d in found] == [("RNN107", "nets.py", 7)], found
    assert "[1, 3, 32] but needs [2, 3, 32]" in found[0].message


def test_the_spectral_radius_bound_settles_the_common_inits_and_never_hides_a_radius_above_the_limit():
    """RNN103 skips a gate block's eigenvalues (a third of a second at 512 units) when a bound says the radius
    cannot exceed the limit: PyTorch's default and orthogonal blocks are settled by it, and the bound never
    says "at most" of a block whose radius is above the limit, whatever its structure."""
    import torch

    from rnnlint.graph.measure import spectral_radius, spectral_radius_at_most

    torch.manual_seed(0)
    n = 256
    default = torch.nn.LSTM(8, n).weight_hh_l0.detach()[:n]
    orthogonal = torch.nn.init.orthogonal_(torch.empty(n, n))
    assert spectral_radius_at_most(default, 1.5) and spectral_radius_at_most(orthogonal, 1.5)
    rotation = torch.block_diag(*[torch.tensor([[0.0, -1.0], [1.0, 0.0]])] * (n // 2))  # eigenvalues +-i
    shift = torch.diag(torch.full((n - 1,), 40.0), 1)  # nilpotent: radius 0, large norm
    blocks = [orthogonal * s for s in (1.0, 1.49, 1.51, 3.0)] + [rotation * 1.6, shift, shift + torch.eye(n) * 1.6,
                                                                  torch.randn(n, n) * 0.2, torch.randn(n, n)]
    for block in blocks:
        radius = spectral_radius(block)
        for limit in (0.5, 1.5, 2.0):
            assert not spectral_radius_at_most(block, limit) or radius <= limit, (radius, limit)
    assert not spectral_radius_at_most(torch.full((4, 4), float("nan")), 1.5)
    assert not spectral_radius_at_most(torch.eye(4)[:, :3], 1.5)  # a projection: its own measure
