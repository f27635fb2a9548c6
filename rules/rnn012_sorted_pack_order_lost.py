from __future__ import annotations

import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.names import dotted
from rnnlint.nodes import keyword_arg
from rnnlint.flow import order
from rnnlint.flow.order import Body, ListSort, LostSort
from rnnlint.rule import Invalid, NodeEdit, Rule, Valid, add_arg, delete_statement, replace


class SortedPackOrderLost(Rule):
    """Sequences sorted by length before packing, and the original order never restored.

    **What it catches.** Two ways of sorting a batch by hand so that
    ``pack_padded_sequence`` (with its default ``enforce_sorted=True``)
    accepts it:

    * a tensor sort of the lengths, ``lengths.sort(descending=True)``,
      ``torch.sort(lengths, descending=True)`` or ``argsort``, whose
      permutation reorders the batch (``x[perm]``, ``x.index_select(0,
      perm)``) before ``pack_padded_sequence``, in the same function, with
      the permutation used for nothing else: no inverse
      (``perm.argsort()``, ``perm.sort()``), no ``out[perm] = ...``, no
      ``scatter``/``index_copy``, not returned or handed to another function
      (any of these counts as restoring the order), and nothing besides the
      packed input reordered by it (labels reordered by the same permutation
      stay aligned);
    * a list sort by length, ``sorted(batch, key=len, reverse=True)`` or
      ``seqs.sort(key=..., reverse=True)``, in a collate function (one that
      pads or packs, is named like a collate or is passed as ``collate_fn``),
      that returns the sorted inputs together with labels built from the
      unsorted batch. Sorting the (input, label) pairs themselves keeps them
      together and is not reported.

    **Why it matters.** After the sort, row ``i`` of the model's output
    belongs to the ``i``-th longest sequence, not to the ``i``-th example of
    the batch. If nothing puts the rows back, the loss compares each
    prediction with another example's label: the model trains on shuffled
    targets, accuracy stays near chance, and nothing raises. Since PyTorch 1.1
    ``pack_padded_sequence(..., enforce_sorted=False)`` sorts internally and
    returns outputs (and ``h_n``) in the original order, so the manual sort is
    not needed at all.

    **Example.**

        lengths, perm = lengths.sort(descending=True)      # RNN012
        x = x[perm]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True)
        # fixed:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)

    **Fix safety.** Unsafe: the fix deletes the sort and the reordering
    statements and passes ``enforce_sorted=False``, which changes what the
    function returns (outputs in the original order: what the labels
    expect), and code that relied on the sorted order (``lengths[0]`` as the
    longest length) must be reviewed. It is only applied when the sort is a statement of its own whose
    results are used only to reorder the packed input and to pack; otherwise
    (and for the collate case, whose packing is elsewhere) the fix is
    display-only.
    """

    code = "RNN012"
    name = "sorted-pack-order-lost"
    fix_applicability = Applicability.UNSAFE
    triggers = (("sort", "pack"), ("sort", "collate"), ("sort", "pad_sequence"))

    # One shared walk (the runner's) finds the functions that sort something
    # directly and the collate functions; only those bodies are analysed in
    # finish(): building a body's name index is the expensive part, and most
    # functions of a large file sort nothing.
    def visit_Module(self, node: cst.Module) -> None:
        self._stack: list[cst.CSTNode] = [node]
        self._sorting: dict[int, cst.CSTNode] = {}
        self._collate_names: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._stack.append(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._stack.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if order.may_sort(dotted(node.func) or ""):
            self._sorting.setdefault(id(self._stack[-1]), self._stack[-1])
        arg = keyword_arg(node, "collate_fn")
        if arg is not None:
            self._collate_names.update(order.names_of(arg.value))

    def finish(self) -> None:
        for function in self._sorting.values():
            body = Body(self.ctx, function)
            for lost in order.lost_tensor_sorts(body):
                self._tensor_sort(lost)
            for sort, stale in order.stale_list_sorts(body, self._collate_names):
                self._list_sort(sort, stale)

    # -- tensor sorts ----------------------------------------------------------

    def _tensor_sort(self, lost: LostSort) -> None:
        body, sort, reorders, packs = lost.body, lost.sort, lost.reorders, lost.packs
        edits, clean = self._tensor_fix(body, sort, reorders, packs)
        sort_text = self.ctx.code(sort.call)
        if len(sort_text) > 50:
            sort_text = self.ctx.code(sort.call.func) + "(...)"
        self.report(
            sort.call,
            f"{sort_text} reorders the batch by length before pack_padded_sequence and the original order is "
            f"never restored: outputs come back sorted and no longer line up with the labels; drop the sort and "
            f"pass enforce_sorted=False to pack_padded_sequence (or undo it with out[{sort.perm}.argsort()])",
            fix="Drop the manual sort and pass enforce_sorted=False" if clean else
                "Pass enforce_sorted=False (then remove the manual sort and the reordering by hand)",
            edits=edits,
            applicability=None if clean else Applicability.DISPLAY_ONLY,
        )

    def _tensor_fix(self, body: Body, sort: order.Sort, reorders: list[order.Reorder], packs: list[cst.Call]):
        """Edits, and whether they are the whole fix (the sort removed cleanly)."""
        enforce = [_enforce_edit(p) for p in packs]
        clean = sort.statement is not None
        edits: list[NodeEdit] = []
        renames: dict[str, str] = {}
        if sort.values and sort.values != sort.source_text:
            renames[sort.values] = sort.source_text
        for reorder in reorders:
            if reorder.statement is None:
                if any(p in reorder.ancestors for p in packs):  # pack(x[perm], ...): drop the index
                    edits.append(replace(reorder.subscript, self.ctx.code(reorder.subscript.value)))
                    continue
                clean = False
                continue
            edits.append(delete_statement(reorder.statement))
            if reorder.target != reorder.source_text:
                renames[reorder.target] = reorder.source_text
        for name, original in renames.items():
            for occurrence in body.occurrences(name):
                if occurrence.binding:
                    continue
                if not any(p in occurrence.ancestors for p in packs):
                    clean = False  # used elsewhere: removing the sort changes more than the pack
                    break
                edits.append(replace(occurrence.node, original))
        if sort.statement is not None:
            edits.append(delete_statement(sort.statement))
        edits.extend(enforce)
        if not clean:
            return enforce, False
        return edits, True

    # -- list sorts in collate functions -------------------------------------------

    def _list_sort(self, sort: ListSort, stale: set[str]) -> None:
        names = ", ".join(sorted(stale))
        edits = [delete_statement(sort.statement)] if sort.statement is not None and sort.in_place else []
        self.report(
            sort.call,
            f"{self.ctx.code(sort.call.func)}(...) sorts the sequences by length but {names} "
            f"{'was' if len(stale) == 1 else 'were'} built from the unsorted batch: the collate returns inputs "
            f"and labels in different orders; sort the (input, label) pairs together, or drop the sort and "
            f"pack with enforce_sorted=False",
            fix="Drop the sort (and pass enforce_sorted=False where the batch is packed)",
            edits=edits,
            applicability=Applicability.DISPLAY_ONLY,
        )


def _enforce_edit(pack: cst.Call) -> NodeEdit:
    arg = keyword_arg(pack, "enforce_sorted")
    if arg is not None:
        return replace(arg.value, "False")
    return add_arg(pack, "enforce_sorted=False")


_ENCODER = """
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Encoder(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64, padding_idx=0)
            self.rnn = nn.GRU(64, 128, batch_first=True)
            self.fc = nn.Linear(128, 3)
    """

SortedPackOrderLost.VALID = [
    # enforce_sorted=False: no manual sort at all
    Valid(_ENCODER + """
        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, hidden = self.rnn(packed)
            return self.fc(hidden[-1])
    """),
    # sorted, then put back with the inverse permutation
    Valid(_ENCODER + """
        def forward(self, tokens, lengths):
            lengths, perm = lengths.sort(descending=True)
            tokens = tokens[perm]
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True)
            _, hidden = self.rnn(packed)
            unsort = perm.argsort()
            return self.fc(hidden[-1][unsort])
    """),
    # restored by writing back through the permutation
    Valid(_ENCODER + """
        def forward(self, tokens, lengths):
            sorted_lengths, order = torch.sort(lengths, descending=True)
            packed = pack_padded_sequence(self.embed(tokens[order]), sorted_lengths.cpu(), batch_first=True)
            _, hidden = self.rnn(packed)
            restored = torch.empty_like(hidden[-1])
            restored[order] = hidden[-1]
            return self.fc(restored)
    """),
    # the training loop sorts the labels with the same permutation
    Valid("""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    def train_epoch(model, loader, criterion, optimizer):
        for tokens, lengths, labels in loader:
            lengths, perm = lengths.sort(descending=True)
            tokens, labels = tokens[perm], labels[perm]
            packed = pack_padded_sequence(model.embed(tokens), lengths, batch_first=True)
            _, hidden = model.rnn(packed)
            loss = criterion(model.fc(hidden[-1]), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    """),
    # a collate that sorts the (sequence, label) pairs together
    Valid("""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def collate_batch(batch):
        batch = sorted(batch, key=lambda pair: len(pair[0]), reverse=True)
        seqs = [torch.tensor(s) for s, _ in batch]
        labels = torch.tensor([y for _, y in batch])
        lengths = torch.tensor([len(s) for s in seqs])
        return pad_sequence(seqs, batch_first=True), lengths, labels
    """),
    # the permutation is returned to the caller, which may restore the order
    Valid("""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

    def pack_batch(seqs):
        lengths = torch.tensor([len(s) for s in seqs])
        padded = pad_sequence(seqs, batch_first=True)
        lengths, idx = torch.sort(lengths, descending=True)
        return pack_padded_sequence(padded[idx], lengths, batch_first=True), idx
    """),
    # sorting for another reason (top-k scores), no packing
    Valid("""
    import torch

    def top_classes(scores):
        values, indices = scores.sort(descending=True)
        return indices[:, :5]
    """),
]

SortedPackOrderLost.INVALID = [
    Invalid(_ENCODER + """
        def forward(self, tokens, lengths):
            lengths, perm = lengths.sort(descending=True)
            tokens = tokens[perm]
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True)
            _, hidden = self.rnn(packed)
            return self.fc(hidden[-1])
    """, lines=[13], fixed=_ENCODER + """
        def forward(self, tokens, lengths):
            packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, hidden = self.rnn(packed)
            return self.fc(hidden[-1])
    """),
    # torch.sort with new names, aliased module import, reorder inline in the pack call
    Invalid("""
    import torch
    import torch.nn.utils.rnn as rnn_utils

    def encode(rnn, padded, lengths):
        sorted_lengths, sort_idx = torch.sort(lengths, descending=True)
        packed = rnn_utils.pack_padded_sequence(padded[sort_idx], sorted_lengths, enforce_sorted=True)
        output, h_n = rnn(packed)
        output, _ = rnn_utils.pad_packed_sequence(output)
        return output, h_n
    """, lines=[5], fixed="""\
import torch
import torch.nn.utils.rnn as rnn_utils

def encode(rnn, padded, lengths):
    packed = rnn_utils.pack_padded_sequence(padded, lengths, enforce_sorted=False)
    output, h_n = rnn(packed)
    output, _ = rnn_utils.pad_packed_sequence(output)
    return output, h_n
"""),
    # the sorted lengths are also used to build a mask: only display-only
    Invalid(_ENCODER + """
        def forward(self, tokens, lengths):
            sorted_lens, perm = lengths.sort(descending=True)
            tokens = tokens.index_select(0, perm)
            packed = pack_padded_sequence(self.embed(tokens), sorted_lens.cpu(), batch_first=True)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True)
            mask = torch.arange(out.size(1))[None, :] < sorted_lens[:, None]
            return self.fc((out * mask.unsqueeze(-1)).sum(1))
    """, lines=[13]),
    # a collate that sorts the sequences but builds the labels before the sort
    Invalid("""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def pad_batch(batch):
        seqs = [torch.tensor(s) for s, _ in batch]
        labels = torch.tensor([y for _, y in batch])
        seqs.sort(key=len, reverse=True)
        lengths = torch.tensor([len(s) for s in seqs])
        return pad_sequence(seqs, batch_first=True), lengths, labels
    """, lines=[7]),
]
