"""Pruning: a trial whose objective is going nowhere stops early.

``Pruning`` is a Keras callback (any backend) that reports each epoch's objective to a pruner and
stops the fit when the pruner says so. A pruner is anything with ``report(epoch, value) -> bool``
(stop or not), ``epoch`` (where it stopped the run, None until then) and ``name``: an Optuna
sweep job's trial (``framework.config.optuna.TrialPruner``), or ``MedianRule`` for the trials
of a keras-tuner search.
"""

import keras
import numpy as np


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


class MedianRule:
    """A pruner for trials run one after another (a keras-tuner search): stops a trial whose
    best objective so far is worse than the median of the finished trials' at the same epoch,
    as Optuna's MedianPruner.

    Args:
        curves: the finished trials' objective, epoch by epoch (a list of lists).
        direction: ``"min"`` or ``"max"``.
        startup_trials: trials that must have finished before any is pruned.
        warmup_epochs: the fewest epochs a trial trains before it may be pruned.
    """

    name = "median"

    def __init__(self, curves: list, direction: str, startup_trials: int, warmup_epochs: int):
        self.curves, self.direction = curves, direction
        self.startup_trials, self.warmup_epochs = startup_trials, warmup_epochs
        self.curve = []  # this trial's objective, epoch by epoch
        self.epoch = None  # where it stopped the trial

    def report(self, epoch: int, value: float) -> bool:
        """Takes epoch ``epoch``'s (from 1) objective; returns whether to stop the trial."""
        self.curve.append(value)
        reached = [c[epoch - 1] for c in self.curves if len(c) >= epoch]
        if epoch < self.warmup_epochs or not reached or len(self.curves) < self.startup_trials:
            return False
        best = min(self.curve) if self.direction == "min" else max(self.curve)
        median = float(np.median(reached))
        if best > median if self.direction == "min" else best < median:
            self.epoch = epoch
        return self.epoch is not None
