"""What do the verify hooks cost per training step? (target: under 10% on CPU)

    python tests/benchmarks/bench_verify_overhead.py [--rounds 15] [--block 20]

The hooks of :mod:`rnnlint.verify.bootstrap` (optimizer pre/post step, the
global forward hook, the wrapped backward and clip functions, one JSON line
per step) are installed and taken out again in turns within one process, so
that both sides see the same machine load: each round times ``--block``
training steps bare, then the same number hooked, in CPU time with one torch
thread. Two models: a realistic 2-layer LSTM, and the tiny ReLU RNN of
``fixtures/verify/exploding_rnn`` where the fixed cost per step weighs most.
Prints the median step time of each side and the overhead in percent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rnnlint.verify import bootstrap  # noqa: E402

MODELS = {
    # name: (recurrent module, input size, hidden, layers, seq len, batch)
    "lstm 2x128, seq 50, batch 32": ("lstm", 32, 128, 2, 50, 32),
    "relu rnn 32, seq 40, batch 16": ("rnn", 1, 32, 1, 40, 16),
}


class Net(nn.Module):
    def __init__(self, kind: str, features: int, hidden: int, layers: int) -> None:
        super().__init__()
        if kind == "lstm":
            self.rnn = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        else:
            self.rnn = nn.RNN(features, hidden, nonlinearity="relu", batch_first=True)
        self.act = nn.Tanh()
        self.head = nn.Linear(hidden, features)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(self.act(out))


def bench(name: str, rounds: int, block: int) -> tuple[float, float]:
    kind, features, hidden, layers, seq_len, batch = MODELS[name]
    torch.manual_seed(0)
    model = Net(kind, features, hidden, layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, seq_len, features), torch.randn(batch, seq_len, features)

    def steps(count: int) -> float:
        start = time.process_time()
        for _ in range(count):
            loss = nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return (time.process_time() - start) / count

    events = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
    recorder = bootstrap.Recorder(torch, {"steps": 10**9, "events": events.name})
    steps(block)  # warm-up
    bare, hooked = [], []
    for _ in range(rounds):
        bare.append(steps(block))
        uninstall = bootstrap.install_hooks(torch, recorder)
        hooked.append(steps(block))
        uninstall()
    recorder.out.close()
    os.unlink(events.name)
    assert recorder.steps == rounds * block, "the hooks did not see every step"
    return statistics.median(bare), statistics.median(hooked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in MODELS:
        bare, hooked = bench(name, args.rounds, args.block)
        print(f"{name:30} bare {bare * 1e3:7.2f} ms/step   hooked {hooked * 1e3:7.2f} ms/step   "
              f"overhead {100 * (hooked - bare) / bare:+5.1f}%")


if __name__ == "__main__":
    main()
