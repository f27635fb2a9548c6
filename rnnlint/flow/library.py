"""Library knowledge as data: which calls produce, keep, sanitise or consume a fact.

The analyses in :mod:`rnnlint.flow` are generic; what torch (and friends) do
with a value is written here, once, as tables a reader can check against the
libraries' documentation. A new fact is a new table, not new code in a rule.
"""

from __future__ import annotations

# -- lengths on a device (RNN011) ----------------------------------------------------

#: calls that consume a lengths tensor on the host: canonical name -> (keyword, position)
PACK_LENGTHS = {
    "torch.nn.utils.rnn.pack_padded_sequence": ("lengths", 1),
}
#: methods that put a tensor on an accelerator (``.to(x)`` is judged by its argument)
TO_DEVICE_METHODS = frozenset({"cuda"})
#: methods whose result lives on the host, whatever the receiver was (sanitisers)
OFF_DEVICE_METHODS = frozenset({"cpu", "tolist", "numpy", "item"})
#: methods whose result stays on the receiver's device
SAME_DEVICE_METHODS = frozenset({"long", "int", "int64", "type", "view", "reshape", "squeeze", "flatten",
                                 "detach", "clone", "contiguous", "sort", "to", "masked_fill", "clamp",
                                 "unsqueeze", "flip"})
#: functions whose first result stays on the first argument's device
SAME_DEVICE_FUNCTIONS = frozenset({"torch.sort", "torch.clamp", "torch.flip"})
#: functions whose result is on the host (Python lists, numpy)
OFF_DEVICE_FUNCTIONS = frozenset({"list", "sorted", "numpy.array", "numpy.asarray"})

# -- losses over padded targets (RNN013) ----------------------------------------------

#: loss modules and functions that score class targets, and take ``ignore_index``
LOSS_MODULES = frozenset({"torch.nn.CrossEntropyLoss", "torch.nn.NLLLoss"})
LOSS_FUNCTIONS = frozenset({"torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss"})
#: their default ``ignore_index``: targets padded with it are already left out
CROSS_ENTROPY_DEFAULT_IGNORE = -100.0
#: tensor methods after which padded targets are still the same padded targets
TARGET_RESHAPES = frozenset({"view", "reshape", "flatten", "view_as", "reshape_as", "squeeze", "unsqueeze",
                             "contiguous", "long", "to", "cuda", "cpu", "transpose", "permute", "t"})
#: methods of a loss tensor (or calls around it) that mask it
LOSS_MASKING = frozenset({"masked_select", "masked_fill", "masked_fill_", "where", "mul", "mul_"})

# -- modules -------------------------------------------------------------------------

#: methods of ``nn.Module`` that return the module itself (``model = Net().to(device)``)
MODULE_SELF_METHODS = frozenset({"to", "cuda", "cpu", "train", "eval", "float", "double", "half", "bfloat16",
                                 "requires_grad_", "share_memory", "to_empty", "type"})
#: wrappers whose ``forward`` is the wrapped module's: canonical name -> position of the module
MODULE_WRAPPERS = {
    "torch.nn.DataParallel": 0,
    "torch.nn.parallel.DataParallel": 0,
    "torch.nn.parallel.DistributedDataParallel": 0,
    "torch.compile": 0,
    "torch.jit.script": 0,
}
