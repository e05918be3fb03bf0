"""A run's own checkpoint, so that a run stopped part-way continues where it stopped.

A Slurm job requeued after a time-out or a preemption, a sweep job killed and resumed with
``hydra/sweeper=resume``: each runs again in the same directory. A backup keeps the stage being
trained (weights, optimizer, epoch: what Keras's ``BackupAndRestore`` keeps, and restores the
same way), made at the end of an epoch once ``trainer.checkpoint_interval`` seconds have passed
since the stage started or was last backed up (0: after every epoch), and ``CSVLogger`` its
epochs so far; a finished stage keeps its weights and scores. All of it lives in
``<run dir>/.resume`` and is deleted once the run has written metrics.json. The data order of
each epoch needs no keeping: it is set by the run's seed and the epoch (``epoch_order``).
"""

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.run.rundir import record_config, write_atomic

RESUME_DIR = ".resume"
# A stage's last epoch backup, in its backup folder.
BACKUP_FILE = "backup.npy"
# A search's own files (keras-tuner's trials), in its run dir: keras-tuner's project folder,
# with a folder per trial.
SEARCH_DIR = "tuner"
SEARCH_PROJECT = "search"


def trial_dir(run_dir: Path, trial_id: str) -> Path:
    """A search trial's folder in its run dir, as keras-tuner's ``Tuner.get_trial_dir`` names
    it."""
    return run_dir / SEARCH_DIR / SEARCH_PROJECT / f"trial_{trial_id}"


def check_resumable(run_dir: Path, cfg):
    """Refuses a run config that differs from the one whose unfinished run ``run_dir`` holds:
    a run's checkpoint, or a search's trials (``tuner.algorithm`` set).

    Raises:
        UserError: the directory holds an unfinished run or search of another config.
    """
    search_dir = run_dir / SEARCH_DIR
    if OmegaConf.select(cfg, "tuner.algorithm"):
        if search_dir.is_dir():
            if _saved_config(search_dir) not in (None, recorded_search(cfg)):
                raise _another_search(search_dir)
        elif (run_dir / RESUME_DIR).is_dir():  # a run's checkpoint; a search retrains in its
            raise _another_config(run_dir)  # dir only with its own trials beside
        return
    if search_dir.is_dir():
        raise UserError(
            f"{run_dir} holds an unfinished search (its trials are in {search_dir}); "
            "run this config in another directory, or the search's own config to "
            "continue it"
        )
    if _saved_config(run_dir / RESUME_DIR) not in (None, recorded_config(cfg)):
        raise _another_config(run_dir)


def _saved_config(directory: Path) -> str | None:
    """The config YAML ``record_config`` kept in ``directory``, or None."""
    saved = directory / "config.yaml"
    if not saved.is_file():
        return None
    try:
        return saved.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(
            f"{saved} cannot be read ({e}); delete {saved.parent} to run this "
            "directory's run from the start"
        ) from None


def record_search(search_dir: Path, cfg):
    """Keeps a search's config in its search dir, for the search that continues it there.

    Raises:
        UserError: the search dir holds a search of another config.
    """
    if not record_config(search_dir, recorded_search(cfg)):
        raise _another_search(search_dir)


def _another_search(search_dir: Path) -> UserError:
    return UserError(
        f"{search_dir} holds a search of another config; run this one in another directory "
        "(hydra.run.dir=...)"
    )


def recorded_search(cfg) -> str:
    """The YAML of a search config that a search continued in its run dir must match.

    What a continued search may change: how much it says, and how many trials it runs in all.
    """
    compared = OmegaConf.to_container(cfg, resolve=True)
    del compared["trainer"]["verbose"], compared["tuner"]["max_trials"]
    return OmegaConf.to_yaml(compared)


def recorded_config(cfg) -> str:
    """The YAML of a run config that a run continued from its checkpoint must match.

    How often the stage is backed up changes nothing the run computes: it is left out, so a
    requeued run may change it (and checkpoints from before it existed still match).
    """
    recorded = OmegaConf.to_container(cfg, resolve=True)
    del recorded["trainer"]["checkpoint_interval"]
    return OmegaConf.to_yaml(recorded)


def _another_config(run_dir: Path) -> UserError:
    resume_dir = run_dir / RESUME_DIR
    return UserError(
        f"{run_dir} holds an unfinished run of another config (its checkpoint is in "
        f"{resume_dir}); run this config in another directory, or delete {resume_dir}"
    )


class JobCheckpoint:
    """The checkpoint of the run in ``run_dir``, made for the run config ``cfg``.

    Raises:
        UserError: the directory holds the checkpoint of a run of another config.
    """

    def __init__(self, run_dir: Path, cfg):
        self.dir = run_dir / RESUME_DIR
        self.interval = cfg.trainer.checkpoint_interval
        if not record_config(self.dir, recorded_config(cfg)):
            raise _another_config(run_dir)

    def restore(self, stage: int, model) -> int:
        """Restores the last backup of a stage's fit into its compiled model: the weights, the
        optimizer's variables and the random layers' states, as ``BackupAndRestore`` does.

        Returns:
            The epochs the backup holds done: where ``fit`` continues (its ``initial_epoch``);
            0 where the stage has no backup.

        Raises:
            UserError: a backup of another model.
        """
        path = self.dir / f"stage{stage}" / BACKUP_FILE
        if _backed_up(path) is None:
            return 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # variables to restore into
        with path.open("rb") as f:  # what the backup callback wrote, in its order
            count, epoch = (int(n) for n in np.load(f))
            arrays = [np.load(f) for _ in range(count)]
        optimizer = _variables(model.optimizer)
        weights = len(arrays) - len(optimizer)
        if weights != len(model.weights):
            raise UserError(
                f"{path} holds {len(arrays)} arrays where the model and its optimizer have "
                f"{len(model.weights) + len(optimizer)}; delete {self.dir} to run this "
                "directory's run from the start"
            )
        model.set_weights(arrays[:weights])
        for variable, value in zip(optimizer, arrays[weights:], strict=True):
            variable.assign(value)
        load_seed_states(model, _seeds_file(self.dir / f"stage{stage}.seeds", epoch))
        return epoch

    def callbacks(self, stage: int) -> list:
        """The Keras callbacks that keep a stage's progress as it trains."""
        backup = self.dir / f"stage{stage}"
        epochs = self._epochs_file(stage)
        if not backup.exists():  # a fresh start of the stage: epochs logged before are void
            epochs.unlink(missing_ok=True)
        else:
            # Keras restores the model, its optimizer and the epoch, not the callbacks' counts.
            print(
                "  continues from the run's checkpoint; callbacks that count epochs (patience, "
                "best score so far) count again from here"
            )
        # The epoch's row first, its backup after: a stop in between replays the epochs since
        # the last backup, and a replayed row replaces the first (see stage_history).
        import keras  # here: the run's checks import this module before TensorFlow is wanted

        return [
            keras.callbacks.CSVLogger(str(epochs), append=True),
            _epoch_backup(keras)(backup, self.dir / f"stage{stage}.seeds", self.interval),
        ]

    def stage_history(self, stage: int, fit) -> dict[str, list[float]]:
        """The stage's whole history, epochs from before a restart included.

        Args:
            stage: the stage's number.
            fit: the ``History`` of the stage's last ``fit`` (the key order of its ``history``
                is kept).

        Returns:
            Each metric's values, one per epoch of the stage.
        """
        fit_history = fit.history
        # Rows past the last fit's last epoch were logged by a stopped run after its last
        # backup, and this one stopped before them (early stopping counts again from a restart).
        last = fit.epoch[-1] if fit.epoch else None
        rows = {}
        with self._epochs_file(stage).open(newline="") as f:
            for row in csv.DictReader(f):
                if None in row.values() or "" in row.values():
                    continue  # the row a hard kill cut short; its epoch was replayed
                epoch = int(row.pop("epoch"))
                if last is None or epoch <= last:
                    rows[epoch] = row  # a replayed epoch: the last row counts
        keys = list(fit_history) or (list(next(iter(rows.values()))) if rows else [])
        return {key: [float(rows[epoch][key]) for epoch in sorted(rows)] for key in keys}

    def finished_stage(self, stage: int) -> dict | None:
        """What a stage finished earlier left (its history rows and scores), else None."""
        record = self.dir / f"stage{stage}.json"
        return json.loads(record.read_text()) if record.is_file() else None

    def restore_weights(self, model, stage: int):
        """Sets the model's weights (and its random layers' states) to those a finished stage
        left."""
        with np.load(self.dir / f"stage{stage}.weights.npz") as saved:
            model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
        load_seed_states(model, self.dir / f"stage{stage}.seeds.npz")

    def save_stage(self, model, stage: int, record: dict):
        """Keeps a finished stage: the model's weights, then its record (which marks it)."""
        # The weights alone: the next stage compiles an optimizer of its own.
        tmp = self.dir / f".stage{stage}.tmp.npz"
        np.savez(tmp, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        tmp.replace(self.dir / f"stage{stage}.weights.npz")
        save_seed_states(model, self.dir / f"stage{stage}.seeds.npz")
        write_atomic(self.dir / f"stage{stage}.json", json.dumps(record))

    def delete(self):
        """Deletes the checkpoint (the run is finished)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _epochs_file(self, stage: int) -> Path:
        return self.dir / f"stage{stage}.epochs.csv"


def seed_states(model) -> list:
    """The state variables of the model's random layers (dropout, noise, augmentation).

    Keras keeps them out of a model's weights (``get_weights``, ``save_weights``, the stage
    backup), so a run restored without them would draw other random numbers than the run it
    continues.
    """
    return [v for v in model.variables if v.name == "seed_generator_state"]


def save_seed_states(model, path: Path):
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, *[np.asarray(v.numpy()) for v in seed_states(model)])
    tmp.replace(path)


def load_seed_states(model, path: Path):
    if not path.is_file():  # a checkpoint written before they were kept
        print(
            "  (the checkpoint holds no random-layer states: dropout and augmentation draw "
            "other numbers than the stopped run would have)"
        )
        return
    with np.load(path) as saved:
        for i, variable in enumerate(seed_states(model)):
            variable.assign(saved[f"arr_{i}"])


def _seeds_file(prefix: Path, epochs_done: int) -> Path:
    """Where the random layers' states after ``epochs_done`` epochs of a stage are kept."""
    return prefix.with_name(f"{prefix.name}{epochs_done}.npz")


def _epoch_backup(keras):
    """The Keras callback that backs the stage up at epochs' ends (``JobCheckpoint.restore``
    restores the last backup when the stage's fit starts again)."""

    class EpochBackup(keras.callbacks.Callback):
        """Keras's ``BackupAndRestore``, in one file of NumPy arrays, at most every ``interval``
        seconds.

        It keeps what ``BackupAndRestore`` does: the model's weights, its optimizer's variables
        and the number of epochs done, which ``JobCheckpoint.restore`` restores and hands to
        ``fit`` as its ``initial_epoch``. ``BackupAndRestore`` writes them
        with ``save_weights``, an HDF5 file of the whole object tree: about 25 ms per epoch on
        2 CPU cores even for iris's 81 weights, where this writes the same arrays in about
        1.5 ms. The file is written whole, then renamed over the last one, so a process killed
        while writing leaves the previous backup (what ``double_checkpoint`` is for).

        A backup is made at an epoch's end once ``interval`` seconds have passed since the fit
        started or was last backed up: after every epoch that takes longer, and not after
        every one of many short epochs (the digits CNN's backups took 14 ms of its 0.7 s
        epochs). It saves the random layers' states first, beside itself (Keras leaves them
        out of the weights), then deletes those of the backup it replaced.

        Args:
            directory: the stage's backup folder: made by the first backup, deleted when the
                stage's fit ends (its existence tells that the stage has a backup).
            seeds: the prefix of the random layers' states files.
            interval: the least time between two backups, in seconds; 0: after every epoch.
        """

        def __init__(self, directory: Path, seeds: Path, interval: float):
            super().__init__()
            self.directory = Path(directory)
            self.path = self.directory / BACKUP_FILE
            self.seeds, self.interval = seeds, interval

        def on_train_begin(self, logs=None):
            # The backup the fit continues from, restored before it (JobCheckpoint.restore).
            self.last_backup, self.epochs_backed_up = time.monotonic(), _backed_up(self.path)

        def on_epoch_end(self, epoch, logs=None):
            if time.monotonic() - self.last_backup < self.interval:
                return
            save_seed_states(self.model, _seeds_file(self.seeds, epoch + 1))
            self.directory.mkdir(parents=True, exist_ok=True)
            arrays = self.model.get_weights() + [
                np.asarray(v.numpy()) for v in _variables(self.model.optimizer)
            ]
            tmp = self.directory / ".backup.tmp.npy"
            with tmp.open("wb") as f:  # arrays one after another (np.savez zips: slower)
                np.save(f, np.array([len(arrays), epoch + 1]))
                for array in arrays:
                    np.save(f, array, allow_pickle=False)
            tmp.replace(self.path)
            if self.epochs_backed_up is not None:
                _seeds_file(self.seeds, self.epochs_backed_up).unlink(missing_ok=True)
            self.last_backup, self.epochs_backed_up = time.monotonic(), epoch + 1

        def on_train_end(self, logs=None):
            shutil.rmtree(self.directory, ignore_errors=True)

    return EpochBackup


def _backed_up(path: Path) -> int | None:
    """The epochs done that a stage's backup file holds; None where there is none."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        return int(np.load(f)[1])  # its first array: the count of arrays, the epochs done


def _variables(optimizer) -> list:
    return list(optimizer.variables) if optimizer is not None else []
