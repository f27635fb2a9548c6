"""What does ``rnnlint.watch(model, optimizer)`` cost per training step? (target: at most 5% on CPU)

    python tests/benchmarks/bench_watch.py [--rounds 40] [--block 10]

One watcher is attached and detached in turns within one process, so that both
sides see the same machine load: each round times ``--block`` training steps
bare, then the same number watched, in CPU time with one torch thread. The
watcher is warmed up first (its first ``warm`` calls per module are all
checked), so the figure is the cost of leaving it on in a long run: every
check on its sampled calls (padding on the recurrent input, padded targets in
the loss, gate saturation), and on every call the hidden-state check, the
output tags and the gradient norm. Two models: a 2-layer LSTM tagger over
token ids with a cross-entropy loss over (batch, time) targets, and a small
GRU regressor where the fixed cost per step weighs most. Prints, for each
side, the median and the fastest block's step time, and the overhead of each:
on a shared, busy machine the fastest blocks are the steadier comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import rnnlint  # noqa: E402

MODELS = {
    # name: (kind, vocab or features, hidden, layers, seq len, batch)
    "lstm tagger 2x128, seq 50, batch 32": ("tagger", 1000, 128, 2, 50, 32),
    "gru 32, seq 40, batch 16": ("gru", 1, 32, 1, 40, 16),
}


class Tagger(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.lstm = nn.LSTM(64, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, 10)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.out(out)


class Regressor(nn.Module):
    def __init__(self, features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, features)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out)


def bench(name: str, rounds: int, block: int) -> tuple[list[float], list[float]]:
    kind, size, hidden, layers, seq_len, batch = MODELS[name]
    torch.manual_seed(0)
    if kind == "tagger":
        model = Tagger(size, hidden, layers)
        x = torch.randint(0, size, (batch, seq_len))
        y = torch.randint(0, 10, (batch, seq_len))

        def loss_of():
            return nn.functional.cross_entropy(model(x).reshape(-1, 10), y.reshape(-1))
    else:
        model = Regressor(size, hidden, layers)
        x, y = torch.randn(batch, seq_len, size), torch.randn(batch, seq_len, size)

        def loss_of():
            return nn.functional.mse_loss(model(x), y)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def steps(count: int) -> float:
        start = time.process_time()
        for _ in range(count):
            loss = loss_of()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return (time.process_time() - start) / count

    watcher = rnnlint.watch(model, optimizer, warn=False)
    steps(block)  # warm-up: the watcher's first calls are all checked
    watcher.detach()
    bare, watched = [], []
    for _ in range(rounds):
        bare.append(steps(block))
        watcher.attach()
        watched.append(steps(block))
        watcher.detach()
    assert watcher.steps == (rounds + 1) * block, "the watcher did not see every step"
    assert not watcher.findings, watcher.findings
    return bare, watched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in MODELS:
        bare, watched = bench(name, args.rounds, args.block)
        for label, pick in (("median", statistics.median), ("fastest", min)):
            b, w = pick(bare), pick(watched)
            print(f"{name:36} {label:7}  bare {b * 1e3:7.2f} ms/step   watched {w * 1e3:7.2f} ms/step   "
                  f"overhead {100 * (w - b) / b:+5.1f}%")


if __name__ == "__main__":
    main()
