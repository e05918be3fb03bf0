"""A run's own checkpoint, so that a run stopped part-way continues where it stopped.

A Slurm job requeued after a time-out or a preemption, a sweep job killed and resumed with
``hydra/sweeper=resume``: each runs again in the same directory. Keras's ``BackupAndRestore``
keeps the stage being trained (weights, optimizer, epoch) and ``CSVLogger`` its epochs so far;
a finished stage keeps its weights and scores. All of it lives in ``<run dir>/.resume`` and is
deleted once the run has written metrics.json.
"""

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.rundir import record_config, write_atomic

RESUME_DIR = ".resume"


class JobCheckpoint:
    """The checkpoint of the run in ``run_dir``, made for the run config ``cfg``.

    Raises:
        UserError: the directory holds the checkpoint of a run of another config.
    """

    def __init__(self, run_dir: Path, cfg):
        self.dir = run_dir / RESUME_DIR
        if not record_config(self.dir, OmegaConf.to_yaml(cfg, resolve=True)):
            raise UserError(
                f"{run_dir} holds an unfinished run of another config (its checkpoint is in "
                f"{self.dir}); run this config in another directory, or delete {self.dir}"
            )

    def callbacks(self, stage: int) -> list:
        """The Keras callbacks that keep a stage's progress, epoch by epoch."""
        backup = self.dir / f"stage{stage}"
        epochs = self._epochs_file(stage)
        if not backup.exists():  # a fresh start of the stage: epochs logged before are void
            epochs.unlink(missing_ok=True)
        else:
            # Keras restores the model, its optimizer and the epoch, not the callbacks' counts.
            print("  continues from the run's checkpoint; callbacks that count epochs (patience, "
                  "best score so far) count again from here")
        # The epoch's row first, its backup after: a stop in between replays that epoch, and
        # the replayed row replaces the first (see stage_history).
        return [keras.callbacks.CSVLogger(str(epochs), append=True),
                keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True)]

    def stage_history(self, stage: int, fit_history: dict) -> dict[str, list[float]]:
        """The stage's whole history, epochs from before a restart included.

        Args:
            stage: the stage's number.
            fit_history: ``History.history`` of the stage's last ``fit`` (its key order is kept).

        Returns:
            Each metric's values, one per epoch of the stage.
        """
        rows = {}
        with self._epochs_file(stage).open(newline="") as f:
            for row in csv.DictReader(f):
                if None in row.values() or "" in row.values():
                    continue  # the row a hard kill cut short; its epoch was replayed
                rows[int(row.pop("epoch"))] = row  # a replayed epoch: the last row counts
        keys = list(fit_history) or (list(next(iter(rows.values()))) if rows else [])
        return {key: [float(rows[epoch][key]) for epoch in sorted(rows)] for key in keys}

    def finished_stage(self, stage: int) -> dict | None:
        """What a stage finished earlier left (its history rows and scores), else None."""
        record = self.dir / f"stage{stage}.json"
        return json.loads(record.read_text()) if record.is_file() else None

    def restore_weights(self, model, stage: int):
        """Sets the model's weights to those a finished stage left."""
        with np.load(self.dir / f"stage{stage}.weights.npz") as saved:
            model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])

    def save_stage(self, model, stage: int, record: dict):
        """Keeps a finished stage: the model's weights, then its record (which marks it)."""
        # The weights alone: the next stage compiles an optimizer of its own.
        tmp = self.dir / f".stage{stage}.tmp.npz"
        np.savez(tmp, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        tmp.replace(self.dir / f"stage{stage}.weights.npz")
        write_atomic(self.dir / f"stage{stage}.json", json.dumps(record))

    def delete(self):
        """Deletes the checkpoint (the run is finished)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _epochs_file(self, stage: int) -> Path:
        return self.dir / f"stage{stage}.epochs.csv"
