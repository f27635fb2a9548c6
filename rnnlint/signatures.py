"""Constructor signatures of torch's recurrent modules, known without torch.

``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` declare ``__init__(self, *args,
**kwargs)``, so their real parameters cannot be read from a signature at lint
time (and the static stage never imports torch anyway). They are recorded from
the pinned torch by ``tests/tools/record_signatures.py`` into
``data/recurrent_signatures.json``; ``tests/test_signatures.py`` checks the
record against the installed torch by building modules.

:func:`bind` matches a call's arguments to those parameters the way Python
would, so rules can ask "which argument is ``dropout`` here?" or "which
keyword would raise TypeError?".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import libcst as cst


@dataclass(frozen=True)
class Signature:
    qualname: str  # torch.nn.LSTM
    positional: tuple[str, ...]  # runtime order; its length is the most positional arguments accepted
    keywords: frozenset[str]  # names accepted as keywords
    required: tuple[str, ...]
    defaults: dict[str, Any]
    rejected: dict[str, str]  # parameter names torch refuses as keywords -> torch's own error

    @property
    def display(self) -> str:
        return "nn." + self.qualname.rsplit(".", 1)[-1]


@dataclass
class Binding:
    """How one call's arguments fill a signature."""

    arguments: dict[str, cst.Arg] = field(default_factory=dict)  # parameter -> the argument that fills it
    unknown: list[cst.Arg] = field(default_factory=list)  # keywords the class does not accept
    duplicates: list[cst.Arg] = field(default_factory=list)  # keywords already filled positionally
    extra: list[cst.Arg] = field(default_factory=list)  # positional arguments past the last accepted one
    complete: bool = True  # False when ``*args`` / ``**kwargs`` may fill more

    def missing(self, signature: Signature) -> list[str]:
        if not self.complete:
            return []
        return [name for name in signature.required if name not in self.arguments]


@lru_cache(maxsize=1)
def signatures() -> dict[str, Signature]:
    """The recorded signatures by canonical class name."""
    # a path next to this file, not importlib.resources: that costs ~9 ms to import on every
    # run, and the package is never zipped (the built-in rules are loaded by path too)
    text = (Path(__file__).parent / "data" / "recurrent_signatures.json").read_text("utf-8")
    data = json.loads(text)
    return {
        qualname: Signature(
            qualname=qualname,
            positional=tuple(entry["positional"]),
            keywords=frozenset(entry["keywords"]),
            required=tuple(entry["required"]),
            defaults=dict(entry["defaults"]),
            rejected=dict(entry["rejected"]),
        )
        for qualname, entry in data["modules"].items()
    }


def bind(signature: Signature, call: cst.Call) -> Binding:
    binding = Binding()
    position = 0
    for arg in call.args:
        if arg.star:  # *args or **kwargs: positions and keywords beyond what we see
            binding.complete = False
            continue
        if arg.keyword is None:
            if not binding.complete:
                continue  # after *args we no longer know the position
            if position < len(signature.positional):
                binding.arguments[signature.positional[position]] = arg
            else:
                binding.extra.append(arg)
            position += 1
            continue
        name = arg.keyword.value
        if name not in signature.keywords:
            binding.unknown.append(arg)
        elif name in binding.arguments:
            binding.duplicates.append(arg)
        else:
            binding.arguments[name] = arg
    return binding
