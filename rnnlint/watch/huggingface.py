"""``RnnlintWatchCallback``: the watcher as a Hugging Face ``TrainerCallback`` (imports transformers).

    from rnnlint.watch.huggingface import RnnlintWatchCallback

    trainer = transformers.Trainer(..., callbacks=[RnnlintWatchCallback()])

The ``Trainer`` clips gradients by default (``max_grad_norm=1.0``); the watcher
sees that clip, so RNN001 is reported only when ``max_grad_norm`` is 0 or None.
Findings are issued as :class:`rnnlint.watch.observe.ObservedFinding` warnings,
kept in ``callback.watcher.findings`` and added to the logs as ``rnnlint_findings``.
"""

from __future__ import annotations

from transformers import TrainerCallback

from rnnlint.watch.observe import Watcher

__all__ = ["RnnlintWatchCallback"]


class RnnlintWatchCallback(TrainerCallback):
    """Watch the model and optimizer the ``Trainer`` hands over, from ``on_train_begin`` to ``on_train_end``."""

    def __init__(self, **options) -> None:
        self.options = options
        self.watcher: Watcher | None = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        while optimizer is not None and hasattr(optimizer, "optimizer") and optimizer.optimizer is not optimizer:
            optimizer = optimizer.optimizer  # accelerate's AcceleratedOptimizer wraps the torch optimizer
        self.watcher = Watcher(model, optimizer, **self.options).attach()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.watcher is not None and logs is not None and self.watcher.findings:
            logs["rnnlint_findings"] = len(self.watcher.findings)

    def on_train_end(self, args, state, control, **kwargs):
        if self.watcher is not None:
            self.watcher.detach()
