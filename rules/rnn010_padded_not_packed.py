import libcst as cst

from rnnlint.diagnostics import Applicability, Related
from rnnlint.flow.models import is_recurrent, packs, packs_anywhere
from rnnlint.flow.resolve import flow_of, related, site_of
from rnnlint.flow.values import INSTANCE
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, find_all
from rnnlint.flow.padding import (
    Instance,
    ProjectResolver,
    forward_feeds,
    forward_uses,
    methods,
    padded_callers,
    Module,
    Padded,
    BodyRun,
    KnownCall,
    feeds_recurrent,
    file_runs,
    builds_recurrent,
    lengths_in_scope,
    locate,
    rnn_utils_name,
)
from rnnlint.rule import Invalid, Rule, Valid, insert_after, insert_before, replace


class PaddedNotPacked(Rule):
    """A padded batch runs through an RNN, LSTM or GRU without being packed.

    **What it catches.** A padded tensor reaching a recurrent module's input
    while it is still padded. Padded tensors are the output of
    ``pad_sequence``, batches of a ``DataLoader`` whose ``collate_fn`` is a
    project function that pads (in this file or another one), the first
    output of ``pad_packed_sequence`` fed again to a recurrent module, and the
    output of an ``Embedding(padding_idx=...)`` (the padding index says the
    tokens are padded). The value is followed through assignments, tuple
    unpacking, ``.to(device)``-like methods, slicing, non-recurrent layers
    (embedding, dropout, linear), function returns and calls to functions and
    models of the same file, and into the ``forward`` of a model defined in
    another file of the project. It is reported at the call that feeds the
    recurrent module (``self.lstm(embedded)``, ``out, h = rnn(padded)``) or,
    when that module is in another file, at the call of the model
    (``model(tokens)``). Packing (``pack_padded_sequence``, ``pack_sequence``)
    anywhere on the way makes it quiet.

    Limits, chosen to avoid false findings: an ``Embedding(padding_idx=...)``
    output given to a recurrent call together with an initial state
    (``self.rnn(embedded, hidden)``, a step-wise decoder) is not reported, nor
    a one-way recurrence whose final state is dropped and whose outputs are
    read only at positions computed per example (``states[torch.arange(b),
    lengths - 1]``: exact without packing) or turned step by step into
    scores that ``forward`` returns (a language model or tagger:
    ``self.out(self.drop(steps))``; a loss that scores the pad steps is
    RNN013's), nor
    is a padded tensor indexed at one time step (``x[:, t]``); only the
    module's top-level code, top-level functions and methods of top-level
    classes are analysed; ``collate_fn`` must be a function (or a ``lambda``/``partial`` around one)
    returning the padded tensor or a tuple holding it (not a dict, not a
    callable class); a file that mentions none of ``pad_sequence``,
    ``padding_idx``, ``pad_packed_sequence``, ``collate_fn`` is skipped (a
    padded batch from a project helper called without them is missed); a model passed as a parameter of an unanalysed caller, a
    Lightning ``training_step`` batch, and methods other than ``forward`` are
    not followed. Recurrent *cells* are never reported (they cannot be packed).

    **Why it matters.** A recurrent layer does not know where a sequence ends:
    it runs every padded time step and its final hidden state is the state
    after the padding, not after the last real token. Short sequences in a
    batch are then summarised by a state drowned in pad steps, which is the
    classic "LSTM stuck at chance accuracy" bug; a bidirectional layer even
    starts its backward pass on padding. Packing skips those steps and makes
    ``h_n`` the state at each sequence's own last token.

    **Example.**

        embedded = self.embedding(tokens)           # Embedding(..., padding_idx=0)
        out, (h, c) = self.lstm(embedded)           # RNN010
        # fixed:
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, (h, c) = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True)

    **Fix safety.** Unsafe, and only offered when the recurrent call is a
    statement ``output, hidden = rnn(x, ...)`` and sequence lengths are in
    scope (a parameter or variable named like ``lengths``, ``lens``,
    ``seq_lens``, ``src_len`` that is not a plain number). The fix packs the
    input with ``enforce_sorted=False``, runs the module and unpacks the
    output with the module's own ``batch_first``. It changes what the model
    computes: the unpacked output is zero after each sequence's end and only as
    long as the longest sequence, so code reading ``out[:, -1]`` must switch to
    the final hidden state: when the output is read at a negative index no
    fix is offered. Without lengths in scope there is no fix either.
    """

    code = "RNN010"
    name = "padded-not-packed"
    fix_applicability = Applicability.UNSAFE
    triggers = ("pad_sequence", "padding_idx", "pad_packed_sequence", "collate_fn", "DataLoader",
                # padding by hand, next to a recurrent module: a buffer filled up to each length, a row
                # extended to the longest (a data helper of another file is summarised on demand)
                ("len(", "zeros", "LSTM"), ("len(", "zeros", "GRU"), ("len(", "zeros", "RNN"),
                ("len(", "ones", "LSTM"), ("len(", "ones", "GRU"), ("len(", "ones", "RNN"),
                ("len(", " * (", "LSTM"), ("len(", " * (", "GRU"), ("len(", " * (", "RNN"),
                # a model whose forward may be handed a padded batch by another file
                ("def forward", "LSTM"), ("def forward", "GRU"), ("def forward", "RNN"),
                # a training loop whose loader and model are handed in by another file
                ("for ", ".backward("))
    #: what the caller side needs in the file: without it only the model's side is looked at
    _CALLER_SIDE = ("pad_sequence", "padding_idx", "pad_packed_sequence", "collate_fn", "DataLoader", "len(",
                    ".backward(")

    def finish(self) -> None:
        seen: set[int] = set()
        caller_side = any(word in self.ctx.text for word in self._CALLER_SIDE)
        for run in file_runs(self.ctx) if caller_side else ():
            for use in run.result.uses:
                if id(use.call) in seen:
                    continue
                if isinstance(use.callee, Module) and use.callee.is_sequence_rnn or (
                    isinstance(use.callee, Module) and use.callee.qualname in self.ctx.index.recurrent_names
                    and "Cell" not in use.callee.qualname
                ):
                    padded = use.padded_input()
                    if padded is not None and not _stepwise_decoder(use, padded[0]) and not use.exact_at_real_positions():
                        seen.add(id(use.call))
                        self._report_module(run, use, use.callee, padded[0], padded[1])
                elif isinstance(use.callee, Instance):
                    if self._report_model(use, use.callee):
                        seen.add(id(use.call))
        self._report_forwards(seen)

    def _report_module(self, run: BodyRun, use: KnownCall, module: Module, padded: Padded, arg: cst.Arg) -> None:
        call = self.ctx.code(use.call)
        if len(call) > 60:
            call = self.ctx.code(use.call.func) + "(...)"
        batch_first = module.batch_first or "..."
        message = (
            f"{call} runs the {module.short} over a padded batch ({padded.origin}): padded time steps run "
            f"through the recurrence and corrupt the final hidden state; pack it with "
            f"pack_padded_sequence(x, lengths.cpu(), batch_first={batch_first}, enforce_sorted=False)"
        )
        edits, imports = self._fix(run, use, module, arg)
        self.report(use.call, message, fix="Pack the input and unpack the output", edits=edits, imports=imports)

    # -- the model's side: a caller in another file hands its forward a padded batch -----------------

    def _report_forwards(self, seen: set[int]) -> None:
        ctx = self.ctx
        resolver = ProjectResolver(ctx)
        here = ctx.path.resolve()
        for stmt in ctx.module.body:
            if not isinstance(stmt, cst.ClassDef) or "forward" not in methods(stmt):
                continue
            fed = forward_feeds(stmt, ctx.imports, resolver, self._rnns())
            tokenizer = _padding_tokenizer(ctx, stmt)
            if tokenizer is not None and not packs(flow_of(ctx)[1], stmt):
                # a model that owns a padding tokenizer is fed its ids, however forward reaches them
                name, display, line = tokenizer
                fed = [(0, use) for use in forward_uses(stmt, ctx.imports, resolver, self._rnns())
                       if isinstance(use.callee, Module) and use.callee.is_sequence_rnn and not use.exact_at_real_positions()]
                callers = {0: (f"the ids of the tokenizer the model owns ({name} turns on padding to a fixed length "
                               f"at {display}:{line})", Related(display, line, f"{name} turns on padding"))}
            elif fed:
                callers = {position: (f"the padded batch that {d}:{line} passes to {stmt.name.value} ({origin})",
                                      Related(d, line, f"passes a padded batch ({origin})"))
                           for position, (d, line, origin) in padded_callers(ctx, here, stmt.name.value).items()}
            else:
                continue
            for position, use in fed:
                if id(use.call) in seen or position not in callers:
                    continue
                seen.add(id(use.call))
                module = use.callee
                text, origin = callers[position]
                self.report(
                    use.call,
                    f"{ctx.code(use.call.func)}(...) runs the {module.short} over {text}: padded time "
                    f"steps run through the recurrence and corrupt the final hidden state; pack it here with "
                    f"pack_padded_sequence(x, lengths.cpu(), batch_first={module.batch_first or '...'}, "
                    f"enforce_sorted=False)",
                    related=[origin],
                )

    def _rnns(self) -> frozenset[str]:
        return frozenset(n for n in self.ctx.index.recurrent_names if "Cell" not in n)

    def _report_model(self, use: KnownCall, model: Instance) -> bool:
        hit = locate(self.ctx.index, self.ctx.path, model)
        if hit is None or hit[0] == self.ctx.path.resolve():
            return False  # a model of this file is followed into its forward instead
        for key, value, _ in use.args:
            if not isinstance(key, int) or not isinstance(value, Padded):
                continue
            where = feeds_recurrent(self.ctx.index, hit[0], hit[1], key)
            if where is None and not builds_recurrent(self.ctx.index, *hit):
                where = self._unpacked_model(use, hit)  # its recurrent layers are handed to its constructor
            if where:
                self.report(
                    use.call,
                    f"{self.ctx.code(use.call.func)}(...) feeds a padded batch ({value.origin}) to {hit[1]}, "
                    f"whose forward runs {where} over it without packing: padded time steps run through the "
                    f"recurrence and corrupt the final hidden state; pack it in forward with "
                    f"pack_padded_sequence(x, lengths.cpu(), batch_first=..., enforce_sorted=False)",
                    related=self._definition(hit, f"{hit[1]}, whose forward does not pack"),
                )
                return True
        return False

    def _definition(self, hit: tuple, message: str) -> tuple:
        """Where the project defines the class ``hit`` (``(file, name)``), as a related location."""
        flow = self.ctx.index.flow()
        facts = flow.file(hit[0])
        cls = facts.classes.get(hit[1]) if facts is not None else None
        return related(flow, hit[0], cls.name, message) if cls is not None else ()

    def _unpacked_model(self, use: KnownCall, hit: tuple) -> str | None:
        """The model the flow model resolves at this call (a parameter filled by the callers, a model
        built from injected submodules): recurrent, and packing nowhere in its classes. Returns the
        recurrent classes it is made of, for the message, or None."""
        flow, _ = flow_of(self.ctx)
        values = flow.values(use.call.func, site_of(self.ctx, use.call), models=True)
        models = [v for v in values if v.kind == INSTANCE and v.path == hit[0]]  # this run's model
        if not models or not all(is_recurrent(flow, v) and not packs_anywhere(flow, v) for v in models):
            return None
        return f"its recurrent layers ({flow.display(models[0].path)})"

    # -- fix -----------------------------------------------------------------

    def _fix(self, run: BodyRun, use: KnownCall, module: Module, arg: cst.Arg):
        statement = use.statement
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            return [], []
        assign = statement.body[0]
        if not isinstance(assign, cst.Assign) or assign.value is not use.call or len(assign.targets) != 1:
            return [], []
        target = assign.targets[0].target
        if not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) != 2:
            return [], []
        output, hidden = (e.value for e in target.elements)
        if not isinstance(output, cst.Name) or isinstance(target.elements[0], cst.StarredElement):
            return [], []
        lengths = lengths_in_scope(use.names)
        if lengths is None or _reads_last_step(run.node, output.value):
            return [], []
        name, is_list = lengths
        lengths_text = name if is_list else f"{name}.cpu()"
        if module.batch_first is not None:
            batch_first = module.batch_first
        elif isinstance(use.call.func, (cst.Name, cst.Attribute)):
            batch_first = f"{self.ctx.code(use.call.func)}.batch_first"
        else:
            return [], []
        pack, pack_import = rnn_utils_name(self.ctx.imports, "pack_padded_sequence")
        taken = _names(run.node)
        packed = _fresh("packed", taken)
        new_args = [a.with_changes(value=cst.Name(packed)) if a is arg else a for a in use.call.args]
        new_call = self.ctx.code(use.call.with_changes(args=new_args))
        edits = [
            insert_before(statement, f"{packed} = {pack}({self.ctx.code(arg.value)}, {lengths_text}, "
                                     f"batch_first={batch_first}, enforce_sorted=False)"),
        ]
        imports = list(pack_import)
        hidden_text = self.ctx.code(hidden)
        if output.value == "_":
            edits.append(replace(assign, f"_, {hidden_text} = {new_call}"))
        else:
            unpack, unpack_import = rnn_utils_name(self.ctx.imports, "pad_packed_sequence")
            packed_out = _fresh("packed_out", taken)
            edits.append(replace(assign, f"{packed_out}, {hidden_text} = {new_call}"))
            edits.append(insert_after(statement, f"{output.value}, _ = {unpack}({packed_out}, batch_first={batch_first})"))
            imports += unpack_import
        if len(imports) == 2:  # one line for both functions
            imports = ["from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence"]
        return edits, imports


def _padding_tokenizer(ctx, cls: cst.ClassDef) -> tuple[str, str, int] | None:
    """A model that owns a tokenizer padding to a fixed length (``enable_padding(...)`` of the
    ``tokenizers`` library, called on ``self.tokenizer`` here or inside the tokenizer class of the project
    that ``self.tokenizer = WordTokenizer(...)`` builds): the model is meant to be fed that tokenizer's
    ids. ``(tokenizer, file, line)`` of the padding."""
    flow, _ = flow_of(ctx)  # registers this parse, so that its lines are this file's
    for call in find_all(cls, cst.Call):
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "enable_padding" and \
                (dotted(func.value) or "").startswith("self."):
            return dotted(func.value), flow.display(ctx.path.resolve()), flow.line(ctx.path.resolve(), call) or 1
    for assign in find_all(cls, cst.Assign):
        if not isinstance(assign.value, cst.Call) or not any(
                (dotted(t.target) or "").startswith("self.") for t in assign.targets):
            continue
        name = dotted(assign.value.func)
        hit = ctx.index.lookup(ctx.path, name) if name else None
        if hit is not None:
            found = _enables_padding(ctx, *hit)
            if found is not None:
                return (hit[1], *found)
    return None


def _enables_padding(ctx, path, class_name: str) -> tuple[str, int] | None:
    """Where the project class ``class_name`` of ``path``, or one of its project bases, calls
    ``enable_padding``: ``(file, line)``."""
    flow = ctx.index.flow()
    for home, name, _ in ctx.index.lineage(path, class_name):
        if not ctx.index.holds(home, "enable_padding"):
            continue
        module = ctx.index.tree(home)
        cls = next((s for s in module.body if isinstance(s, cst.ClassDef) and s.name.value == name), None) \
            if module is not None else None
        for call in find_all(cls, cst.Call) if cls is not None else ():
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "enable_padding":
                return flow.display(home), flow.line(home, call) or 1
    return None


def _stepwise_decoder(use: KnownCall, padded: Padded) -> bool:
    """``self.rnn(self.embedding(token), hidden)`` in a decoder: one step at a time with the previous
    state, where the padding index only marks targets; packing does not apply."""
    if "padding_idx" not in padded.origin:
        return False
    return any(key == 1 or key == "hx" for key, _, _ in use.args)


def _reads_last_step(node: cst.CSTNode, name: str) -> bool:
    """``out[:, -1]``: after unpacking that step is zero for every shorter sequence, so the
    code must change to the final hidden state; no mechanical fix for that."""
    found = False

    class Finder(Visitor):
        def visit_Subscript(self, sub: cst.Subscript) -> None:
            nonlocal found
            if isinstance(sub.value, cst.Name) and sub.value.value == name:
                for element in sub.slice:
                    index = element.slice
                    if isinstance(index, cst.Index) and isinstance(index.value, cst.UnaryOperation) \
                            and isinstance(index.value.operator, cst.Minus):
                        found = True

    Finder().walk(node)
    return found


def _names(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class Finder(Visitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.add(name.value)

    Finder().walk(node)
    return found


def _fresh(base: str, taken: set[str]) -> str:
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


_CLASSIFIER = """
    import torch
    import torch.nn as nn

    class SentimentLSTM(nn.Module):
        def __init__(self, vocab_size, pad_id=0):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, 100, padding_idx=pad_id)
            self.lstm = nn.LSTM(100, 128, batch_first=True)
            self.fc = nn.Linear(128, 2)
    """

_LAST_STATE = """
    import torch
    from torch import nn

    class LastState(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 16, padding_idx=0)
            self.gru = nn.GRU(16, 32, batch_first=True)

        def forward(self, tokens):
            lengths = (tokens != 0).sum(1)
            states, _ = self.gru(self.emb(tokens))
            return states[{index}]
    """

_WORD_LM = """
    from torch import nn

    class WordLM(nn.Module):
        def __init__(self, vocab=100):
            super().__init__()
            self.emb = nn.Embedding(vocab, 16, padding_idx=0)
            self.lstm = nn.LSTM(16, 32, batch_first=True{both})
            self.drop = nn.Dropout(0.2)
            self.out = nn.Linear({width}, vocab)

        def forward(self, tokens):
            steps, _ = self.lstm(self.emb(tokens))
            steps = self.drop(steps)
            return {scores}
    """

PaddedNotPacked.VALID = [
    # a one-way language model scored step by step: the scores at the real steps never see a later pad step
    Valid(_WORD_LM.format(both="", width=32, scores="self.out(steps).permute(0, 2, 1)")),
    # a one-way GRU read only at each example's last real step: exact without packing
    Valid(_LAST_STATE.format(index="torch.arange(tokens.size(0)), lengths - 1")),
    # the proper pack / unpack
    Valid(_CLASSIFIER + """
        def forward(self, tokens, lengths):
            embedded = self.embedding(tokens)
            packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, (hidden, _) = self.lstm(packed)
            return self.fc(hidden[-1])
    """),
    # fixed-length windows (language model): nothing is padded
    Valid("""
    import torch
    from torch import nn

    class WordLM(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 200)
            self.rnn = nn.GRU(200, 200)
            self.decoder = nn.Linear(200, vocab)

        def forward(self, x, hidden):
            output, hidden = self.rnn(self.embed(x), hidden)
            return self.decoder(output), hidden

    def batchify(data, bsz):
        nbatch = data.size(0) // bsz
        return data[: nbatch * bsz].view(bsz, -1).t().contiguous()
    """),
    # a CNN over padded text: not recurrent
    Valid("""
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pad_sequence

    class TextCNN(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embedding = nn.Embedding(vocab, 64, padding_idx=0)
            self.conv = nn.Conv1d(64, 32, 3)

        def forward(self, tokens):
            return self.conv(self.embedding(tokens).transpose(1, 2)).max(dim=2).values

    batch = pad_sequence([torch.tensor([1, 2, 3]), torch.tensor([4])], batch_first=True)
    scores = TextCNN(10)(batch)
    """),
    # packed with an aliased module import
    Valid("""
    import torch
    import torch.nn.utils.rnn as rnn_utils
    from torch import nn

    rnn = nn.GRU(8, 16)
    seqs = [torch.randn(5, 8), torch.randn(3, 8)]
    padded = rnn_utils.pad_sequence(seqs)
    packed = rnn_utils.pack_padded_sequence(padded, torch.tensor([5, 3]))
    out, h = rnn(packed)
    """),
]

PaddedNotPacked.INVALID = [
    # the same GRU read at the last step of the padded batch: a padding step for every shorter example
    Invalid(_LAST_STATE.format(index=":, -1"), lines=[12]),
    # the same language model's steps averaged over time (pad steps included), and run both ways (the
    # backward direction starts on the padding)
    Invalid(_WORD_LM.format(both="", width=32, scores="self.out(steps.mean(dim=1))"), lines=[12]),
    Invalid(_WORD_LM.format(both=", bidirectional=True", width=64, scores="self.out(steps).permute(0, 2, 1)"),
            lines=[12]),
    # sentiment classifier: padding_idx embedding straight into the LSTM, lengths in scope
    Invalid(_CLASSIFIER + """
        def forward(self, tokens, lengths):
            embedded = self.embedding(tokens)
            _, (hidden, _) = self.lstm(embedded)
            return self.fc(hidden[-1])
    """, lines=[13], fixed=_CLASSIFIER + """
        def forward(self, tokens, lengths):
            embedded = self.embedding(tokens)
            packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (hidden, _) = self.lstm(packed)
            return self.fc(hidden[-1])
    """),
    # output used: pack, run, unpack
    Invalid(_CLASSIFIER + """
        def forward(self, tokens, seq_lens):
            embedded = self.embedding(tokens)
            out, hidden = self.lstm(embedded)
            return self.fc(out.mean(dim=1))
    """, lines=[13], fixed=_CLASSIFIER + """
        def forward(self, tokens, seq_lens):
            embedded = self.embedding(tokens)
            packed = nn.utils.rnn.pack_padded_sequence(embedded, seq_lens.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, hidden = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True)
            return self.fc(out.mean(dim=1))
    """),
    # aliased pad_sequence at module level; lengths is a Python list; batch_first from the module
    Invalid("""
    import torch
    from torch.nn import GRU
    from torch.nn.utils.rnn import pad_sequence as pad

    rnn = GRU(8, 16)
    seqs = [torch.randn(5, 8), torch.randn(3, 8)]
    lengths = [len(s) for s in seqs]
    padded = pad(seqs)
    out, h = rnn(padded)
    """, lines=[9], fixed="""\
import torch
from torch.nn import GRU
from torch.nn.utils.rnn import pad_sequence as pad
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

rnn = GRU(8, 16)
seqs = [torch.randn(5, 8), torch.randn(3, 8)]
lengths = [len(s) for s in seqs]
padded = pad(seqs)
packed = pack_padded_sequence(padded, lengths, batch_first=False, enforce_sorted=False)
packed_out, h = rnn(packed)
out, _ = pad_packed_sequence(packed_out, batch_first=False)
"""),
    # no lengths in scope: reported without a fix
    Invalid("""
    import torch
    import torch.nn.utils.rnn as rnn_utils
    from torch import nn

    lstm = nn.LSTM(8, 16, batch_first=True)
    batch = rnn_utils.pad_sequence([torch.randn(5, 8), torch.randn(3, 8)], batch_first=True)
    output, (h, c) = lstm(batch.float())
    """, lines=[7]),
    # the model lives in another file; the padded batches come from a collate function
    Invalid("""
    import torch
    from torch.nn.utils.rnn import pad_sequence
    from torch.utils.data import DataLoader
    from models.classifier import Classifier

    def collate(batch):
        tokens, labels = zip(*batch)
        return pad_sequence(tokens, batch_first=True), torch.tensor(labels)

    def train(dataset):
        model = Classifier(1000)
        loader = DataLoader(dataset, batch_size=32, collate_fn=collate)
        for tokens, labels in loader:
            logits = model(tokens.to("cuda"))
    """, lines=[14], files={
        "models/__init__.py": "",
        "models/classifier.py": """
            import torch.nn as tnn

            class Classifier(tnn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.embedding = tnn.Embedding(vocab, 64)
                    self.rnn = tnn.GRU(64, 64, batch_first=True)
                    self.head = tnn.Linear(64, 2)

                def forward(self, tokens):
                    _, h = self.rnn(self.embedding(tokens))
                    return self.head(h[-1])
            """,
    }),
]
