"""Train a small LSTM part-of-speech tagger (test data for the CLI tests)."""

import torch
import torch.nn as nn
from torch import optim


class Tagger(nn.Module):
    def __init__(self, vocab_size, num_tags, hidden=128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 64)
        self.lstm = nn.LSTM(64, hidden, batch_first=True, dropout=0.2)
        self.out = nn.Linear(hidden, num_tags)

    def forward(self, tokens):
        states, _ = self.lstm(self.embed(tokens))
        return self.out(states)


def train(loader, epochs=3):
    model = Tagger(1000, 12)
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for tokens, tags in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(tokens).flatten(0, 1), tags.flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
    return model
