"""RNN012 sorted-pack-order-lost, RNN013 padded-loss-without-ignore-index, RNN021 no-lr-schedule.

The rules' own examples cover single snippets; these check what a user sees
over several steps: fixing twice, the command line (RNN021 is off by
default), padding values followed across files, and the shapes of real
training code that must stay quiet.
"""

from __future__ import annotations

import json
import textwrap

from tests import helpers


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def found(tmp_path, source, files=None, code="RNN013"):
    return [d for d in helpers.check(tmp_path, source, files, select=[code]) if d.code == code]


# -- RNN012 ---------------------------------------------------------------------------

ENCODER = src("""
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Classifier(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64, padding_idx=0)
            self.lstm = nn.LSTM(64, 128, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(256, 2)

        def forward(self, tokens, lengths):
            lengths, perm = lengths.sort(descending=True)
            tokens = tokens[perm]
            packed = pack_padded_sequence(
                self.embed(tokens),
                lengths.cpu(),
                batch_first=True,
            )
            _, (h, _) = self.lstm(packed)
            return self.fc(torch.cat([h[-2], h[-1]], dim=1))
""")


def test_sort_in_forward_is_fixed_once_and_fixing_again_changes_nothing(tmp_path):
    [finding] = found(tmp_path, ENCODER, code="RNN012")
    assert finding.line == 13 and "enforce_sorted=False" in finding.message
    fixed, remaining = helpers.fix(tmp_path, ENCODER, select=["RNN012"])
    assert [d for d in remaining if d.code == "RNN012"] == []
    assert "sort(" not in fixed and "tokens[perm]" not in fixed
    assert "                batch_first=True,\n                enforce_sorted=False,\n" not in fixed
    assert "enforce_sorted=False" in fixed
    compile(fixed, "train.py", "exec")
    again, _ = helpers.fix(tmp_path, fixed, select=["RNN012"])
    assert again == fixed


def test_sort_fix_needs_unsafe_fixes(tmp_path):
    fixed, remaining = helpers.fix(tmp_path, ENCODER, select=["RNN012"], unsafe=False)
    assert fixed == ENCODER
    assert [d.code for d in remaining] == ["RNN012"]


def test_order_restored_with_index_select_of_the_inverse_is_quiet(tmp_path):
    source = ENCODER.replace(
        "        return self.fc(torch.cat([h[-2], h[-1]], dim=1))",
        "        unsort = torch.argsort(perm)\n"
        "        return self.fc(torch.cat([h[-2], h[-1]], dim=1).index_select(0, unsort))",
    )
    assert found(tmp_path, source, code="RNN012") == []


def test_seed_style_helper_returning_the_permutation_is_quiet(tmp_path):
    source = src("""
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence

        def process_sequences(sentence_tokens):
            lengths = torch.tensor([len(seq) for seq in sentence_tokens])
            padded = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sentence_tokens], batch_first=True)
            sorted_lengths, sort_indices = torch.sort(lengths, descending=True)
            sorted_seqs = padded[sort_indices]
            return pack_padded_sequence(sorted_seqs, sorted_lengths, batch_first=True), sort_indices, lengths
    """)
    assert found(tmp_path, source, code="RNN012") == []


def test_collate_passed_as_collate_fn_sorting_only_the_inputs(tmp_path):
    source = src("""
        import torch
        from torch.utils.data import DataLoader

        def make_batch(batch):
            texts, labels = zip(*batch)
            texts = sorted(texts, key=len, reverse=True)
            lengths = torch.tensor([len(t) for t in texts])
            return texts, lengths, torch.tensor(labels)

        loader = DataLoader([], batch_size=8, collate_fn=make_batch)
    """)
    [finding] = found(tmp_path, source, code="RNN012")
    assert finding.line == 6 and "labels" in finding.message
    assert finding.fix is not None and finding.fix.applicability.value == "display-only"
    fixed, _ = helpers.fix(tmp_path, source, select=["RNN012"])
    assert fixed == source  # display-only: never applied


# -- RNN013 ---------------------------------------------------------------------------

VOCAB = src("""
    PAD_IDX = 1
    BOS_IDX = 2
""")

TRANSLATE = src("""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pad_sequence
    from vocab import PAD_IDX

    class Translator(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 32)
            self.gru = nn.GRU(32, 64, batch_first=True)
            self.out = nn.Linear(64, vocab)

        def forward(self, x):
            return self.out(self.gru(self.embed(x))[0])

    def train(pairs, vocab):
        model = Translator(vocab)
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters())
        for sources, targets in pairs:
            src = pad_sequence(sources, batch_first=True, padding_value=PAD_IDX)
            trg = pad_sequence(targets, batch_first=True, padding_value=PAD_IDX)
            logits = model(src)
            loss = criterion(logits[:, :-1].reshape(-1, vocab), trg[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
""")


def test_imported_pad_constant_is_written_as_is_and_fixing_twice_changes_nothing(tmp_path):
    [finding] = found(tmp_path, TRANSLATE, {"vocab.py": VOCAB})
    assert finding.line == 18
    assert "PAD_IDX = 1" in finding.message and "ignore_index=PAD_IDX" in finding.message
    fixed, remaining = helpers.fix(tmp_path, TRANSLATE, {"vocab.py": VOCAB}, select=["RNN013"])
    assert "criterion = nn.CrossEntropyLoss(ignore_index=PAD_IDX)" in fixed
    assert remaining == []
    again, _ = helpers.fix(tmp_path, fixed, {"vocab.py": VOCAB}, select=["RNN013"])
    assert again == fixed


def test_wrong_ignore_index_names_both_values(tmp_path):
    source = TRANSLATE.replace("nn.CrossEntropyLoss()", "nn.CrossEntropyLoss(ignore_index=0)")
    [finding] = found(tmp_path, source, {"vocab.py": VOCAB})
    assert "ignore_index=0" in finding.message and "PAD_IDX = 1" in finding.message


def test_unreduced_loss_is_still_a_finding_until_it_is_masked(tmp_path):
    unmasked = TRANSLATE.replace("nn.CrossEntropyLoss()", 'nn.CrossEntropyLoss(reduction="none")').replace(
        "        optimizer.zero_grad()\n", "        loss = loss.mean()\n        optimizer.zero_grad()\n")
    assert len(found(tmp_path, unmasked, {"vocab.py": VOCAB})) == 1
    masked = unmasked.replace(
        "        loss = loss.mean()\n",
        "        keep = trg[:, 1:].reshape(-1) != PAD_IDX\n        loss = loss[keep].mean()\n")
    assert found(tmp_path, masked, {"vocab.py": VOCAB}) == []


def test_logging_the_loss_times_the_batch_size_is_not_a_mask(tmp_path):
    source = TRANSLATE.replace("        optimizer.step()\n",
                       "        optimizer.step()\n        total = loss.item() * len(sources)\n")
    assert len(found(tmp_path, source, {"vocab.py": VOCAB})) == 1


def test_targets_rewritten_in_place_before_the_loss_are_quiet(tmp_path):
    source = TRANSLATE.replace("        logits = model(src)\n",
                       "        logits = model(src)\n        trg[trg == PAD_IDX] = -100\n")
    assert found(tmp_path, source, {"vocab.py": VOCAB}) == []


def test_collate_in_another_file_padding_labels_with_minus_100_is_quiet(tmp_path):
    data = src("""
        from torch.nn.utils.rnn import pad_sequence

        IGNORE = -100

        def collate_tags(batch):
            words = pad_sequence([w for w, _ in batch], batch_first=True)
            tags = pad_sequence([t for _, t in batch], batch_first=True, padding_value=IGNORE)
            return words, tags
    """)
    train = src("""
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader
        from data import collate_tags

        tagger = torch.nn.LSTM(16, 9, batch_first=True)
        for words, tags in DataLoader([], collate_fn=collate_tags):
            out, _ = tagger(words)
            F.cross_entropy(out.reshape(-1, 9), tags.reshape(-1)).backward()
    """)
    assert found(tmp_path, train, {"data.py": data}) == []
    padded_with_zero = data.replace("padding_value=IGNORE", "padding_value=0")
    [finding] = found(tmp_path, train, {"data.py": padded_with_zero})
    fixed, _ = helpers.fix(tmp_path, train, {"data.py": padded_with_zero}, select=["RNN013"])
    assert "F.cross_entropy(out.reshape(-1, 9), tags.reshape(-1), ignore_index=0)" in fixed


# -- RNN021 ---------------------------------------------------------------------------

LOOP = src("""
    import torch
    from torch import nn

    model = nn.GRU(8, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in []:
        optimizer.zero_grad()
        out, _ = model(x)
        loss = nn.functional.mse_loss(out, y)
        loss.backward()
        optimizer.step()
""")


def test_rnn021_is_off_by_default_and_enabled_with_extend_select(tmp_path):
    (tmp_path / "train.py").write_text(LOOP, "utf-8")
    quiet = helpers.rnnlint("check", "--output-format", "json", "train.py", cwd=tmp_path)
    assert "RNN021" not in quiet.stdout, quiet.stdout + quiet.stderr
    loud = helpers.rnnlint("check", "--output-format", "json", "--extend-select", "RNN021", "train.py", cwd=tmp_path)
    assert loud.returncode == 1, loud.stderr
    [finding] = [d for d in json.loads(loud.stdout) if d["code"] == "RNN021"]
    assert finding["line"] == 5 and "ReduceLROnPlateau" in finding["message"] and finding["fix"] is None


def test_rnn021_enabled_from_pyproject(tmp_path):
    (tmp_path / "train.py").write_text(LOOP, "utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.rnnlint]\nextend-select = ["RNN021"]\n', "utf-8")
    result = helpers.rnnlint("check", "--output-format", "json", "train.py", cwd=tmp_path)
    assert [d["code"] for d in json.loads(result.stdout)].count("RNN021") == 1


def test_lr_helper_or_a_scheduler_passed_in_counts_as_a_schedule(tmp_path):
    helper = LOOP + "    adjust_learning_rate(optimizer, 0)\n"
    assert found(tmp_path, helper, code="RNN021") == []
    passed_in = src("""
        import torch
        from torch import nn

        def fit(model, batches, scheduler):
            optimizer = torch.optim.Adam(model.parameters())
            for x, y in batches:
                optimizer.zero_grad()
                nn.functional.mse_loss(model(x)[0], y).backward()
                optimizer.step()
            scheduler.step()

        fit(nn.LSTM(4, 4), [], None)
    """)
    assert found(tmp_path, passed_in, code="RNN021") == []
