"""Pruning: a trial whose objective is going nowhere stops early.

``Pruning`` is a Keras callback (any backend) that reports each epoch's objective to a pruner and
stops the fit when the pruner says so. A pruner is anything with ``report(epoch, value) -> bool``
(stop or not), ``epoch`` (where it stopped the run, None until then) and ``name``: an Optuna
sweep job's trial (``framework.config.optuna.TrialPruner``).
"""

import keras


class Pruning(keras.callbacks.Callback):
    """Reports each epoch's objective to a pruner; stops the fit where it says so.

    Args:
        pruner: the pruner.
        objective: the logged metric it is told (``Run.objective``: ``val_accuracy``...).
        epochs_before: the epochs of the run's earlier stages (epochs are counted over the run).
    """

    def __init__(self, pruner, objective: str, epochs_before: int = 0):
        super().__init__()
        self.pruner, self.objective, self.epochs_before = pruner, objective, epochs_before

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.objective)
        if value is not None and self.pruner.report(self.epochs_before + epoch + 1, float(value)):
            print(
                f"  pruned after epoch {self.pruner.epoch} by {self.pruner.name}: "
                f"{self.objective} {float(value):.4f}",
                flush=True,
            )
            self.model.stop_training = True
