"""RNN030 hidden-not-detached and RNN031 missing-zero-grad beyond their own examples.

The fixes are checked the way a user would notice them: the original training
script fails (or accumulates gradients) when run with torch, the fixed one
trains; fixing again changes nothing and checking the fixed file finds nothing.
"""

from __future__ import annotations

import pytest

from rnnlint.rule import dedent
from tests import helpers


def _codes(tmp_path, source, files=None, select=("RNN030", "RNN031")):
    return [(d.code, d.line) for d in helpers.check(tmp_path, dedent(source), files, select=list(select))]


def _fix(tmp_path, source, files=None, select=("RNN030", "RNN031")):
    """Fix, then assert the multi-step contract: a second fix is a no-op and nothing is left."""
    fixed, remaining = helpers.fix(tmp_path, dedent(source), files, select=list(select), unsafe=False)
    assert [d.code for d in remaining] == []
    again, _ = helpers.fix(tmp_path, fixed, files, select=list(select), unsafe=False)
    assert again == fixed, "fixing twice must change nothing"
    assert helpers.check(tmp_path, fixed, files, select=list(select)) == []
    return fixed


def _run(source: str) -> dict:
    pytest.importorskip("torch")
    namespace: dict = {"__name__": "__rnnlint_test__"}
    exec(compile(source, "train.py", "exec"), namespace)
    return namespace


# -- RNN030: the fixed script trains, the original fails ---------------------------------------

TBPTT_GRU = """
import torch
from torch import nn

torch.manual_seed(0)

class CharLM(nn.Module):
    def __init__(self, vocab=20, hidden=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        y, state = self.rnn(self.embed(x), state)
        return self.out(y), state

model = CharLM()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
stream = torch.randint(0, 20, (4, 41))
hidden = torch.zeros(1, 4, 16)
losses = []
for start in range(0, 40, 10):
    x, y = stream[:, start:start + 10], stream[:, start + 1:start + 11]
    optimizer.zero_grad()
    logits, hidden = model(x, hidden)
    loss = nn.functional.cross_entropy(logits.reshape(-1, 20), y.reshape(-1))
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
"""


def test_tbptt_fix_turns_a_crashing_loop_into_a_training_one(tmp_path):
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        _run(TBPTT_GRU)
    fixed = _fix(tmp_path, TBPTT_GRU)
    assert "    optimizer.step()\n" in fixed and "\n    hidden = hidden.detach()\n    x, y = " in fixed
    assert len(_run(fixed)["losses"]) == 4


def test_lstm_state_starting_as_none_gets_a_guarded_detach_that_runs(tmp_path):
    source = TBPTT_GRU.replace("nn.GRU(", "nn.LSTM(").replace("hidden = torch.zeros(1, 4, 16)", "hidden = None")
    fixed = _fix(tmp_path, source)
    assert "    if hidden is not None:\n        hidden = tuple(h.detach() for h in hidden)" in fixed
    assert len(_run(fixed)["losses"]) == 4


def test_retain_graph_is_named_in_the_message(tmp_path):
    source = TBPTT_GRU.replace("loss.backward()", "loss.backward(retain_graph=True)")
    found = helpers.check(tmp_path, dedent(source), select=["RNN030"])
    assert len(found) == 1 and found[0].line == 25
    assert "retain_graph=True" in found[0].message and "silences" in found[0].message


def test_removing_the_detach_from_a_quiet_loop_is_reported(tmp_path):
    quiet = TBPTT_GRU.replace("    optimizer.zero_grad()\n", "    optimizer.zero_grad()\n    hidden.detach_()\n")
    assert _codes(tmp_path, quiet) == []
    assert _codes(tmp_path, TBPTT_GRU) == [("RNN030", 25)]
    # state re-created every batch: quiet; created once before the loop: reported
    fresh = TBPTT_GRU.replace("    optimizer.zero_grad()\n", "    optimizer.zero_grad()\n    hidden = None\n")
    assert _codes(tmp_path, fresh) == []


def test_state_carried_across_batches_through_an_inner_time_loop(tmp_path):
    source = """
    import torch
    from torch import nn

    cell = nn.LSTMCell(8, 16)
    opt = torch.optim.SGD(cell.parameters(), lr=0.1)
    state = (torch.zeros(2, 16), torch.zeros(2, 16))
    for batch in []:
        opt.zero_grad()
        for x_t in batch:
            h, c = state = cell(x_t, state)
        h.pow(2).sum().backward()
        opt.step()
    """
    assert _codes(tmp_path, source) == [("RNN030", 10)]
    fixed = _fix(tmp_path, source)
    # detached once per batch, at the top of the batch loop, not inside the time loop
    assert "for batch in []:\n    state = tuple(h.detach() for h in state)\n    opt.zero_grad()\n" in fixed


def test_state_initialised_inside_the_loop_is_detached_after_that(tmp_path):
    source = TBPTT_GRU.replace(
        "hidden = torch.zeros(1, 4, 16)\n", "hidden = None\n"
    ).replace(
        "    optimizer.zero_grad()\n", "    if hidden is None:\n        hidden = torch.zeros(1, 4, 16)\n    optimizer.zero_grad()\n"
    )
    fixed = _fix(tmp_path, source)
    assert (
        "    optimizer.zero_grad()\n    if hidden is not None:\n        hidden = hidden.detach()\n"
        "    logits, hidden = model(x, hidden)\n"
    ) in fixed
    assert len(_run(fixed)["losses"]) == 4


# -- RNN031: the fixed loop computes each batch's own gradient ------------------------------------

ACCUMULATING = """
import torch
from torch import nn

torch.manual_seed(0)
model = nn.GRU(4, 8)
head = nn.Linear(8, 1)
optimizer = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.0)
batches = [torch.randn(5, 3, 4) for _ in range(3)]

def batch_loss(x):
    out, _ = model(x)
    return head(out[-1]).pow(2).mean()

optimizer.zero_grad()
for x in batches:
    loss = batch_loss(x)
    loss.backward()
    optimizer.step()

seen = head.weight.grad.clone()
head.weight.grad = None
batch_loss(batches[-1]).backward()
"""


def test_zero_grad_fix_makes_each_step_use_its_own_batch_gradient(tmp_path):
    before = _run(ACCUMULATING)
    assert not before["seen"].allclose(before["head"].weight.grad)
    assert _codes(tmp_path, ACCUMULATING) == [("RNN031", 18)]
    fixed = _fix(tmp_path, ACCUMULATING)
    assert "    loss = batch_loss(x)\n    optimizer.zero_grad()\n    loss.backward()\n" in fixed
    after = _run(fixed)
    assert after["seen"].allclose(after["head"].weight.grad)


def test_zero_grad_in_an_outer_loop_does_not_cover_the_inner_one(tmp_path):
    source = """
    import torch
    import torch.nn as nn
    model = nn.LSTM(4, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(3):
        optimizer.zero_grad()
        for x in []:
            model(x)[0].sum().backward()
            optimizer.step()
    """
    assert _codes(tmp_path, source) == [("RNN031", 9)]


def test_accumulation_guards_and_helpers_are_quiet(tmp_path):
    base = """
    import torch
    import torch.nn as nn
    from train_utils import reset
    model = nn.LSTM(4, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i, x in enumerate([]):
        model(x)[0].sum().backward()
        {body}
    """
    files = {"train_utils.py": "def reset(opt):\n    opt.zero_grad(set_to_none=True)\n"}
    skip = "if (i + 1) % 4 != 0:\n            continue\n        optimizer.step()"
    assert _codes(tmp_path, base.format(body=skip), files) == []
    helper = "optimizer.step()\n        reset(optimizer)"
    assert _codes(tmp_path, base.format(body=helper), files) == []
    plain = "optimizer.step()"
    assert _codes(tmp_path, base.format(body=plain), files) == [("RNN031", 8)]


def test_both_rules_fix_one_loop_together(tmp_path):
    source = TBPTT_GRU.replace("    optimizer.zero_grad()\n", "")
    assert _codes(tmp_path, source) == [("RNN030", 24), ("RNN031", 27)]
    fixed = _fix(tmp_path, source)
    assert "    hidden = hidden.detach()\n" in fixed and "    optimizer.zero_grad()\n    loss.backward()\n" in fixed
    assert len(_run(fixed)["losses"]) == 4


def test_evaluation_state_under_no_grad_is_quiet(tmp_path):
    source = """
    import torch
    from torch import nn

    model = nn.LSTM(4, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    eval_state = None
    for epoch in range(3):
        for x in []:
            optimizer.zero_grad()
            model(x)[0].sum().backward()
            optimizer.step()
        with torch.no_grad():
            for x in []:
                out, eval_state = model(x, eval_state)
    """
    assert _codes(tmp_path, source) == []
    assert _codes(tmp_path, source.replace("with torch.no_grad():", "if True:")) == [("RNN030", 14)]


STATEFUL = dedent("""
    import torch
    from torch import nn


    class Stateful(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 8, batch_first=True)
            self.hidden = None

        def forward(self, x):
            out, self.hidden = self.lstm(x, self.hidden)
            return out


    def train(batches):
        model = Stateful()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x in batches:
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
""")


def test_state_kept_on_self_is_detached_in_forward_and_the_fix_runs(tmp_path):
    """The model keeps its LSTM state on self and the loop never resets it: reported at the loop's call and in
    forward; the safe fix detaches it in forward, and the fixed code trains two batches in a row."""
    torch = pytest.importorskip("torch")
    found = helpers.check(tmp_path, STATEFUL, select=["RNN030"])
    assert sorted(d.line for d in found) == [12, 21]
    fixed, remaining = helpers.fix(tmp_path, STATEFUL, select=["RNN030"])
    assert not remaining
    namespace: dict = {}
    exec(compile(fixed, "train.py", "exec"), namespace)
    namespace["train"]([torch.randn(2, 5, 3), torch.randn(2, 5, 3)])  # the second backward() would raise


def test_state_carried_through_time_steps_inside_forward_gets_no_detach_in_the_loop(tmp_path):
    """``for t: self.h = self.cell(x[t], self.h)`` inside forward: detaching there would cut backpropagation
    through time to one step, so no fix (and no finding of this kind) is placed in the time loop."""
    source = STATEFUL.replace("self.lstm = nn.LSTM(3, 8, batch_first=True)", "self.cell = nn.GRUCell(3, 8)").replace(
        "        out, self.hidden = self.lstm(x, self.hidden)\n        return out",
        "        for t in range(x.size(1)):\n            self.hidden = self.cell(x[:, t], self.hidden)\n"
        "        return self.hidden")
    assert "self.cell(x[:, t]" in source
    fixed, _ = helpers.fix(tmp_path, source, select=["RNN030"])
    lines = fixed.splitlines()
    loop = next(i for i, line in enumerate(lines) if "for t in range" in line)
    assert "self.hidden = self.cell(" in lines[loop + 1], fixed
