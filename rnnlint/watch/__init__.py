"""``rnnlint watch``: what a training run itself shows, at the user's source lines.

One implementation (:class:`rnnlint.watch.observe.Watcher`) behind every front:

- ``rnnlint watch SCRIPT`` (:mod:`rnnlint.watch.command`, :mod:`rnnlint.watch.run`): the
  script runs once in a contained child process (the verifier's bootstrap, with
  :mod:`rnnlint.watch.child` loaded as an extension);
- ``rnnlint.watch(model, optimizer)``: in the user's own process, as a context manager
  or a plain call (this module is callable: ``rnnlint.watch`` is the module and the call);
- :mod:`rnnlint.watch.lightning` (``RnnlintWatch``, a Lightning callback) and
  :mod:`rnnlint.watch.huggingface` (``RnnlintWatchCallback``, a ``TrainerCallback``).

Importing this package imports neither torch nor the optional frameworks.
"""

from __future__ import annotations

import sys
import types

__all__ = ["watch", "Watcher", "ObservedFinding"]


def watch(model=None, optimizer=None, **options):
    """Watch ``model`` and ``optimizer`` (or a list of optimizers) from now on; returns the :class:`Watcher`.

    Use it as a context manager (the hooks come off at the end of the block) or
    as a plain call (they stay until ``watcher.close()``). Findings are issued as
    :class:`ObservedFinding` warnings and kept in ``watcher.findings``;
    ``watcher.measured()`` says what it measured. ``options`` go to :class:`Watcher`
    (``warm``, ``every``, ``roots``, ``on_finding``, ``warn``).
    """
    from rnnlint.watch.observe import Watcher

    return Watcher(model, optimizer, **options).attach()


def __getattr__(name: str):
    if name in ("Watcher", "ObservedFinding"):
        from rnnlint.watch import observe

        return getattr(observe, name)
    if name in ("lightning", "huggingface"):  # rnnlint.watch.lightning.RnnlintWatch: imports the framework
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``rnnlint.watch(model, optimizer)`` calls :func:`watch`; ``rnnlint.watch.Watcher`` etc. still work."""

    def __call__(self, model=None, optimizer=None, **options):
        return watch(model, optimizer, **options)


sys.modules[__name__].__class__ = _CallableModule
