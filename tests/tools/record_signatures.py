"""Record the constructor signatures of torch's recurrent modules.

Run by hand when the pinned torch version changes::

    python tests/tools/record_signatures.py

It writes ``rnnlint/data/recurrent_signatures.json``, which RNN040 and RNN041
read so that the static stage never imports torch. ``nn.RNN/LSTM/GRU`` declare
``__init__(self, *args, **kwargs)``: the documented names come from their
``typing.overload`` declarations, the positional order from what the runtime
actually does (``RNNBase.__init__``, with ``nn.RNN`` taking ``nonlinearity`` as
its fourth positional argument). Every recorded fact is then checked by
building modules, so a torch release that changes them fails here (and in
``tests/test_signatures.py``) instead of producing wrong lint messages.
"""

from __future__ import annotations

import inspect
import json
import sys
import typing
from pathlib import Path

import torch
from torch import nn

OUTPUT = Path(__file__).resolve().parents[2] / "rnnlint" / "data" / "recurrent_signatures.json"
STACKED = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}
CELLS = {"RNNCell": nn.RNNCell, "LSTMCell": nn.LSTMCell, "GRUCell": nn.GRUCell}
# harmless values for building a tiny module with every argument given
SAMPLE = {"input_size": 2, "hidden_size": 3}


def _params(function) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(function).parameters.values()
            if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def _documented(cls) -> list[inspect.Parameter]:
    """The named parameters of the class's documented (overload) signature."""
    for overload in typing.get_overloads(cls.__init__):
        params = _params(overload)
        if params:
            return params
    return _params(cls.__init__)


def _positional_order(name: str, cls) -> list[str]:
    if name in STACKED:
        order = [p.name for p in _params(nn.RNNBase.__init__) if p.name != "mode"]
        if name == "RNN":  # RNN.__init__ pops args[3] as the nonlinearity
            order.insert(3, "nonlinearity")
        return order
    return [p.name for p in _params(cls.__init__)]


def _value(name: str, defaults: dict):
    return SAMPLE.get(name, defaults.get(name))


def _raises(build) -> str | None:
    try:
        build()
    except (TypeError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def record(name: str, cls) -> dict:
    documented = _documented(cls)
    defaults = {p.name: p.default for p in documented if p.default is not inspect.Parameter.empty}
    positional = _positional_order(name, cls)
    base = [p.name for p in _params(nn.RNNBase.__init__) if p.name != "mode"] if name in STACKED else []
    candidates = list(dict.fromkeys([p.name for p in documented] + positional + base))
    required = {k: SAMPLE[k] for k in SAMPLE}

    keywords, rejected = [], {}
    for keyword in candidates:
        kwargs = dict(required)
        kwargs[keyword] = _value(keyword, defaults)
        if keyword == "proj_size":
            kwargs[keyword] = 1  # 0 means "no projection" and is never checked
        error = _raises(lambda: cls(**kwargs))
        if error is None:
            keywords.append(keyword)
        else:
            rejected[keyword] = error

    # the positional order is right if every argument lands where it should
    runtime_defaults = {p.name: p.default for p in _params(nn.RNNBase.__init__)} if name in STACKED else {}
    values = [_value(n, {**runtime_defaults, **defaults}) for n in positional]
    module = cls(*values)
    assert module.input_size == 2 and module.hidden_size == 3, name
    assert _raises(lambda: cls(*values, None)) is not None, f"{name} takes more positional arguments"

    return {
        "positional": positional,
        "required": [p.name for p in documented if p.default is inspect.Parameter.empty],
        "keywords": keywords,
        "defaults": defaults,
        "rejected": rejected,
    }


def main() -> int:
    data = {
        "torch_version": torch.__version__.split("+")[0],
        "generated_by": "tests/tools/record_signatures.py",
        "modules": {f"torch.nn.{name}": record(name, cls) for name, cls in {**STACKED, **CELLS}.items()},
    }
    OUTPUT.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
