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
#: methods (and ``torch.`` functions) that compute something new from a tensor on its device: a mask of the
#: padded batch and its count per row, ``(x != pad).long().sum(1)``
COUNTING = frozenset({"ne", "eq", "gt", "ge", "lt", "le", "sum", "count_nonzero"})
SAME_DEVICE_METHODS = frozenset({"long", "int", "int64", "type", "view", "reshape", "squeeze", "flatten",
                                 "detach", "clone", "contiguous", "sort", "to", "masked_fill", "clamp",
                                 "unsqueeze", "flip", "bool", "float"}) | COUNTING
#: functions whose first result stays on the first argument's device
SAME_DEVICE_FUNCTIONS = frozenset({"torch.sort", "torch.clamp", "torch.flip", *(f"torch.{c}" for c in COUNTING)})
#: tensor factories whose ``device=`` puts the result on that device
DEVICE_FACTORIES = frozenset({"torch.tensor", "torch.as_tensor", "torch.full", "torch.arange", "torch.ones",
                              "torch.zeros", "torch.empty"})
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

# -- modules, optimizers, clipping ----------------------------------------------------------

#: the recurrent layers of torch itself (the project adds its own subclasses)
RECURRENT_MODULES = frozenset(
    f"torch.nn.{name}" for name in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
)
#: optimizers by canonical name -> the family whose learning-rate thresholds apply
OPTIMIZERS = {
    # canonical name -> optimizer family used by thresholds
    "torch.optim.Adam": "adam", "torch.optim.AdamW": "adam", "torch.optim.Adamax": "adam",
    "torch.optim.NAdam": "adam", "torch.optim.RAdam": "adam", "torch.optim.SparseAdam": "adam",
    "torch.optim.RMSprop": "rmsprop", "torch.optim.SGD": "sgd",
    "torch.optim.Adagrad": "adagrad", "torch.optim.Adadelta": "adadelta",
    "torch.optim.LBFGS": "lbfgs", "torch.optim.ASGD": "sgd", "torch.optim.Rprop": "rprop",
}
#: functions that clip gradients in place (or compute the norm a clip then uses)
CLIP_FUNCTIONS = frozenset(
    {
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_value_",
        "torch.nn.utils.clip_grad_norm",
        "torch.nn.utils.clip_grad_value",
        "torch.nn.utils.get_total_norm",  # followed by clip_grads_with_norm_
        "torch.nn.utils.clip_grads_with_norm_",
    }
)
#: optimizers that step without ``param_groups`` (gradients live in a distributed autograd context)
OPTIMIZERS_WITHOUT_PARAM_GROUPS = frozenset({"torch.distributed.optim.DistributedOptimizer"})

# -- training frameworks (RNN001) ---------------------------------------------------

#: trainers that clip when told to (``gradient_clip_val``), and Hugging Face's (``max_grad_norm``, 1.0 by default)
LIGHTNING_TRAINERS = frozenset({"lightning.pytorch.Trainer", "lightning.Trainer"})
HF_TRAINING_ARGUMENTS = frozenset({"transformers.TrainingArguments", "transformers.Seq2SeqTrainingArguments"})
HF_TRAINERS = frozenset({"transformers.Trainer", "transformers.Seq2SeqTrainer"})

# -- recurrent state and the autograd graph (RNN030, RNN041) -------------------------------

#: the recurrent layers that take ``num_layers`` and ``dropout`` between layers
STACKED_RNNS = ("torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU")
#: the form of a recurrent module's state: an ``(h, c)`` tuple, or one tensor
TUPLE_STATE = frozenset({"torch.nn.LSTM", "torch.nn.LSTMCell"})
TENSOR_STATE = frozenset({"torch.nn.GRU", "torch.nn.RNN", "torch.nn.GRUCell", "torch.nn.RNNCell"})
#: calls (by their last name) that make a fresh tensor, outside any graph: an initial state
FRESH_TENSORS = frozenset({"zeros", "ones", "randn", "rand", "empty", "full", "zeros_like", "randn_like",
                           "new_zeros", "new_ones", "new_empty", "new_full"})
#: methods that cut a tensor from the graph (sanitisers of a carried state)
DETACH_METHODS = frozenset({"detach", "detach_"})
#: context managers under which nothing builds a graph
NO_GRAD_CONTEXTS = frozenset({"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
                              "torch.autograd.grad_mode.no_grad"})

#: calls that iterate what they are given, item for item (``for batch in tqdm(loader)``)
ITERATION_WRAPPERS = frozenset({"iter", "tqdm", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm"})

#: calls that import a module named by a string: canonical name -> position of the name
MODULE_IMPORTERS = {"importlib.import_module": 0}

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

# -- sort order (RNN012) -------------------------------------------------------------

#: functions that sort a tensor: canonical name -> "sort" (gives values and the permutation) or "argsort"
SORT_FUNCTIONS = {"torch.sort": "sort", "torch.argsort": "argsort", "torch.Tensor.sort": "sort",
                  "torch.Tensor.argsort": "argsort"}
#: tensor methods that sort their receiver, the same way
SORT_METHODS = {"sort": "sort", "argsort": "argsort"}
#: the descending flag of a sort: keyword, position in the function form, position in the method form
SORT_DESCENDING = ("descending", 2, 1)
#: the permutation in a ``sort`` result: attribute and index (``.indices``, ``[1]``)
SORT_INDICES = ("indices", 1)
#: methods that reorder their receiver by a permutation (``x.index_select(0, perm)``); ``x[perm]`` is syntax
REORDER_METHODS = frozenset({"index_select"})
#: functions that reorder their first argument by a permutation
REORDER_FUNCTIONS = frozenset({"torch.index_select"})
#: calls that need their batch sorted by decreasing length unless told otherwise: name -> (keyword, position)
ENFORCES_SORTED = {"torch.nn.utils.rnn.pack_padded_sequence": ("enforce_sorted", 3)}
#: Python's list sorts: the builtin, and the list method
LIST_SORT_FUNCTIONS = frozenset({"sorted"})
LIST_SORT_METHODS = frozenset({"sort"})
#: calls that measure a sequence's length: the builtin, tensor methods
LENGTH_FUNCTIONS = frozenset({"len"})
LENGTH_METHODS = frozenset({"size", "numel", "__len__"})
#: calls whose result is one number, not per-example data
SCALAR_FUNCTIONS = frozenset({"len", "max", "min", "sum", "int"})

# -- Keras / TensorFlow training (RNN060) --------------------------------------------
# canonical names: ``tensorflow.keras.`` is already ``keras.``

#: recurrent Keras layers
KERAS_RECURRENT = frozenset(
    f"keras.layers.{name}"
    for name in ("LSTM", "GRU", "SimpleRNN", "RNN", "LSTMCell", "GRUCell", "SimpleRNNCell",
                 "CuDNNLSTM", "CuDNNGRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
) | {"tensorflow.compat.v1.keras.layers.CuDNNLSTM", "tensorflow.compat.v1.keras.layers.CuDNNGRU"}
#: functions that clip gradients
TF_CLIP = frozenset(
    f"{prefix}.{name}"
    for prefix in ("tensorflow", "tensorflow.compat.v1")
    for name in ("clip_by_global_norm", "clip_by_norm", "clip_by_value", "clip_by_average_norm")
) | {"keras.ops.clip"}
#: Keras optimizer classes, by the lower-case string ``compile(optimizer="adam")`` accepts
KERAS_OPTIMIZER_CLASSES = {
    name.lower(): name
    for name in ("Adam", "AdamW", "Adamax", "Adadelta", "Adagrad", "Adafactor", "Ftrl", "Lion", "Nadam",
                 "RMSprop", "SGD", "Lamb")
}
#: modules the optimizer classes live in
KERAS_OPTIMIZER_MODULES = ("keras.optimizers", "keras.optimizers.legacy", "keras.optimizers.experimental",
                           "tensorflow.optimizers", "tensorflow.optimizers.legacy")
#: the optimizer ``compile()`` builds when given none
KERAS_DEFAULT_OPTIMIZER = "rmsprop"
#: constructor keywords that make a Keras optimizer clip
KERAS_CLIP_KEYWORDS = ("clipnorm", "global_clipnorm", "clipvalue")
#: wrappers whose first argument is the optimizer that does the updates (mixed precision)
KERAS_OPTIMIZER_WRAPPERS = ("LossScaleOptimizer",)
#: names that mark loss scaling (gradients may still be scaled before ``apply_gradients``)
KERAS_LOSS_SCALING = ("LossScaleOptimizer", "get_scaled_loss", "get_unscaled_gradients", "scale_loss")
#: the optimizer method that applies gradients, and the model attribute ``compile()`` sets
KERAS_APPLY = "apply_gradients"
KERAS_MODEL_OPTIMIZER = "optimizer"
#: keywords that mark ``x.compile(...)`` as a Keras model's (not ``re.compile``)
KERAS_COMPILE_KEYWORDS = ("optimizer", "loss", "metrics")

# -- legacy torchtext (``torchtext.data`` before 0.9, ``torchtext.legacy.data`` in 0.9-0.11) -------------
# A ``Field`` numericalises one attribute of each example; an iterator batches a dataset and gives each
# field as an attribute of the batch (``batch.text``): a sequential field is always padded to the longest
# example, and with ``include_lengths=True`` it gives ``(padded ids, lengths)``, both on the iterator's
# ``device``.

_LEGACY = ("torchtext.data", "torchtext.legacy.data")
#: Field classes -> whether they are sequential (so padded) unless ``sequential=`` says otherwise
TORCHTEXT_FIELDS = {f"{m}.{c}": sequential for m in _LEGACY
                    for c, sequential in (("Field", True), ("ReversibleField", True), ("LabelField", False))}
#: the Field keywords that decide what a batch attribute is
TORCHTEXT_SEQUENTIAL = "sequential"
TORCHTEXT_INCLUDE_LENGTHS = "include_lengths"
#: iterators whose batches carry one attribute per field; the keyword that places them on a device
TORCHTEXT_ITERATORS = frozenset(f"{m}.{c}" for m in _LEGACY for c in ("Iterator", "BucketIterator"))
TORCHTEXT_DEVICE = "device"
#: the dataset argument of an iterator (a tuple of them for ``.splits``): keyword, position
TORCHTEXT_ITERATOR_DATASET = ("dataset", 0)
TORCHTEXT_SPLITS_DATASETS = ("datasets", 0)
#: datasets built from ``[(name, field), ...]``: class -> position of ``fields`` (``.splits`` takes it by keyword)
TORCHTEXT_DATASETS = {f"{m}.{c}": position for m in _LEGACY
                      for c, position in (("Dataset", 1), ("TabularDataset", 2))}
#: ready-made datasets: ``.splits`` -> the attribute names and, for each, the (keyword, position) of its field;
#: a ``fields`` tuple gives the fields in the order of the names
TORCHTEXT_NAMED_DATASETS = {
    **{f"{m}.{c}.splits": (("text", ("text_field", 0)), ("label", ("label_field", 1)))
       for m in ("torchtext.datasets", "torchtext.legacy.datasets") for c in ("IMDB", "SST", "TREC")},
    **{f"{m}.{c}.splits": (("src", ("fields", 1)), ("trg", ("fields", 1)))
       for m in ("torchtext.datasets", "torchtext.legacy.datasets") for c in ("Multi30k", "IWSLT", "WMT14")},
}
#: ``X.splits(...)`` returns a tuple of what ``X(...)`` builds, one per split
LIBRARY_SPLITS = frozenset(
    {f"{name}.splits" for name in (*TORCHTEXT_ITERATORS, *TORCHTEXT_DATASETS)} | set(TORCHTEXT_NAMED_DATASETS))
