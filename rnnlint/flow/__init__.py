"""The project's value flow: where the values that rules judge come from.

A rule rarely sees the value it judges where it is used. ``Adam(model.parameters(),
lr=config["training"]["lr"])`` is a finding only if the dictionary literal three
files away says ``0.01``; ``nn.GRU(h, h, self.num_layers, dropout=self.p)`` only if
the constructor's defaults (or every caller) give one layer and a positive dropout.

This package is the one place that follows values. A rule asks
:func:`values` for the possible values of an expression and gets each with the
path it travelled (:class:`~rnnlint.flow.values.Value`); it never walks
assignments, defaults or imports itself. The model is built lazily per run from
the files a question leads to, like the project index, and every file it reads
is recorded for the results cache.

* :mod:`rnnlint.flow.values` — what a resolved value is (a constant, a dict
  literal, an instance of a project class, a module) and its path.
* :mod:`rnnlint.flow.scopes` — per-file facts, one walk per file: assignments by
  scope, functions and classes, command-line option defaults, calls by name.
* :mod:`rnnlint.flow.resolve` — the resolver: names, attributes, subscripts,
  parameters (defaults and every call site in the project), ``self``
  attributes, imports, configuration holders.
* :mod:`rnnlint.flow.library` — library knowledge as data: which calls make a
  value padded, put it on a device, take it off again, sort it, clip it.
* :mod:`rnnlint.flow.order` — batches sorted by length, the permutation that
  sorts them, and whether the order comes back (RNN012).
* :mod:`rnnlint.flow.keras` — Keras optimizers, ``apply_gradients`` and
  ``compile()``, each update linked to the optimizers it may use (RNN060).
* :mod:`rnnlint.flow.losses` — which loss scores which padded targets, and with which pad (RNN013).
* :mod:`rnnlint.flow.state` — recurrent state a training loop carries into the next
  iteration's graph, and what cuts it (RNN030).
* :mod:`rnnlint.flow.torchtext` — what ``batch.<field>`` of a legacy torchtext
  iterator is: padded, with lengths, on the iterator's device (RNN010, RNN011).

:data:`SUMMARISERS` are what the project index stores about each file it
summarises on the flow model's behalf (what a function returns padded, what a
class's ``forward`` feeds its recurrent layers); the index runs them and caches
their facts, and knows nothing of what they mean.
"""

from rnnlint.flow import padding
from rnnlint.flow.resolve import Flow, flow_of, values
from rnnlint.flow.values import Value

#: per-file summarisers the static stage hands the project index (:data:`rnnlint.static.index.Summariser`)
SUMMARISERS = (padding.summarise,)

__all__ = ["Flow", "SUMMARISERS", "Value", "flow_of", "values"]
