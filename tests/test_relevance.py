"""Only the files that can matter reach libcst, and the findings stay what they were.

The project map (:mod:`rnnlint.static.projectmap`) decides from CPython's parser which
files could hold a finding: those that build, use, train or feed a recurrent
model, across files. These tests run the real command line (in this process), with the
map (the default) and without it (``RNNLINT_RELEVANCE=0``), and compare.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path
from unittest import mock

import libcst
import pytest

from rnnlint.static.runner import RELEVANCE_ENV
from tests.helpers import fixture_copy, rnnlint, rnnlint_process


PROJECT = {
    "models/__init__.py": "# file: models/__init__.py\nfrom .seq2seq import Seq2Seq\n",
    "models/seq2seq.py": """\
        # file: models/seq2seq.py
        import torch.nn as nn


        class Encoder(nn.Module):
            def __init__(self, size):
                super().__init__()
                self.rnn = nn.LSTM(size, size, batch_first=True)

            def forward(self, x):
                return self.rnn(x)[0]


        class Seq2Seq(nn.Module):  # composition: recurrent through Encoder
            def __init__(self, size):
                super().__init__()
                self.encoder = Encoder(size)

            def forward(self, x):
                return self.encoder(x)
        """,
    "config.py": "# file: config.py\nLEARNING_RATE = 0.05\n",
    "loop.py": """\
        # file: loop.py
        def fit(model, batches, optimizer, loss_fn):
            for x, y in batches:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
    "train.py": """\
        # file: train.py
        import torch
        from torch import optim

        from config import LEARNING_RATE
        from loop import fit
        from models import Seq2Seq


        def main():
            model = Seq2Seq(32)
            optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE)
            for x, y in []:
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            fit(model, [], optimizer, torch.nn.functional.mse_loss)
        """,
    # a convolutional project beside it: training code, no recurrent model anywhere near
    "vision/net.py": """\
        # file: vision/net.py
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)

            def forward(self, x):
                return self.conv(x)
        """,
    "vision/train_cnn.py": """\
        # file: vision/train_cnn.py
        import torch
        from net import Net

        model = Net().to("cuda")
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for x, y in []:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        """,
    "vision/broken.py": "# file: vision/broken.py\ndef step(:\n    pass\n",
}


def make(tmp_path: Path) -> Path:
    for name, text in PROJECT.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def check(tree: Path, *args: str, relevance: bool = True, process: bool = False) -> dict:
    """``check --static`` with the project map (the default) or without it; its findings, and which files libcst
    parsed (each file of the test projects starts with a ``# file: NAME`` line). ``process``: in a new interpreter
    (where a pool of workers checks a large tree), which reports no parses."""
    env = {RELEVANCE_ENV: "1" if relevance else "0"}
    args = ("check", "--static", "--no-cache", "--output-format", "json", *args)
    parsed: list[str] = []
    if process:
        result = rnnlint_process(*args, cwd=tree, env=env, timeout=600)
    else:
        real = libcst.parse_module

        def parse_module(source, *more, **options):
            text = source if isinstance(source, str) else source.decode("utf-8", "replace")
            parsed.append(text.split("\n", 1)[0])
            return real(source, *more, **options)

        with mock.patch.object(libcst, "parse_module", parse_module):
            result = rnnlint(*args, cwd=tree, env=env)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return {"parsed": parsed, "findings": json.loads(result.stdout or "[]")}


def where(findings: list[dict]) -> set[tuple[str, str]]:
    return {(d["path"], d["code"]) for d in findings}


def test_only_the_files_that_can_matter_are_parsed_and_the_findings_stay(tmp_path):
    tree = make(tmp_path)
    before = check(tree, ".", relevance=False)
    after = check(tree, ".")
    assert after["findings"] == before["findings"]
    found = where(after["findings"])
    # across files: train.py holds no recurrent word, its model is recurrent through models/
    assert ("train.py", "RNN001") in found and ("train.py", "RNN020") in found
    assert ("vision/broken.py", "RNN900") in found  # CPython's parser still reads every file
    assert not any(path.startswith("vision/train_cnn") for path, _ in found)
    parsed = set(after["parsed"])
    assert "# file: train.py" in parsed and "# file: models/seq2seq.py" in parsed
    # the flow model still reads the files the relevant ones take values from
    assert "# file: config.py" in parsed
    # the convolutional files were mapped and skipped; without the map libcst read them
    assert not {"# file: vision/train_cnn.py", "# file: vision/net.py"} & parsed
    assert "# file: vision/train_cnn.py" in set(before["parsed"])


def test_a_helper_handed_the_recurrent_model_still_matters(tmp_path):
    # loop.py holds no recurrent word and imports nothing recurrent: train.py hands it the model
    tree = make(tmp_path)
    before = check(tree, "loop.py", "train.py", relevance=False)
    after = check(tree, "loop.py", "train.py")
    assert after["findings"] == before["findings"]
    assert ("loop.py", "RNN001") in where(after["findings"])


def test_recurrent_classes_from_config_count_as_recurrent(tmp_path):
    # a recurrent class of another library, declared in config: the files that use it matter
    tree = make(tmp_path)
    (tree / "pyproject.toml").write_text('[tool.rnnlint]\nrecurrent-classes = ["sru.SRU"]\n')
    (tree / "tagger.py").write_text(textwrap.dedent("""\
        # file: tagger.py
        import torch
        from sru import SRU

        model = SRU(32, 32)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for x, y in []:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x)[0], y).backward()
            optimizer.step()
        """))
    before = check(tree, ".", relevance=False)
    after = check(tree, ".")
    assert after["findings"] == before["findings"]
    assert ("tagger.py", "RNN001") in where(after["findings"])


@pytest.mark.slow  # the whole fixtures/realcode tree, twice
def test_the_fixtures_report_the_same_with_and_without_the_map(tmp_path):
    realcode = fixture_copy(tmp_path, "fixtures/realcode") / "fixtures" / "realcode"
    before = check(realcode, ".", relevance=False, process=True)
    after = check(realcode, ".", process=True)
    assert len(before["findings"]) > 10
    assert after["findings"] == before["findings"]


def test_a_docstring_on_the_class_line_keeps_the_class_and_its_base():
    """``class Encoder(BaseRNN): \"\"\"doc\"\"\"`` on one line: the docstring's prose is dropped, the class and
    its base are not (or a subclass of a recurrent base would look irrelevant)."""
    from rnnlint.static.projectmap import map_text

    mapped = map_text('from models import BaseRNN\nclass Encoder(BaseRNN): """Encoder."""\n')
    assert "BaseRNN" in json.dumps(mapped.to_json())
    assert "Encoder" in json.dumps(mapped.to_json())


@pytest.mark.parametrize("header, module", [("import torch.nn as tnn", "tnn"), ("from torch import nn as layers", "layers"),
                                            ("import torch as T", "T.nn"), ("from torch import nn", "nn")])
def test_a_layer_picked_by_name_counts_as_recurrent_however_torch_nn_is_imported(tmp_path, header, module):
    """``getattr(tnn, cell.upper())(...)`` may build a GRU: the model's file, and the script that trains it, matter
    with the module under any alias (the map once knew only ``nn``, and the script's findings vanished)."""
    (tmp_path / "decoder.py").write_text(textwrap.dedent(f"""\
        # file: decoder.py
        {header}


        class Decoder({module}.Module):
            def __init__(self, cell="gru"):
                super().__init__()
                self.rnn = getattr({module}, cell.upper())(8, 8)
        """))
    (tmp_path / "train.py").write_text(textwrap.dedent("""\
        # file: train.py
        import torch
        from decoder import Decoder

        model = Decoder()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in []:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        """))
    before = check(tmp_path, ".", relevance=False)
    after = check(tmp_path, ".")
    assert ("train.py", "RNN001") in where(before["findings"])
    assert after["findings"] == before["findings"]


def _gpu_lengths_project(root: Path, others: int) -> Path:
    """A model that packs the lengths its forward is handed, a script that hands them on the GPU, and
    ``others`` files of another kind of model, run on the GPU: nothing recurrent reaches those."""
    (root / "model.py").write_text(textwrap.dedent("""\
        # file: model.py
        import torch.nn as nn
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(8, 8, batch_first=True)

            def forward(self, x, lengths):
                packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                return pad_packed_sequence(self.rnn(packed)[0], batch_first=True)[0]
        """))
    (root / "train.py").write_text(textwrap.dedent("""\
        # file: train.py
        import torch
        from model import Tagger

        device = torch.device("cuda")
        model = Tagger().to(device)
        for x, lengths in []:
            out = model(x.to(device), lengths.to(device))
        """))
    (root / "vision").mkdir()
    for i in range(others):
        (root / "vision" / f"net{i}.py").write_text(
            f"# file: vision/net{i}.py\nimport torch\n\n\ndef run(model, x, device):\n"
            f"    return model(x.to(device), x.to(device))\n")
    return root


def test_a_check_of_one_file_scans_the_project_as_a_whole_run_does(tmp_path):
    """Pre-commit checks the model file alone: who hands its forward lengths on the GPU is looked for among
    the files that can matter, as in a run over the whole project, not in every file that moves a tensor to a
    device (in fairseq, 297 files parsed with libcst for one check)."""
    _gpu_lengths_project(tmp_path, 25)
    whole = check(tmp_path, ".")
    alone = check(tmp_path, "model.py")
    assert [d for d in whole["findings"] if d["path"] == "model.py"] == alone["findings"]
    assert ("model.py", "RNN011") in where(alone["findings"])
    assert not [first for first in alone["parsed"] if "vision/" in first], alone["parsed"]



def test_the_callers_of_a_pack_are_looked_for_among_the_files_that_can_matter_to_it(tmp_path):
    """A recurrent language model beside the tagger, trained on the GPU, matters to the rules on recurrent
    models but never reaches the tagger's pack: the search for who hands the pack GPU lengths leaves it
    unread (in fairseq, 26 files that can matter and move tensors, 12 of them near a pack)."""
    _gpu_lengths_project(tmp_path, 0)
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "model.py").write_text(textwrap.dedent("""\
        # file: lm/model.py
        import torch.nn as nn


        class LanguageModel(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(8, 8, batch_first=True)

            def forward(self, x, state):
                return self.rnn(x, state)
        """))
    (tmp_path / "lm" / "train_lm.py").write_text(textwrap.dedent("""\
        # file: lm/train_lm.py
        from model import LanguageModel

        model = LanguageModel().cuda()
        for x, state in []:
            out = model(x.cuda(), state)
        """))
    unscoped = check(tmp_path, "model.py", relevance=False)
    alone = check(tmp_path, "model.py")
    assert ("model.py", "RNN011") in where(alone["findings"])
    assert alone["findings"] == unscoped["findings"]
    assert "# file: train.py" in alone["parsed"]
    assert "# file: lm/train_lm.py" in unscoped["parsed"]
    assert "# file: lm/train_lm.py" not in alone["parsed"], alone["parsed"]

def test_one_file_of_a_large_project_finds_the_same_on_one_core_and_on_all(tmp_path):
    """The project such a search needs is mapped on every core when it is large: the same findings."""
    _gpu_lengths_project(tmp_path, 240)
    serial = check(tmp_path, "--jobs", "1", "model.py")
    pooled = check(tmp_path, "--jobs", "2", "model.py")
    assert ("model.py", "RNN011") in where(serial["findings"])
    assert pooled["findings"] == serial["findings"]


def _logging_parses(log: Path):
    """libcst's parse_module, writing ``pid<TAB>first line`` of each text it parses to ``log`` (in any
    process: a pool's workers are forks of this one)."""
    real = libcst.parse_module

    def parse_module(source, *more, **options):
        with log.open("a") as out:
            out.write(f"{os.getpid()}\t{source.split(chr(10), 1)[0]}\n")
        return real(source, *more, **options)

    return mock.patch.object(libcst, "parse_module", parse_module)


def test_the_workers_inherit_the_seed_files_parsed_while_relevance_is_worked_out(tmp_path):
    """A large run works out relevance in a forked copy while it parses the files that hold a relevance
    word; the workers fork after that and inherit those trees: every worker's project-wide questions lead
    to them, and each parsed them again (fairseq: 30 files parsed by both workers, 0.9 CPU-s)."""
    from rnnlint.static import runner

    root = _gpu_lengths_project(tmp_path, 240)
    serial = check(root, "--jobs", "1", ".")
    log = tmp_path / "parses.log"
    decide = runner._decide_child

    def slow_decide(*args):
        time.sleep(1)  # the parent has parsed the seeds by then (here one small file, model.py)
        decide(*args)

    with _logging_parses(log), mock.patch.object(runner, "_decide_child", slow_decide):
        pooled = rnnlint("check", "--static", "--no-cache", "--jobs", "2", "--output-format", "json", ".", cwd=root)
    assert json.loads(pooled.stdout) == serial["findings"]
    assert ("model.py", "RNN011") in where(serial["findings"])
    parses = [line.split("\t") for line in log.read_text().splitlines()]
    assert [pid for pid, first in parses if first == "# file: model.py"] == [str(os.getpid())], parses
    assert [pid for pid, first in parses if first == "# file: train.py"] != [str(os.getpid())], parses


def test_a_run_whose_relevance_copy_dies_decides_itself_and_finds_the_same(tmp_path):
    from rnnlint.static import runner

    root = _gpu_lengths_project(tmp_path, 240)
    serial = check(root, "--jobs", "1", ".")
    with mock.patch.object(runner, "_decide_child", lambda *args: os._exit(1)):
        pooled = rnnlint("check", "--static", "--no-cache", "--jobs", "2", "--output-format", "json", ".", cwd=root)
    assert pooled.returncode == 1, pooled.stdout + pooled.stderr
    assert json.loads(pooled.stdout) == serial["findings"]
    assert ("model.py", "RNN011") in where(serial["findings"])


def test_the_workers_leave_what_they_inherit_out_of_their_collections(tmp_path):
    """The analysis workers fork from a process that holds the project map (and libcst's trees of the seed
    files): frozen, so that no collection of theirs walks it. The run's own process gets its collector back."""
    import gc

    from rnnlint.config import load_config
    from rnnlint.static import runner

    root = _gpu_lengths_project(tmp_path, 60)
    files = sorted(root.rglob("*.py"))

    def frozen(task):
        return runner.FileOutcome(task[0], messages=[str(gc.get_freeze_count())])

    with mock.patch.object(runner, "_work", frozen):
        outcomes = runner.run(files, load_config([root], None), jobs=2, use_cache=False)
    counts = [int(o.messages[0]) for o in outcomes if o.messages]
    assert counts and min(counts) > 1000, counts  # model.py and train.py, analysed in a worker
    assert gc.get_freeze_count() == 0


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="reads a process's children from /proc (Linux with CONFIG_PROC_CHILDREN)")
def test_ctrl_c_stops_a_large_run_with_one_message_and_no_worker_tracebacks(tmp_path):
    """Ctrl-C reaches every process of the terminal's group: the run, its mapping and analysis workers,
    relevance's copy. Only the run answers it ("Aborted!"); the processes it forked leave it to the run,
    which stops them. Each printed its own KeyboardInterrupt traceback before."""
    import signal
    import subprocess
    import sys

    root = _gpu_lengths_project(tmp_path, 400)  # about 0.55 s from the first fork to the end on this machine
    # with Ctrl-C as a terminal gives it: a suite started in the background (``pytest ... &`` from a script)
    # ignores SIGINT, as every command a shell without job control starts with ``&`` does, and a child
    # inherits that: Python would never install its KeyboardInterrupt handler and the run would end as if
    # never interrupted
    run = subprocess.Popen([sys.executable, "-m", "rnnlint", "check", "--static", "--no-cache", "--jobs", "2", "."],
                           cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    children = Path(f"/proc/{run.pid}/task/{run.pid}/children")
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        if children.exists() and children.read_text().split():  # a pool's workers, or the copy
            time.sleep(0.05)
            break
        time.sleep(0.005)
    assert run.poll() is None, "the run ended before it forked: the project is too small for this test"
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "Aborted!" in err, (run.returncode, out[-300:])


def test_a_warm_run_of_a_large_project_maps_nothing(tmp_path):
    """Nothing changed: the cached relevance and results answer, and no file is mapped (a few-file run's
    mapping on every core once ran here too, a quarter of a warm run's time on fairseq)."""
    from rnnlint.static import runner

    root = _gpu_lengths_project(tmp_path, 240)
    cold = rnnlint("check", "--static", "--jobs", "2", "--output-format", "json", ".", cwd=root)
    with mock.patch.object(runner.Session, "map_project", side_effect=AssertionError("mapped a file")) as mapped, \
            mock.patch.object(runner.ProjectMap, "map", side_effect=AssertionError("mapped a file")):
        warm = rnnlint("check", "--static", "--jobs", "2", "--output-format", "json", ".", cwd=root)
    assert warm.returncode == cold.returncode == 1, warm.stdout + warm.stderr
    assert json.loads(warm.stdout) == json.loads(cold.stdout) and not mapped.called


_EDITED = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.{layer}(8, 8)

    def forward(self, x):
        return self.rnn(x)[0]


def make_optimizer(model, lr):
    return torch.optim.Adam(model.parameters(), lr=lr)


model = Net()
optimizer = make_optimizer(model, 0.05)
"""


def test_code_on_stdin_is_searched_as_it_is_not_as_the_file_on_disk(tmp_path):
    """An editor sends its unsaved buffer: the buffer builds an LSTM, the saved file does not. Who calls
    ``make_optimizer`` is searched in the buffer, though the map of the saved file says it cannot matter."""
    (tmp_path / "train.py").write_text(_EDITED.format(layer="Linear"))
    saved = rnnlint("check", "--static", "--no-cache", "train.py", cwd=tmp_path)
    edited = rnnlint("check", "--static", "--no-cache", "--stdin-filename", "train.py", "-", cwd=tmp_path,
                     input=_EDITED.format(layer="LSTM"))
    assert saved.returncode == 0, saved.stdout
    assert "train.py:15:52: RNN020" in edited.stdout, edited.stdout + edited.stderr


def test_a_model_picked_from_a_project_module_by_name_matters(tmp_path):
    """``getattr(models, args.arch)()``: the script builds whichever model of ``models`` the command line
    names, so it uses them all; the map once judged it irrelevant and both its finding and the model's
    (which a one-file check of the model found only while searches read every file) were lost."""
    _gpu_lengths_project(tmp_path, 0)
    (tmp_path / "train.py").write_text(textwrap.dedent("""\
        # file: train.py
        import argparse

        import torch

        import model as models

        parser = argparse.ArgumentParser()
        parser.add_argument("--arch", default="Tagger")
        args = parser.parse_args()
        device = torch.device("cuda")
        net = getattr(models, args.arch)().to(device)
        for x, lengths in []:
            out = net(x.to(device), lengths.to(device))
        """))
    before = check(tmp_path, ".", relevance=False)
    after = check(tmp_path, ".")
    assert {("train.py", "RNN011"), ("model.py", "RNN011")} <= where(before["findings"])
    assert after["findings"] == before["findings"]
    alone = check(tmp_path, "model.py")
    assert alone["findings"] == [d for d in before["findings"] if d["path"] == "model.py"]


@pytest.mark.parametrize("helper", ["utils", "helpers"])  # analysed after the notebook, and before it
def test_a_notebook_that_hands_its_model_to_a_helper_makes_the_helper_matter(tmp_path, helper):
    """The notebook defines the model and hands it to ``utils.train_epoch``, which moves the lengths to the
    GPU: the map reads the notebook's code cells too, so the helper is among the files searched; and what
    the helper's own analysis concluded of the project (nothing packs lengths) is not kept once the
    notebook, which packs them, joins the files searched."""
    cells = ["import torch\nimport torch.nn as nn\nfrom torch.nn.utils.rnn import pack_padded_sequence\n"
             f"from {helper} import train_epoch\n",
             "class Tagger(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.rnn = nn.LSTM(8, 8, batch_first=True)\n\n    def forward(self, x, lengths):\n"
             "        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)\n"
             "        return self.rnn(packed)[0]\n",
             "device = torch.device('cuda')\nmodel = Tagger().to(device)\ntrain_epoch(model, [], device)\n"]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
                "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                           "source": cell.splitlines(keepends=True)} for cell in cells]}
    (tmp_path / "tagger.ipynb").write_text(json.dumps(notebook))
    (tmp_path / f"{helper}.py").write_text("def train_epoch(model, loader, device):\n    for x, lengths in loader:\n"
                                       "        model(x.to(device), lengths.to(device))\n")
    before = check(tmp_path, ".", relevance=False)
    assert ("tagger.ipynb", "RNN011") in where(before["findings"]), before["findings"]
    assert check(tmp_path, ".")["findings"] == before["findings"]
    assert check(tmp_path, "tagger.ipynb")["findings"] == before["findings"]
