"""RNN001 missing-grad-clip and RNN002 misplaced-grad-clip beyond single snippets:
several files, both rules together, options, and fixed code that really runs."""

from __future__ import annotations

import textwrap

import pytest

from rnnlint.rule import dedent
from tests import helpers

BOTH = ["RNN001", "RNN002"]

MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])
"""


def codes(found):
    return [(d.code, d.line) for d in found]


def test_model_imported_by_relative_import_is_recurrent(tmp_path):
    files = {"pkg/__init__.py": "", "pkg/model.py": MODEL}
    train = dedent("""
        import torch
        from .model import Net

        def main(loader):
            model = Net()
            optimizer = torch.optim.Adam(model.parameters())
            for x, y in loader:
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
    """)
    helpers.write_project(tmp_path, "", files)
    path = tmp_path / "pkg" / "train.py"
    path.write_text(train, "utf-8")
    found = helpers.session(tmp_path, select=BOTH).check(path).diagnostics
    assert codes(found) == [("RNN001", 9)]
    assert "optimizer" in found[0].message and "explode" in found[0].message


def test_relative_import_of_a_cnn_stays_quiet(tmp_path):
    cnn = "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv1d(4, 8, 3)\n"
    helpers.write_project(tmp_path, "", {"pkg/__init__.py": "", "pkg/model.py": cnn})
    path = tmp_path / "pkg" / "train.py"
    path.write_text(
        "import torch\nfrom .model import Net\nmodel = Net()\nopt = torch.optim.Adam(model.parameters())\n"
        "for x in loader:\n    model(x).sum().backward()\n    opt.step()\n",
        "utf-8",
    )
    assert helpers.session(tmp_path, select=BOTH).check(path).diagnostics == []


def test_clipping_helper_imported_by_relative_import_counts(tmp_path):
    helper = "import torch.nn as tnn\n\ndef clip_all(model):\n    tnn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
    helpers.write_project(tmp_path, "", {"pkg/__init__.py": "", "pkg/model.py": MODEL, "pkg/util.py": helper})
    path = tmp_path / "pkg" / "train.py"
    path.write_text(
        "import torch\nfrom .model import Net\nfrom .util import clip_all\n"
        "model = Net()\nopt = torch.optim.Adam(model.parameters())\n"
        "for x in loader:\n    model(x).sum().backward()\n    clip_all(model)\n    opt.step()\n",
        "utf-8",
    )
    assert helpers.session(tmp_path, select=BOTH).check(path).diagnostics == []


def test_max_norm_option_changes_the_inserted_value(tmp_path):
    source = MODEL + "\nmodel = Net()\nopt = torch.optim.Adam(model.parameters())\nfor x in loader:\n    model(x).sum().backward()\n    opt.step()\n"
    default, _ = helpers.fix(tmp_path, source, select=BOTH)
    custom, _ = helpers.fix(tmp_path, source, select=BOTH, options={"missing-grad-clip": {"max-norm": 0.25}})
    assert "clip_grad_norm_(model.parameters(), max_norm=1.0)" in default
    assert "clip_grad_norm_(model.parameters(), max_norm=0.25)" in custom


def test_max_norm_option_must_be_a_number(tmp_path):
    with pytest.raises(Exception, match="max-norm"):
        helpers.session(tmp_path, select=BOTH, options={"missing-grad-clip": {"max-norm": "big"}})


def test_misplaced_clip_is_moved_not_duplicated(tmp_path):
    """With a clip after step(), RNN001 stays quiet and RNN002's move leaves exactly one clip."""
    source = MODEL + textwrap.dedent("""
        model = Net()
        opt = torch.optim.Adam(model.parameters())
        for x in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    """)
    found = helpers.check(tmp_path, source, select=BOTH)
    assert [d.code for d in found] == ["RNN002"]
    fixed, remaining = helpers.fix(tmp_path, source, select=BOTH)
    assert fixed.count("clip_grad_norm_") == 1
    assert fixed.index("clip_grad_norm_") < fixed.index("opt.step()")
    assert remaining == []
    again, _ = helpers.fix(tmp_path, fixed, select=BOTH)
    assert again == fixed


def test_two_loops_fixed_once_and_idempotent(tmp_path):
    """A pre-training loop without clip and a fine-tuning loop with clip after step."""
    source = MODEL + textwrap.dedent("""
        def pretrain(model, loader):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x in loader:
                model(x).sum().backward()
                opt.step()

        def finetune(model, loader):
            opt = torch.optim.Adam(model.parameters())
            for x in loader:
                model(x).sum().backward()
                opt.step()
                torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)
    """)
    assert sorted(d.code for d in helpers.check(tmp_path, source, select=BOTH)) == BOTH
    fixed, remaining = helpers.fix(tmp_path, source, select=BOTH)
    assert remaining == []
    assert fixed.count("clip_grad_norm_(model.parameters(), max_norm=1.0)") == 1
    assert fixed.count("clip_grad_value_") == 1
    again, _ = helpers.fix(tmp_path, fixed, select=BOTH)
    assert again == fixed


def test_lbfgs_closure_and_retain_graph(tmp_path):
    """A step whose backward lives in a closure is not paired; backward(retain_graph=True)
    is not mistaken for accelerator.backward(loss)."""
    source = MODEL + textwrap.dedent("""
        model = Net()
        lbfgs = torch.optim.LBFGS(model.parameters())
        adam = torch.optim.Adam(model.parameters())
        for x in loader:
            def closure():
                lbfgs.zero_grad()
                loss = model(x).sum()
                loss.backward()
                return loss
            lbfgs.step(closure)
            loss = model(x).sum()
            loss.backward(retain_graph=True)
            adam.step()
    """)
    found = helpers.check(tmp_path, source, select=BOTH)
    assert [d.message.split(" ")[0] for d in found] == ["adam.step()"]
    fixed, _ = helpers.fix(tmp_path, source, select=BOTH)
    assert "    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n    adam.step()" in fixed


def test_lightning_manual_optimization(tmp_path):
    """gradient_clip_val is refused by Lightning under manual optimization: the Trainer is
    left alone and the hand-written step in training_step is reported instead."""
    source = dedent("""
        import torch
        from torch import nn
        import lightning as L

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.automatic_optimization = False
                self.rnn = nn.LSTM(4, 8)

            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                loss = self.rnn(batch)[0].sum()
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()

        L.Trainer(max_epochs=1).fit(Lit())
    """)
    found = helpers.check(tmp_path, source, select=BOTH)
    assert codes(found) == [("RNN001", 16)]
    fixed, _ = helpers.fix(tmp_path, source, select=BOTH)
    assert 'clip_grad_norm_([p for group in opt.param_groups for p in group["params"]], max_norm=1.0)' in fixed


def test_lightning_trainer_with_unknown_kwargs_is_quiet(tmp_path):
    source = MODEL + "\nimport lightning as L\ncfg = {'max_epochs': 1}\nL.Trainer(**cfg).fit(Net())\n"
    assert helpers.check(tmp_path, source, select=BOTH) == []


def test_fixed_code_clips_the_real_gradients(tmp_path):
    """The inserted line is valid, runnable PyTorch that bounds the gradient norm at step()."""
    torch = pytest.importorskip("torch")
    source = MODEL + textwrap.dedent("""
        def train_step(model, optimizer, x, y):
            optimizer.zero_grad()
            loss = ((model(x) - y) * 1e4).pow(2).mean()
            loss.backward()
            optimizer.step()
    """)
    fixed, _ = helpers.fix(tmp_path, source, select=BOTH, options={"missing-grad-clip": {"max-norm": 0.5}})
    assert "param_groups" in fixed
    assert _norm_at_step(torch, fixed) <= 0.5 + 1e-4


def _norm_at_step(torch, fixed: str) -> float:
    """Run the fixed ``train_step`` once: the gradient norm that step() sees."""
    namespace: dict = {}
    exec(compile(fixed, "train.py", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["Net"]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    norms = []
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: norms.append(
            torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
        )
    )
    namespace["train_step"](model, optimizer, torch.randn(2, 5, 4), torch.zeros(2, 1))
    assert norms, "step() never ran"
    return norms[0]


def test_clip_sharing_a_block_with_other_code_is_reported_without_fix(tmp_path):
    source = MODEL + textwrap.dedent("""
        model = Net()
        opt = torch.optim.Adam(model.parameters())
        for x in loader:
            model(x).sum().backward()
            opt.step()
            if log_norms:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                print(norm)
    """)
    found = helpers.check(tmp_path, source, select=BOTH)
    assert [d.code for d in found] == ["RNN002"]
    assert found[0].fix is None  # moving the clip out of the `if` would change what runs
    fixed, _ = helpers.fix(tmp_path, source, select=BOTH)
    assert fixed == source


def test_clip_before_backward_moves_into_the_accumulation_branch(tmp_path):
    source = MODEL + textwrap.dedent("""
        model = Net()
        opt = torch.optim.Adam(model.parameters())
        for i, x in enumerate(loader):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            model(x).sum().backward()
            if i % 4 == 3:
                opt.step()
                opt.zero_grad()
    """)
    fixed, remaining = helpers.fix(tmp_path, source, select=BOTH)
    assert remaining == []
    assert fixed.endswith(textwrap.dedent("""
        for i, x in enumerate(loader):
            model(x).sum().backward()
            if i % 4 == 3:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
    """))


def test_lightning_trainer_without_arguments_gets_the_keyword(tmp_path):
    source = MODEL.replace("nn.Module", "L.LightningModule") + "\nimport lightning as L\nL.Trainer().fit(Net(), loader)\n"
    source = "import lightning as L\n" + source
    found = helpers.check(tmp_path, source, select=BOTH)
    assert [d.code for d in found] == ["RNN001"]
    fixed, _ = helpers.fix(tmp_path, source, select=BOTH, options={"missing-grad-clip": {"max-norm": 5.0}})
    assert fixed.endswith("L.Trainer(gradient_clip_val=5.0).fit(Net(), loader)\n")


def test_backward_and_step_on_one_line_get_the_clip_between_them(tmp_path):
    """``loss.backward(); opt.step()``: the clip goes on that line, between the two, and the fixed code
    really clips the gradients that step() applies."""
    torch = pytest.importorskip("torch")
    source = MODEL + textwrap.dedent("""
        def train_step(model, optimizer, x, y):
            optimizer.zero_grad(); loss = ((model(x) - y) * 1e4).pow(2).mean(); loss.backward(); optimizer.step()
    """)
    fixed, remaining = helpers.fix(tmp_path, source, select=BOTH, options={"missing-grad-clip": {"max-norm": 0.5}})
    assert not remaining
    last = fixed.rstrip().splitlines()[-1]
    assert last.count(";") == 4 and last.index("loss.backward()") < last.index("clip_grad_norm_") < last.index(
        "optimizer.step()"), last
    assert _norm_at_step(torch, fixed) <= 0.5 + 1e-4


def test_a_recursive_lambda_does_not_cost_the_files_findings(tmp_path):
    """A recursive lambda is valid Python: the padding flow evaluates it once, and the file's other findings
    stay (no 'nested too deeply' RNN900 in their place)."""
    source = MODEL + textwrap.dedent("""
        fact = lambda n: 1 if n == 0 else n * fact(n - 1)
        SCALE = fact(3)

        def train_step(model, optimizer, x, y):
            optimizer.zero_grad()
            loss = (model(x) - y).pow(2).mean() * SCALE
            loss.backward()
            optimizer.step()
    """)
    found = helpers.check(tmp_path, source, select=["RNN001", "RNN010", "RNN900"])
    assert [d.code for d in found] == ["RNN001"]


def test_trainer_from_argparse_args_follows_the_projects_own_clip_default(tmp_path):
    """``Trainer.from_argparse_args(args)`` takes ``--gradient_clip_val`` from the command line: Lightning's
    default (none) is reported, with the keyword as the fix; a parser of the project's own that defaults it
    to a positive value clips."""
    head = "import argparse\nimport pytorch_lightning as pl\n" + MODEL.replace("nn.Module", "pl.LightningModule")
    source = head + textwrap.dedent("""
        parser = argparse.ArgumentParser()
        parser = pl.Trainer.add_argparse_args(parser)
        CLIP
        args = parser.parse_args()
        pl.Trainer.from_argparse_args(args).fit(Net(), loader)
    """)
    unset = source.replace("CLIP\n", "")
    found = helpers.check(tmp_path, unset, select=BOTH)
    assert [d.code for d in found] == ["RNN001"] and "--gradient_clip_val defaults to none" in found[0].message
    fixed, _ = helpers.fix(tmp_path, unset, select=BOTH)
    assert "pl.Trainer.from_argparse_args(args, gradient_clip_val=1.0).fit(Net(), loader)" in fixed
    clipped = source.replace("CLIP", 'parser.add_argument("--gradient_clip_val", type=float, default=0.5)')
    assert helpers.check(tmp_path, clipped, select=BOTH) == []


def test_one_line_if_bodies_are_part_of_the_training_step(tmp_path):
    """``if args.clip: clip_grad_norm_(...)`` on one line clips (no RNN001, and SGD at lr 30 with it is the
    word-language-model recipe, no RNN020); a step in a one-line ``if`` gets its clip on that line."""
    clipped = dedent("""
        import argparse
        import torch
        from torch import nn

        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=30)
        parser.add_argument("--clip", type=float, default=0.25)
        args = parser.parse_args()
        model = nn.LSTM(10, 20)
        params = list(model.parameters())
        optimizer = torch.optim.SGD(params, lr=args.lr)

        def train(batches):
            for x in batches:
                optimizer.zero_grad()
                out, _ = model(x)
                out.sum().backward()
                if args.clip: torch.nn.utils.clip_grad_norm_(params, args.clip)
                optimizer.step()
    """)
    assert helpers.check(tmp_path, clipped, select=["RNN001", "RNN020"]) == []
    unclipped = dedent("""
        import torch
        from torch import nn

        model = nn.LSTM(10, 20)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        def train(batches, every):
            for i, x in enumerate(batches):
                out, _ = model(x)
                out.sum().backward()
                if i % every == 0: optimizer.step(); optimizer.zero_grad()
    """)
    assert [d.line for d in helpers.check(tmp_path, unclipped, select=["RNN001"])] == [11]
    fixed, remaining = helpers.fix(tmp_path, unclipped, select=["RNN001"])
    assert remaining == []
    assert ("if i % every == 0: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0); optimizer.step(); "
            "optimizer.zero_grad()") in fixed


def test_helpers_of_the_same_file_that_rewrite_grad_in_place_clip(tmp_path):
    """A function or method of the training file that clamps ``p.grad`` in place is clipping, whatever its
    name; one that zeroes gradients before backward() is not a clip (RNN001 stays, no RNN002)."""
    helper = dedent("""
        import torch
        from torch import nn

        def bound(model, limit):
            kept = list(filter(lambda p: p.grad is not None, model.parameters()))
            for p in kept:
                p.grad.data.clamp_(-limit, limit)

        def fit(model, batches):
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            for x in batches:
                opt.zero_grad()
                model(x)[0].sum().backward()
                bound(model, 0.1)
                opt.step()

        fit(nn.LSTM(3, 4), [])
    """)
    assert helpers.check(tmp_path, helper, select=["RNN001", "RNN002"]) == []
    method = dedent("""
        import torch
        from torch import nn

        class Runner:
            def __init__(self):
                self.net = nn.GRU(3, 4)
                self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)

            def _shrink(self, factor):
                for p in self.net.parameters():
                    p.grad.mul_(factor)

            def run(self, batches):
                for x in batches:
                    self.opt.zero_grad()
                    self.net(x)[0].sum().backward()
                    self._shrink(0.5)
                    self.opt.step()
    """)
    assert helpers.check(tmp_path, method, select=["RNN001", "RNN002"]) == []
    zeroing = helper.replace("p.grad.data.clamp_(-limit, limit)", "p.grad.data.zero_()").replace(
        "        opt.zero_grad()\n", "        bound(model, 0)\n").replace("        bound(model, 0.1)\n", "")
    assert "bound(model, 0)\n" in zeroing and "bound(model, 0.1)" not in zeroing
    assert [d.code for d in helpers.check(tmp_path, zeroing, select=["RNN001", "RNN002"])] == ["RNN001"]


def test_an_optimizer_without_param_groups_gets_no_clip_fix(tmp_path):
    """A ``DistributedOptimizer`` has no ``param_groups``: the finding stays, says so, and offers no fix
    (a clip of ``opt.param_groups`` would raise AttributeError)."""
    source = dedent("""
        import torch.distributed.autograd as dist_autograd
        from torch import nn, optim
        from torch.distributed.optim import DistributedOptimizer

        def run(model, remote_params, batches):
            opt = DistributedOptimizer(optim.SGD, remote_params, lr=0.05)
            for data, target in batches:
                with dist_autograd.context() as context_id:
                    out, _ = model(data)
                    loss = nn.functional.cross_entropy(out, target)
                    dist_autograd.backward(context_id, [loss])
                    opt.step(context_id)

        run(nn.LSTM(3, 4), [], [])
    """)
    found = helpers.check(tmp_path, source, select=["RNN001"])
    assert [d.line for d in found] == [12]
    assert "DistributedOptimizer has no param_groups" in found[0].message and found[0].fix is None
