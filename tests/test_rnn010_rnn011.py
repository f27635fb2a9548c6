"""RNN010 padded-not-packed and RNN011 pack-lengths-on-device on small projects.

The rules' own examples cover single snippets; these follow padded batches
across files (a collate function in ``data.py``, a model in ``models.py``),
through several fix rounds, and check that the two rules agree.
"""

from __future__ import annotations

import textwrap

from tests import helpers


def src(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


COLLATE = src("""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def collate_batch(batch):
        tokens = [torch.tensor(t) for t, _ in batch]
        lengths = torch.tensor([len(t) for t in tokens])
        labels = torch.tensor([y for _, y in batch])
        return pad_sequence(tokens, batch_first=True), lengths, labels
""")

# a bidirectional tagger: its backward direction starts on the padding, so every step's tags are wrong
MODEL_UNPACKED = src("""
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embedding = nn.Embedding(vocab, 32)
            self.gru = nn.GRU(32, 64, batch_first=True, bidirectional=True)
            self.out = nn.Linear(128, 5)

        def forward(self, tokens, lengths):
            output, _ = self.gru(self.embedding(tokens))
            return self.out(output)
""")

MODEL_PACKED = src("""
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Tagger(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embedding = nn.Embedding(vocab, 32)
            self.gru = nn.GRU(32, 64, batch_first=True, bidirectional=True)
            self.out = nn.Linear(128, 5)

        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.embedding(tokens), lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            output, _ = self.gru(packed)
            output, _ = pad_packed_sequence(output, batch_first=True)
            return self.out(output)
""")

TRAIN = src("""
    import torch
    from torch.utils.data import DataLoader
    from data import collate_batch
    from models import Tagger

    def train(dataset, device):
        model = Tagger(1000).to(device)
        loader = DataLoader(dataset, batch_size=16, shuffle=True, collate_fn=collate_batch)
        for tokens, lengths, labels in loader:
            tokens, lengths = tokens.to(device), lengths.to(device)
            scores = model(tokens, lengths)
""")


def codes(found, code):
    return [d for d in found if d.code == code]


def test_collate_in_data_py_model_in_models_py(tmp_path):
    found = helpers.check(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": MODEL_UNPACKED}, select=["RNN010"])
    [finding] = codes(found, "RNN010")
    assert finding.line == 11  # scores = model(tokens, lengths)
    assert "collate_fn collate_batch" in finding.message and "GRU" in finding.message
    assert "models.py" in finding.message
    assert finding.fix is None  # the recurrent call is in another file


def test_a_one_way_tagger_is_quiet(tmp_path):
    """Run one way over right padding, the tagger's scores at the real steps never see a pad step: packing
    would change none of them (scoring the pad steps in the loss is RNN013's)."""
    one_way = MODEL_UNPACKED.replace(", bidirectional=True", "").replace("nn.Linear(128, 5)", "nn.Linear(64, 5)")
    found = helpers.check(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": one_way}, select=["RNN010"])
    assert codes(found, "RNN010") == []


def test_model_that_packs_in_another_file_is_quiet(tmp_path):
    found = helpers.check(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": MODEL_PACKED}, select=["RNN010"])
    assert codes(found, "RNN010") == []


def test_collate_that_does_not_pad_is_quiet(tmp_path):
    collate = COLLATE.replace("return pad_sequence(tokens, batch_first=True), lengths, labels",
                              "return torch.stack(tokens), lengths, labels")
    found = helpers.check(tmp_path, TRAIN, {"data.py": collate, "models.py": MODEL_UNPACKED}, select=["RNN010"])
    assert codes(found, "RNN010") == []


def test_model_in_the_same_file_is_fixed_in_forward_and_fixing_twice_changes_nothing(tmp_path):
    source = MODEL_UNPACKED + TRAIN.replace("from models import Tagger\n", "")
    found = helpers.check(tmp_path, source, {"data.py": COLLATE}, select=["RNN010"])
    [finding] = codes(found, "RNN010")
    assert finding.line == 11  # output, _ = self.gru(...) inside forward
    fixed, remaining = helpers.fix(tmp_path, source, {"data.py": COLLATE}, select=["RNN010", "RNN011"])
    assert remaining == []
    assert ("packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths.cpu(), "
            "batch_first=True, enforce_sorted=False)") in fixed
    assert "packed_out, _ = self.gru(packed)" in fixed
    assert "output, _ = nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True)" in fixed
    again, _ = helpers.fix(tmp_path, fixed, {"data.py": COLLATE}, select=["RNN010", "RNN011"])
    assert again == fixed
    compile(fixed, "train.py", "exec")


def test_collate_fn_through_partial_and_a_model_passed_to_a_function(tmp_path):
    source = MODEL_UNPACKED + src("""
        import functools
        from torch.utils.data import DataLoader
        from data import collate_batch

        def run_epoch(net, batches):
            for batch in batches:
                tokens, lengths, labels = batch
                net(tokens, lengths)

        def main(dataset):
            loader = DataLoader(dataset, collate_fn=functools.partial(collate_batch))
            run_epoch(Tagger(100), loader)
    """)
    found = codes(helpers.check(tmp_path, source, {"data.py": COLLATE}, select=["RNN010"]), "RNN010")
    assert [d.line for d in found] == [11]


def test_pad_packed_output_fed_to_a_second_lstm(tmp_path):
    source = src("""
        import torch.nn as nn
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        class Stacked(nn.Module):
            def __init__(self):
                super().__init__()
                self.first = nn.LSTM(8, 16, batch_first=True)
                self.second = nn.LSTM(16, 16, batch_first=True)

            def forward(self, x, lengths):
                packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
                out, _ = self.first(packed)
                out, _ = pad_packed_sequence(out, batch_first=True)
                out, (h, c) = self.second(out)
                return h[-1]
    """)
    found = codes(helpers.check(tmp_path, source, select=["RNN010"]), "RNN010")
    assert [d.line for d in found] == [14]
    assert "pad_packed_sequence" in found[0].message


def test_integer_seq_len_is_not_taken_for_lengths(tmp_path):
    source = src("""
        import torch
        from torch import nn
        from torch.nn.utils.rnn import pad_sequence

        seq_len = 35
        lstm = nn.LSTM(4, 8)
        batch = pad_sequence([torch.randn(seq_len, 4), torch.randn(20, 4)])
        out, state = lstm(batch)
    """)
    [finding] = codes(helpers.check(tmp_path, source, select=["RNN010"]), "RNN010")
    assert finding.fix is None


def test_lengths_moved_to_device_in_the_loop_then_packed(tmp_path):
    source = src("""
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence

        def train(model, loader, device):
            for tokens, lengths, labels in loader:
                tokens, lengths = tokens.to(device), lengths.to(device)
                packed = pack_padded_sequence(model.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
                lengths = lengths.cpu()
                again = pack_padded_sequence(model.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
    """)
    found = codes(helpers.check(tmp_path, source, select=["RNN011"]), "RNN011")
    assert [d.line for d in found] == [7]
    fixed, remaining = helpers.fix(tmp_path, source, select=["RNN011"], unsafe=False)
    assert remaining == []
    assert "pack_padded_sequence(model.embed(tokens), lengths.cpu(), batch_first=True" in fixed


def test_lengths_to_a_dtype_or_to_the_cpu_are_fine(tmp_path):
    source = src("""
        import torch
        import torch.nn as nn

        def pack(x, lengths):
            a = nn.utils.rnn.pack_padded_sequence(x, lengths.to(torch.long), enforce_sorted=False)
            b = nn.utils.rnn.pack_padded_sequence(x, lengths.to("cpu"), enforce_sorted=False)
            c = nn.utils.rnn.pack_padded_sequence(x, lengths.cuda().cpu(), enforce_sorted=False)
            return a, b, c
    """)
    assert codes(helpers.check(tmp_path, source, select=["RNN011"]), "RNN011") == []


def test_no_fix_when_the_output_is_read_at_its_last_step(tmp_path):
    source = MODEL_UNPACKED.replace("return self.out(output)", "return self.out(output[:, -1, :])")
    source = source.replace("self.embedding = nn.Embedding(vocab, 32)",
                            "self.embedding = nn.Embedding(vocab, 32, padding_idx=0)")
    [finding] = codes(helpers.check(tmp_path, source, select=["RNN010"]), "RNN010")
    assert finding.fix is None


def test_stepwise_decoder_with_padding_idx_is_quiet(tmp_path):
    source = src("""
        import torch.nn as nn

        class Decoder(nn.Module):
            def __init__(self, vocab):
                super().__init__()
                self.embedding = nn.Embedding(vocab, 32, padding_idx=0)
                self.rnn = nn.LSTM(32, 64)

            def forward(self, token, state):
                output, state = self.rnn(self.embedding(token.unsqueeze(0)), state)
                return output, state
    """)
    assert codes(helpers.check(tmp_path, source, select=["RNN010"]), "RNN010") == []


def test_one_hot_rows_written_through_zip_are_not_padding(tmp_path):
    """``for row, label in zip(onehot, labels): row[label] = 1`` fills each row of the buffer, one label
    each: nothing is padded. The same buffer filled through per-example views (``zip(buf[:, i], seq)``) is."""
    template = textwrap.dedent("""
        import numpy as np
        import torch
        from torch import nn

        labels, sequences = [1, 3], [[2, 5], [7]]
        gru = nn.GRU(10, 16)
        buf = np.zeros((len(labels), 4, 10), dtype=np.float32)
        FILL
        out, h = gru(torch.from_numpy(buf))
    """)
    one_hot = template.replace("FILL", "for row, label in zip(buf, labels):\n    row[label] = 1.0")
    assert helpers.check(tmp_path, one_hot, select=["RNN010"]) == []
    views = template.replace("FILL", "for i, seq in enumerate(sequences):\n"
                                     "    for slot, code in zip(buf[i], seq):\n        slot[code] = 1.0")
    assert [d.code for d in helpers.check(tmp_path, views, select=["RNN010"])] == ["RNN010"]


def test_findings_across_files_point_at_the_other_side(tmp_path):
    """A finding in one file about a value from another names that place as a related location (JSON
    ``related``, SARIF ``relatedLocations``): the call that hands the padded batch over, the model class
    that runs it unpacked, the move of the lengths to the GPU."""
    helpers.write_project(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": MODEL_UNPACKED})
    session = helpers.session(tmp_path, select=["RNN010"])
    caller = codes(session.check(tmp_path / "train.py").diagnostics, "RNN010")
    model = codes(session.check(tmp_path / "models.py").diagnostics, "RNN010")
    assert [(r.path, r.line) for d in caller for r in d.related] == [("models.py", 3)]  # class Tagger
    assert [(r.path, r.line) for d in model for r in d.related] == [("train.py", 11)]  # model(tokens, lengths)

    helpers.write_project(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": MODEL_PACKED.replace(
        "lengths.cpu()", "lengths")})
    session = helpers.session(tmp_path, select=["RNN011"])
    packer = codes(session.check(tmp_path / "models.py").diagnostics, "RNN011")
    assert [(r.path, r.line, r.message) for d in packer for r in d.related] == [
        ("train.py", 10, "lengths.to(device) puts the lengths on the GPU"),
        ("train.py", 11, "hands them on to be packed"),
    ]


def test_lengths_packed_only_by_a_submodule_with_a_keyword_only_parameter(tmp_path):
    """No forward packs a positional argument itself: Tagger hands its lengths, by keyword, to a submodule
    whose forward packs its keyword-only parameter. The run-wide question "does any module pack what its
    forward receives?" still says yes (after the quick pass over what each forward packs itself finds
    nothing), so the training loop that moves the lengths to the GPU is reported."""
    models = src("""
        import torch.nn as nn
        from torch.nn.utils.rnn import pack_padded_sequence

        class Packer(nn.Module):
            def __init__(self):
                super().__init__()
                self.gru = nn.GRU(32, 64, batch_first=True)

            def forward(self, x, *, lengths):
                output, hidden = self.gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
                return hidden

        class Tagger(nn.Module):
            def __init__(self, vocab):
                super().__init__()
                self.embedding = nn.Embedding(vocab, 32)
                self.packer = Packer()

            def forward(self, tokens, lengths):
                return self.packer(self.embedding(tokens), lengths=lengths)
    """)
    found = codes(helpers.check(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": models}, select=["RNN011"]),
                  "RNN011")
    assert [d.start.line for d in found] == [11]  # scores = model(tokens, lengths)
    assert "Packer.forward" in found[0].message


def test_following_several_parameters_at_once_finds_what_following_each_finds(tmp_path):
    """RNN011's run-wide "does any module pack what its forward receives?" follows all of a forward's
    parameters in one walk. What a value keeps is the *or* of what its parts keep, so the one walk must
    find exactly the pack calls that one walk per parameter finds, directly and through submodules."""
    from rnnlint.flow.tensors import lengths_of
    from rnnlint.nodes import param_names

    models = src("""
        import torch
        import torch.nn as nn
        from torch.nn.utils.rnn import pack_padded_sequence

        class Packer(nn.Module):
            def __init__(self):
                super().__init__()
                self.gru = nn.GRU(32, 64, batch_first=True)

            def forward(self, x, lengths, *, order=None):
                sorted_lengths, _ = torch.sort(order if order is not None else lengths)
                packed = pack_padded_sequence(x, sorted_lengths, batch_first=True)
                return self.gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))

        class Tagger(nn.Module):
            def __init__(self, vocab):
                super().__init__()
                self.embedding = nn.Embedding(vocab, 32)
                self.packer = Packer()

            def forward(self, tokens, lengths, pad):
                mask = tokens != pad
                counted = mask.long().sum(1)
                lengths = lengths.cpu()  # taken off the device: only the counted lengths reach a pack
                self.packer(self.embedding(tokens), counted)
                return self.packer(self.embedding(tokens), lengths, order=counted)
    """)
    helpers.write_project(tmp_path, TRAIN, {"data.py": COLLATE, "models.py": models})
    root = tmp_path.resolve()
    flow = helpers.session(root, select=["RNN011"]).index.flow()
    lengths = lengths_of(flow)
    compared = 0
    for path in (root / "models.py", root / "train.py"):
        facts = flow.file(path)
        for methods in facts.methods.values():
            forward = methods.get("forward")
            names = tuple(param_names(forward)[1:]) if forward is not None else ()
            for direct in (True, False):
                together = {id(s.call) for s in lengths.param_sinks(facts, forward, names, direct=direct)} if names else set()
                alone = {id(s.call) for name in names for s in lengths.param_sinks(facts, forward, name, direct=direct)}
                assert together == alone, (forward.name.value, direct)
                compared += bool(alone)
    assert compared == 3  # Packer (directly and not), Tagger through Packer
