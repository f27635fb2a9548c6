"""``RnnlintWatch``: the watcher as a Lightning callback (imports Lightning, so import it only to use it).

    from rnnlint.watch.lightning import RnnlintWatch

    trainer = lightning.pytorch.Trainer(callbacks=[RnnlintWatch()])

Works with ``lightning`` (``lightning.pytorch``) and with ``pytorch_lightning``:
the callback subclasses the one that is installed (``lightning`` first).
Findings are issued as :class:`rnnlint.watch.observe.ObservedFinding` warnings,
kept in ``callback.watcher.findings`` and, when the trainer has a logger,
counted in the logged metric ``rnnlint/findings``.
"""

from __future__ import annotations

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the standalone package
    from pytorch_lightning.callbacks import Callback

from rnnlint.watch.observe import Watcher

__all__ = ["RnnlintWatch"]


class RnnlintWatch(Callback):
    """Watch the LightningModule and its optimizers from the start of ``fit`` to its end.

    ``options`` go to :class:`rnnlint.watch.observe.Watcher` (``warm``, ``every``,
    ``on_finding``, ``warn``, ``roots``).
    """

    def __init__(self, **options) -> None:
        super().__init__()
        self.options = options
        self.watcher: Watcher | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        optimizers = list(trainer.optimizers) or None
        self.watcher = Watcher(pl_module, optimizers, **self.options).attach()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watcher is not None and self.watcher.findings and trainer.logger is not None:
            pl_module.log("rnnlint/findings", float(len(self.watcher.findings)), on_step=True, logger=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.watcher is not None:
            self.watcher.detach()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_fit_end(trainer, pl_module)
