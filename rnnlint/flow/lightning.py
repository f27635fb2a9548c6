"""Lightning: which ``Trainer`` fits a LightningModule, and whether it clips.

A LightningModule holds the training step, but the loop that runs it, and the
gradient clipping, belong to the ``Trainer`` that fits it, often in another
file (``main.py`` builds the module and the Trainer; ``model.py`` defines the
module). Both questions are asked of the flow model, so they cross files the
way values do: ``trainer.fit(model)`` fits the LightningModule ``model`` is an
instance of, wherever the class and the Trainer are written.
"""

from __future__ import annotations

from pathlib import Path

import libcst as cst

from rnnlint.flow import library
from rnnlint.flow.scopes import Site
from rnnlint.flow.values import INSTANCE, LIBRARY
from rnnlint.nodes import keyword_arg

#: ``Trainer.from_argparse_args(args)`` (Lightning 1.x): the Trainer's options come from the command line
FROM_ARGPARSE = "from_argparse_args"


def is_trainer_call(imports, call: cst.Call) -> bool:
    """``Trainer(...)`` or ``Trainer.from_argparse_args(...)`` of Lightning, under any import
    (``imports``: the ImportMap of the file the call is written in)."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == FROM_ARGPARSE:
        func = func.value
    return imports.resolve(func) in library.LIGHTNING_TRAINERS


def trainer_clips(flow, call: cst.Call, site: Site) -> bool | None:
    """Does a Lightning Trainer clip? None when it cannot be told (``**kwargs``, a value that does not
    resolve). ``Trainer.from_argparse_args(args)`` takes ``--gradient_clip_val`` from the command line:
    its default (the project's, or Lightning's: none) decides."""
    if any(arg.star == "**" for arg in call.args):
        return None
    clip = keyword_arg(call, "gradient_clip_val")
    if clip is not None:
        if isinstance(clip.value, cst.Name) and clip.value.value == "None":
            return False
        found = {v.number for v in flow.values(clip.value, site)}
        if len(found) != 1 or None in found:
            return None
        return found.pop() != 0
    if isinstance(call.func, cst.Attribute) and call.func.attr.value == FROM_ARGPARSE and call.args:
        option = cst.Attribute(value=call.args[0].value, attr=cst.Name("gradient_clip_val"))
        found = [v.number for v in flow.values(option, site) if v.number is not None]
        return any(found) if found else False
    return False


def fitted_model(fit: cst.Call) -> cst.BaseExpression | None:
    """The model argument of ``trainer.fit(model, ...)`` / ``trainer.fit(model=...)``."""
    model = keyword_arg(fit, "model")
    if model is not None:
        return model.value
    positional = [a for a in fit.args if a.keyword is None and not a.star]
    return positional[0].value if positional else None


def trainers_fitting(flow, path: Path, cls: cst.ClassDef) -> list[tuple[cst.Call, Site]]:
    """Every Lightning Trainer call of the project that fits an instance of ``cls`` (defined in ``path``).

    Only files with ``fit`` among their words are read; the model and the Trainer are
    each asked of the flow model (assignments, parameters, a factory function that
    returns the Trainer, other files).
    """
    found: list[tuple[cst.Call, Site]] = []
    for other_path, words in flow.project_files().items():
        if "fit" not in words:
            continue
        other = flow.file(other_path)
        if other is None:
            continue
        for fit, function, _ in other.calls.get("fit", []):
            if not isinstance(fit.func, cst.Attribute):
                continue
            site = other.site(function)
            model = fitted_model(fit)
            if not any(v.kind == INSTANCE and v.node is cls for v in flow.values(model, site, models=True)):
                continue
            for trainer in flow.values(fit.func.value, site, models=True):
                call = trainer.call
                if trainer.kind == LIBRARY and isinstance(call, cst.Call) and is_trainer_call(
                        trainer.call_site.file.imports, call):
                    found.append((call, trainer.call_site))
    return found
