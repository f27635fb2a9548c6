"""``rnnlint watch``: the observers in-process, each front, and the command end to end.

The end-to-end tests run the real command line in a subprocess on the fixtures
in ``fixtures/watch`` (one per observed failure and a healthy one), each on a copy
in a temporary folder, and check the codes, the source lines, the measurements
and that the user's files are left as they were. Torch runs with one thread so
that the runs are quick on a busy CPU.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.helpers import fixture_copy, rnnlint, rnnlint_process

torch = pytest.importorskip("torch")
nn = torch.nn

import rnnlint as rnnlint_package  # noqa: E402
from rnnlint.watch.observe import FIXES, NAMES, ObservedFinding, Watcher  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "watch"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
HERE = Path(__file__).resolve()


# -- helpers ----------------------------------------------------------------------------


class Encoder(nn.Module):
    def __init__(self, features: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.rnn = nn.LSTM(features, hidden, batch_first=True)  # construction line: found by the watcher
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state)
        return self.head(out[:, -1]), state


def padded_batch(lengths=(7, 4, 2, 6), time: int = 8, features: int = 4) -> torch.Tensor:
    buffer = torch.zeros(len(lengths), time, features)
    for row, length in enumerate(lengths):
        buffer[row, :length] = torch.randn(length, features)
    return buffer


def codes(watcher: Watcher) -> list[str]:
    return [f["code"] for f in watcher.findings]


def line_of(text: str, path: Path = HERE) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def quiet(model, optimizer, **options) -> Watcher:
    return rnnlint_package.watch(model, optimizer, warn=False, **options)


# -- the in-process front and the observations ---------------------------------------------------


def test_rnn010_padded_plain_tensor_is_observed_at_the_module_and_call_site():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        out, _ = model(padded_batch())
        out.sum().backward()
        optimizer.step()
    assert codes(watcher) == ["RNN010"]
    finding = watcher.findings[0]
    assert finding["observed"] is True and finding["step"] == 1
    assert finding["module"]["class"] == "LSTM" and finding["module"]["name"] == "rnn"
    assert finding["module"]["line"] == line_of("construction line: found by the watcher")
    assert finding["site"]["file"] == str(HERE)
    assert finding["site"]["line"] == line_of("out, state = self.rnn(x, state)")
    assert finding["details"]["lengths"] == [2, 7]
    assert "pack_padded_sequence" in finding["message"] and finding["fix"] == FIXES["RNN010"]


def test_rnn010_not_reported_for_packed_or_unpadded_batches():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        model(torch.randn(4, 8, 4))  # real data: no trailing repeated rows
        same = padded_batch(lengths=(5, 5, 5, 5))  # every sequence the same length: nothing to pack
        model(same)
        x = padded_batch()
        packed = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([7, 4, 2, 6]), batch_first=True,
                                                   enforce_sorted=False)
        model.rnn(packed)
    assert codes(watcher) == []


def test_padding_detection_spares_real_data():
    from rnnlint.watch.observe import _trailing_padding

    torch.manual_seed(0)
    table = torch.randn(20, 5)
    tokens = torch.randint(1, 20, (4, 9))
    tokens[0, -2:] = 7  # one sentence ends in a repeated word
    assert _trailing_padding(torch, table[tokens], vectors=True) is None
    tokens[1, 3] = 0
    tokens[1, -3:] = 0
    tokens[2, -1:] = 0  # token 0 also inside a sentence: not padding
    assert _trailing_padding(torch, table[tokens], vectors=True) is None
    tokens[1, 3] = 5
    padded, lengths, zero = _trailing_padding(torch, table[tokens], vectors=True)
    assert (padded, sorted(lengths), zero) == (2, [6, 8, 9, 9], False)  # the padding embedding, not zeros


def test_rnn013_padded_targets_not_ignored():
    logits = torch.randn(3, 6, 5)
    targets = torch.tensor([[1, 2, 3, 0, 0, 0], [4, 1, 0, 0, 0, 0], [2, 2, 3, 1, 4, 3]])
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with quiet(model, optimizer) as watcher:
        nn.functional.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1), ignore_index=0)  # ignored: fine
        nn.functional.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1), reduction="none")  # masked later
        nn.CrossEntropyLoss()(logits.reshape(-1, 5), targets.reshape(-1))  # RNN013 here
    assert codes(watcher) == ["RNN013"]
    finding = watcher.findings[0]
    assert finding["details"]["pad"] == 0 and finding["details"]["ignore_index"] == -100
    assert finding["site"]["line"] == line_of("# RNN013 here")


def test_rnn030_state_attached_to_the_previous_batch():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with quiet(model, optimizer) as watcher:
        out, state = model(torch.randn(2, 5, 4))
        out.sum().backward()
        optimizer.step()
        model(torch.randn(2, 5, 4), tuple(s.detach() for s in state))  # detached: fine
        out, state = model(torch.randn(2, 5, 4))
        out.sum().backward(retain_graph=True)
        optimizer.step()
        model(torch.randn(2, 5, 4), state)  # still attached to the previous batch's graph
    assert codes(watcher) == ["RNN030"]
    assert watcher.findings[0]["step"] == 3 and watcher.findings[0]["details"]["state_from_step"] == 2


def test_rnn030_not_reported_for_a_decoder_stepping_within_one_batch():
    torch.manual_seed(0)
    cell = nn.GRU(3, 6)
    model = nn.ModuleDict({"cell": cell})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with quiet(model, optimizer) as watcher:
        for _ in range(3):
            hidden = None
            loss = 0
            for _ in range(4):
                out, hidden = cell(torch.randn(1, 2, 3), hidden)
                loss = loss + out.sum()
            loss.backward()
            optimizer.step()
    assert codes(watcher) == []


def test_rnn011_lengths_off_the_cpu_logic():
    """On a CPU machine the device is faked with the meta device: what is checked is 'not the CPU'."""
    watcher = Watcher(warn=False)
    watcher._check_lengths(torch.tensor([3, 2]))
    assert watcher.findings == []
    watcher._check_lengths(torch.tensor([3, 2], device="meta"))
    assert codes(watcher) == ["RNN011"] and watcher.findings[0]["details"]["device"] == "meta"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_rnn011_through_pack_padded_sequence_on_cuda():
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with quiet(model, optimizer) as watcher:
        with pytest.raises(RuntimeError):
            nn.utils.rnn.pack_padded_sequence(torch.randn(2, 3, 4), torch.tensor([3, 2], device="cuda"),
                                              batch_first=True)
    assert codes(watcher) == ["RNN011"]


def _regression_steps(model, optimizer, steps: int, blow_up_at: int | None = None, clip: bool = False):
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        out, _ = model(torch.randn(4, 6, 4))
        loss = out.pow(2).mean() * (1e6 if step == blow_up_at else 1.0)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()  # the step the watcher names


def test_rnn001_gradient_spike_without_clipping():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        _regression_steps(model, optimizer, 10, blow_up_at=8)
    assert codes(watcher) == ["RNN001"]
    assert watcher.findings[0]["step"] == 8
    assert watcher.findings[0]["site"]["line"] == line_of("# the step the watcher names")
    assert watcher.measured()["grad_norm_max_step"] == 8 and watcher.measured()["clipping_seen"] is False


def test_rnn001_not_reported_when_the_script_clips():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        _regression_steps(model, optimizer, 10, blow_up_at=8, clip=True)
    assert codes(watcher) == []
    measured = watcher.measured()
    assert measured["clipping_seen"] is True and measured["grad_norm_max_step"] == 8  # the norm before clipping


def test_step_with_a_closure_is_judged_after_the_closure_ran():
    """Lightning's automatic optimization: forward and backward run inside optimizer.step(closure)."""
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        for step in range(1, 11):
            def closure():
                optimizer.zero_grad()
                out, _ = model(torch.randn(4, 6, 4))
                loss = out.pow(2).mean() * (1e6 if step == 8 else 1.0)
                loss.backward()
                return loss

            optimizer.step(closure)
    assert codes(watcher) == ["RNN001"] and watcher.findings[0]["step"] == 8
    assert watcher.steps == 10 and watcher.measured()["grad_norm_max_step"] == 8


def test_losses_under_amp_are_judged_unscaled():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    with quiet(model, optimizer) as watcher:
        out, _ = model(torch.randn(4, 6, 4))
        loss = out.pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    assert watcher.steps == 1
    assert watcher.measured()["loss_first"] == pytest.approx(loss.item())


def test_first_nonfinite_step_and_parameter():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        _regression_steps(model, optimizer, 3)
        optimizer.zero_grad()
        out, _ = model(torch.randn(4, 6, 4))
        out.mean().backward()
        model.head.weight.grad[0, 0] = float("nan")
        optimizer.step()
    assert codes(watcher) == ["RNN001"]
    first = watcher.measured()["first_nonfinite"]
    assert first["step"] == 4 and first["what"] == "gradient" and first["parameters"] == ["Encoder.head.weight"]


def test_rnn020_diverging_loss_with_a_high_learning_rate():
    torch.manual_seed(0)
    model = nn.ModuleDict({"rnn": nn.GRU(1, 16, batch_first=True), "head": nn.Linear(16, 1)})
    optimizer = torch.optim.SGD(model.parameters(), lr=6.0)
    with quiet(model, optimizer) as watcher:
        for _ in range(15):
            x = torch.sin(torch.linspace(0, 6, 21) + torch.rand(8, 1)).unsqueeze(-1)
            optimizer.zero_grad()
            out, _ = model["rnn"](x[:, :-1])
            loss = (model["head"](out) - x[:, 1:]).pow(2).mean()
            loss.backward()
            optimizer.step()
    assert set(codes(watcher)) >= {"RNN001", "RNN020"}
    rnn020 = next(f for f in watcher.findings if f["code"] == "RNN020")
    assert rnn020["details"]["lr"] == 6.0 and rnn020["details"]["ceiling"] == 1.0


def test_rnn106_saturated_gates_during_training():
    torch.manual_seed(0)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        _regression_steps(model, optimizer, 1)
        x = torch.randn(4, 6, 4) * 300.0  # raw, unnormalised readings
        out, _ = model(x)
        out.sum().backward()
        optimizer.step()
    assert codes(watcher) == ["RNN106"]
    assert watcher.findings[0]["details"]["share"] > 0.25


def test_plain_call_warns_and_close_takes_everything_off():
    original = (nn.functional.cross_entropy, nn.utils.clip_grad_norm_, torch.autograd.backward,
                nn.utils.rnn.pack_padded_sequence)
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    watcher = rnnlint_package.watch(model, optimizer)
    with pytest.warns(ObservedFinding, match="RNN010"):
        model(padded_batch())
    watcher.close()
    assert (nn.functional.cross_entropy, nn.utils.clip_grad_norm_, torch.autograd.backward,
            nn.utils.rnn.pack_padded_sequence) == original
    assert not model.rnn._forward_pre_hooks and not model.rnn._forward_hooks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(padded_batch())  # detached: nothing more


def test_a_check_that_fails_is_turned_off_not_the_run():
    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with quiet(model, optimizer) as watcher:
        watcher._check_padding = lambda *args: 1 / 0
        watcher._guarded("RNN010", watcher._check_padding, model.rnn, padded_batch())
        model(padded_batch())
    assert "RNN010" in watcher.measured()["checks_disabled"] and watcher.findings == []


def _literal_texts(path: Path) -> list[str]:
    """Every string literal of a file, f-strings with ``{}`` for their fields (implicit concatenation joined)."""
    import ast

    texts = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
    return texts


def test_names_and_fix_messages_are_the_rule_packs():
    """An observed finding has the static rule's name and its fix message (the same words, other values)."""
    import re

    from rnnlint.static.registry import load_rules

    rules = load_rules()
    for code, name in NAMES.items():
        assert rules[code].name == name
        source = Path(sys.modules[rules[code].__module__].__file__)
        texts = _literal_texts(source)
        for part in re.split(r"\{\w+\}", FIXES[code]):
            assert any(part in text for text in texts), f"{code}: {part!r} is not in {source.name}"


# -- the callback fronts --------------------------------------------------------------------------


def _lightning():
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not any(importlib.util.find_spec(name) for name in ("lightning", "pytorch_lightning")),
                    reason="Lightning is not installed (optional)")  # importing it takes seconds
def test_lightning_callback(tmp_path):
    pl = _lightning()
    RnnlintWatch = rnnlint_package.watch.lightning.RnnlintWatch  # as the README spells it

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()

        def training_step(self, batch, batch_idx):
            out, _ = self.encoder(batch[0])
            return out.pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    data = torch.utils.data.TensorDataset(padded_batch(lengths=(7, 4, 2, 6, 3, 8, 5, 1)))
    callback = RnnlintWatch(warn=False)
    trainer = pl.Trainer(max_steps=3, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         accelerator="cpu")
    trainer.fit(Module(), torch.utils.data.DataLoader(data, batch_size=4))
    assert [f["code"] for f in callback.watcher.findings] == ["RNN010"]
    assert callback.watcher.steps == 3 and not callback.watcher.attached


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                    reason="transformers is not installed (optional)")
def test_huggingface_callback(tmp_path):
    import transformers

    RnnlintWatchCallback = rnnlint_package.watch.huggingface.RnnlintWatchCallback

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()

        def forward(self, x, labels=None):
            out, _ = self.encoder(x)
            return {"loss": (out.squeeze(-1) - labels).pow(2).mean(), "logits": out}

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, index):
            length = 2 + index % 6
            x = torch.zeros(8, 4)
            x[:length] = torch.randn(length, 4)
            return {"x": x, "labels": torch.tensor(0.0)}

    callback = RnnlintWatchCallback(warn=False)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4,
                                          report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no")
    transformers.Trainer(model=Model(), args=args, train_dataset=Data(), callbacks=[callback]).train()
    assert [f["code"] for f in callback.watcher.findings] == ["RNN010"]
    assert callback.watcher.steps == 3 and callback.watcher.measured()["clipping_seen"] is True


# -- the command line ------------------------------------------------------------------------------


def test_import_rnnlint_and_the_watch_package_never_import_torch():
    code = ("import sys, rnnlint, rnnlint.watch, rnnlint.watch.observe, rnnlint.watch.command; "
            "assert callable(rnnlint.watch); print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_lists_watch(tmp_path):
    result = rnnlint("--help", cwd=tmp_path)
    assert result.returncode == 0 and "watch" in result.stdout
    result = rnnlint("watch", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--steps" in result.stdout and "--output-format" in result.stdout


def test_usage_errors_exit_2(tmp_path):
    assert rnnlint("watch", "missing.py", cwd=tmp_path).returncode == 2
    (tmp_path / "notes.txt").write_text("x")
    assert rnnlint("watch", "notes.txt", cwd=tmp_path).returncode == 2


def tree_hash(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def watch_fixture(tmp_path: Path, name: str, steps: int, *extra: str):
    project = tmp_path / name
    shutil.copytree(FIXTURES / name, project)
    (project / "pyproject.toml").write_text("[tool.rnnlint]\n")
    before = tree_hash(project)
    report = tmp_path / "report.json"
    result = rnnlint_process("watch", "train.py", "--steps", str(steps), "--json", str(report), *extra, cwd=project,
                     env=ENV, timeout=300)
    assert tree_hash(project) == before, "watch changed the user's files"
    document = json.loads(report.read_text())
    return result, document


@pytest.mark.slow
def test_e2e_padded_batch(tmp_path):
    result, document = watch_fixture(tmp_path, "padded_batch", 3)
    assert result.returncode == 1, result.stderr
    assert [f["code"] for f in document["findings"]] == ["RNN010"]
    finding = document["findings"][0]
    source = (FIXTURES / "padded_batch" / "train.py").read_text().splitlines()
    assert finding["observed"] is True and finding["path"] == "train.py"
    assert "self.encoder(x)" in source[finding["line"] - 1]
    assert finding["module"]["class"] == "LSTM" and "nn.LSTM(" in source[finding["module"]["line"] - 1]
    assert finding["module"]["file"] == str(tmp_path / "padded_batch" / "train.py")
    assert finding["fix"]["applicability"] == "display-only" and finding["fix"]["edits"] == []
    assert document["measured"]["steps"] == 3 and document["measured"]["clipping_seen"] is True
    assert "RNN010 [observed at step 1]" in result.stdout and "built at train.py:" in result.stdout


@pytest.mark.slow
def test_e2e_padded_targets(tmp_path):
    result, document = watch_fixture(tmp_path, "padded_targets", 3)
    assert result.returncode == 1, result.stderr
    observed = [f for f in document["findings"] if f["observed"]]
    assert [f["code"] for f in observed] == ["RNN013"]
    source = (FIXTURES / "padded_targets" / "train.py").read_text().splitlines()
    assert "loss_fn(" in source[observed[0]["line"] - 1]
    # the static stage sees it too, where ignore_index goes (the loss's constructor)
    assert [f["code"] for f in document["findings"] if not f["observed"]] == ["RNN013"]


@pytest.mark.slow
def test_e2e_stateful_crash_is_explained(tmp_path):
    result, document = watch_fixture(tmp_path, "stateful", 10)
    assert result.returncode == 1, result.stderr
    assert [f["code"] for f in document["findings"] if f["observed"]] == ["RNN030"]
    assert document["crash_explained_by"] == "RNN030"
    assert document["measured"]["stopped"] == "error" and "backward through the graph" in document["measured"]["error"]
    assert "follows from RNN030" in result.stdout


@pytest.mark.slow
def test_e2e_exploding(tmp_path):
    result, document = watch_fixture(tmp_path, "exploding", 30, "--output-format", "json")
    assert result.returncode == 1, result.stderr
    assert sorted(f["code"] for f in document["findings"]) == ["RNN001", "RNN020"]
    printed = json.loads(result.stdout)
    assert [f["code"] for f in printed] == [f["code"] for f in document["findings"]]
    assert all(f["observed"] is True for f in printed)
    source = (FIXTURES / "exploding" / "train.py").read_text().splitlines()
    rnn020 = next(f for f in printed if f["code"] == "RNN020")
    assert "getattr(torch.optim" in source[rnn020["line"] - 1]  # where the optimizer is built
    measured = document["measured"]
    assert measured["first_nonfinite"]["step"] >= 2 and measured["clipping_seen"] is False
    assert measured["stopped"] == "nonfinite"


@pytest.mark.slow
def test_e2e_saturated(tmp_path):
    result, document = watch_fixture(tmp_path, "saturated", 4)
    assert result.returncode == 1, result.stderr
    assert [f["code"] for f in document["findings"]] == ["RNN106"]
    source = (FIXTURES / "saturated" / "train.py").read_text().splitlines()
    assert "nn.GRU(" in source[document["findings"][0]["line"] - 1]  # reported where the module is built


@pytest.mark.slow
def test_e2e_healthy_reports_nothing(tmp_path):
    result, document = watch_fixture(tmp_path, "healthy", 10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert document["findings"] == [] and document["measured"]["steps"] == 10
    assert "No observed findings." in result.stdout


@pytest.mark.slow
def test_e2e_lengths_on_cpu_observe_nothing_and_list_the_static_finding(tmp_path):
    """On the CPU the run packs without error; the static stage still sees lengths counted on the GPU when the
    script runs there, listed apart as a static finding."""
    result, document = watch_fixture(tmp_path, "lengths_on_gpu", 3, "--device", "cpu")
    assert result.returncode == 1, result.stdout + result.stderr
    assert [(f["code"], f["observed"]) for f in document["findings"]] == [("RNN011", False)]
    assert "No observed" not in result.stdout and "1 static finding." in result.stdout


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_e2e_lengths_on_gpu(tmp_path):
    result, document = watch_fixture(tmp_path, "lengths_on_gpu", 3)
    assert result.returncode == 1, result.stderr
    assert [f["code"] for f in document["findings"]] == ["RNN011"]
    assert document["crash_explained_by"] == "RNN011"


def test_static_stage_sees_only_the_failures_it_can_follow(tmp_path):
    """The padded targets (padded by a helper of the file), the state kept on the model and the lengths counted
    from a batch the loop moved to the GPU are visible to the static stage; the other fixtures' failures show
    only in the run."""
    result = rnnlint("check", "--static", "--no-cache", "--output-format", "json", "fixtures/watch",
                     cwd=fixture_copy(tmp_path, "fixtures/watch"))
    found = sorted((Path(d["path"]).parent.name, d["code"]) for d in json.loads(result.stdout))
    assert found == [("lengths_on_gpu", "RNN011"), ("padded_targets", "RNN013"), ("stateful", "RNN030"),
                     ("stateful", "RNN030")], result.stdout


@pytest.mark.slow
def test_e2e_check_and_watch_agree_on_codes(tmp_path):
    """verify's exploding RNN: the static rules see RNN001 and RNN020, and the run shows both, at the same lines."""
    project = tmp_path / "exploding_rnn"
    shutil.copytree(FIXTURES.parent / "verify" / "exploding_rnn", project)
    report = tmp_path / "report.json"
    result = rnnlint_process("watch", "train.py", "--steps", "40", "--json", str(report), cwd=project, env=ENV, timeout=300)
    assert result.returncode == 1, result.stderr
    findings = json.loads(report.read_text())["findings"]
    assert sorted((f["code"], f["observed"], f["inferred"]) for f in findings) == [
        ("RNN001", True, True), ("RNN020", True, True)]
    static = json.loads(rnnlint("check", "--static", "--output-format", "json", "train.py", cwd=project).stdout)
    assert sorted((d["code"], d["line"]) for d in static) == sorted((f["code"], f["line"]) for f in findings)
    result = rnnlint_process("watch", "train.py", "--steps", "2", "--output-format", "json", cwd=project, env=ENV,
                     timeout=300)
    shown = json.loads(result.stdout)
    assert sorted((f["code"], f["observed"]) for f in shown) == [("RNN001", False), ("RNN020", False)]
    no_static = rnnlint_process("watch", "train.py", "--steps", "2", "--no-static", cwd=project, env=ENV, timeout=300)
    assert no_static.returncode == 0 and "No observed findings." in no_static.stdout
