from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid


class HiddenHandoffMismatch(GraphRule):
    """An encoder's final state handed to a decoder laid out differently.

    **What it catches.** In a probe run of the model, a recurrent module that
    receives as its initial state ``(h, c)`` either a tensor of the wrong
    shape (layers x directions, batch, hidden), or the final state of another
    recurrent module, unchanged, when the two differ in number of layers or
    directions -- the classic bidirectional-encoder bug, where an encoder
    with 1 layer x 2 directions feeds a 2-layer decoder and the shapes happen
    to agree.

    **Why it matters.** A wrong shape is a crash on the first batch. A
    matching shape is worse: PyTorch reads the state as one slice per layer
    and direction, so the encoder's backward-direction state silently
    initialises the decoder's second layer (or its first layer's forward
    state lands in the wrong place): the model trains, poorly, and nothing
    says why.

    **Example.**

        self.encoder = nn.GRU(32, 64, bidirectional=True)
        self.decoder = nn.GRU(32, 64, num_layers=2)
        _, h = self.encoder(src)
        out, _ = self.decoder(tgt, h)      # RNN107: (2, B, 64) means different things

    **Fix safety.** No automatic fix: combine the directions (``h[0::2] +
    h[1::2]``, or concatenate and project with a Linear layer) and select the
    layers the decoder expects, or give both modules the same layout.
    """

    code = "RNN107"
    name = "hidden-handoff-mismatch"

    def measure(self, run) -> None:
        for finding in run.probe.handoffs:
            run.report(self.code, finding.message, finding.module)


_SEQ2SEQ = """
    import torch.nn as nn

    class Seq2Seq(nn.Module):
        def __init__(self, vocab=40, hidden=16):
            super().__init__()
            self.embed = nn.Embedding(vocab, 8)
            self.encoder = nn.GRU(8, hidden, batch_first=True, {encoder})
            self.decoder = nn.GRU(8, hidden, batch_first=True, {decoder})
            self.out = nn.Linear(hidden, vocab)

        def forward(self, src, tgt):
            _, h = self.encoder(self.embed(src))
            {bridge}
            out, _ = self.decoder(self.embed(tgt), h)
            return self.out(out)
    """

HiddenHandoffMismatch.VALID = [
    _SEQ2SEQ.format(encoder="num_layers=2", decoder="num_layers=2", bridge="pass"),
    _SEQ2SEQ.format(encoder="bidirectional=True", decoder="num_layers=1", bridge="h = h[0:1] + h[1:2]"),
]
HiddenHandoffMismatch.INVALID = [
    Invalid(_SEQ2SEQ.format(encoder="bidirectional=True", decoder="num_layers=2", bridge="pass"), lines=[8]),
    Invalid(_SEQ2SEQ.format(encoder="bidirectional=True", decoder="num_layers=1", bridge="pass"), lines=[8]),
]
