"""A run stopped part-way (a requeued Slurm job, a killed sweep job) continues from its own
checkpoint when it runs again in the same directory."""

import csv

import keras
import numpy as np
import pytest

from framework.errors import UserError
from framework.run import checkpoint as job_checkpoint
from framework.run.checkpoint import JobCheckpoint
from framework.run.train import train

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends

TWO_STAGES = (
    "experiment=iris_binary",
    "trainer.verbose=0",
    "trainer.stages=[{name:first,epochs:3},{name:second,epochs:4}]",
    "trainer.checkpoint_interval=0",
)  # a backup after every epoch


class Stop(Exception):
    """The process dies (preempted, out of time)."""


class StopAfter(keras.callbacks.Callback):
    def __init__(self, stage, epochs):
        super().__init__()
        self.stage, self.epochs = stage, epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Stop(f"stopped in stage {self.stage} after epoch {epoch + 1}")


@pytest.fixture
def epochs_trained(monkeypatch):
    """Counts the epochs each stage trains, and keeps the weights each stage's fit starts from.

    ``stop[0] = (stage, epochs)`` stops the next run after that epoch of that stage, once the
    checkpoint has it; ``(stage, epochs, "before backup")`` stops it between the epoch's row of
    the epoch log and its backup.
    """
    trained, stop, starts = Counts(), [None], {}
    keep = JobCheckpoint.callbacks

    class Count(keras.callbacks.Callback):
        def __init__(self, stage):
            super().__init__()
            self.stage = stage

        def on_train_begin(self, logs=None):  # after BackupAndRestore's restore
            starts[self.stage] = [w.copy() for w in self.model.get_weights()]

        def on_epoch_end(self, epoch, logs=None):
            trained[self.stage] = trained.get(self.stage, 0) + 1

    def callbacks(self, stage):
        epoch_log, backup = keep(self, stage)
        chain = [epoch_log, backup, Count(stage)]
        if stop[0] and stop[0][0] == stage:
            chain.insert(1 if stop[0][2:] == ("before backup",) else 3, StopAfter(*stop[0][:2]))
            stop[0] = None
        return chain

    monkeypatch.setattr(JobCheckpoint, "callbacks", callbacks)
    trained.starts = starts
    return trained, stop


class Counts(dict):
    starts: dict


def _history(run_dir):
    return list(csv.DictReader((run_dir / "history.csv").open()))


@pytest.mark.slow
def test_a_run_stopped_mid_stage_continues_from_its_checkpoint(
    compose, tmp_path, capsys, epochs_trained
):
    cfg = compose(*TWO_STAGES)
    reference = train(cfg, tmp_path / "whole")
    trained, stop = epochs_trained

    stop[0] = (2, 2)  # stopped after epoch 2 of stage 2
    with pytest.raises(Stop):
        train(cfg, tmp_path / "job", checkpoint=True)
    assert trained == {1: 3, 2: 2}
    assert not (tmp_path / "job" / "metrics.json").exists()

    trained.clear()
    capsys.readouterr()
    metrics = train(cfg, tmp_path / "job", checkpoint=True)  # the requeued job
    # Stage 1 is restored, not trained; stage 2 trains only its last 2 epochs.
    assert trained == {2: 2}
    assert "restored, finished, from the run's checkpoint" in capsys.readouterr().out
    history, whole = _history(tmp_path / "job"), _history(tmp_path / "whole")
    assert [(r["epoch"], r["stage"]) for r in history] == [(r["epoch"], r["stage"]) for r in whole]
    # Up to the stop, the same run; after it, the data order differs, not the bookkeeping.
    assert history[:5] == whole[:5]
    assert list(history[0]) == list(whole[0])
    assert metrics["epochs"] == reference["epochs"] == 7
    assert [s["stage"] for s in metrics["stages"]] == ["first", "second"]
    assert metrics["stages"][0] == reference["stages"][0]
    assert not (tmp_path / "job" / ".resume").exists()
    assert not (tmp_path / "job" / "FAILED").exists()


@pytest.mark.slow
def test_a_run_stopped_after_a_stages_last_epoch_trains_only_the_next(
    compose, tmp_path, epochs_trained
):
    cfg = compose(*TWO_STAGES)
    trained, stop = epochs_trained
    stop[0] = (1, 3)
    with pytest.raises(Stop):
        train(cfg, tmp_path / "job", checkpoint=True)
    first = _history(tmp_path / "job") if (tmp_path / "job" / "history.csv").exists() else None
    trained.clear()
    metrics = train(cfg, tmp_path / "job", checkpoint=True)
    assert first is None and trained == {2: 4}
    assert [r["stage"] for r in _history(tmp_path / "job")] == ["first"] * 3 + ["second"] * 4
    assert metrics["epochs"] == 7


@pytest.mark.slow
def test_a_restored_stage_hands_its_weights_to_the_next(compose, tmp_path, epochs_trained):
    cfg = compose(*TWO_STAGES)
    trained, stop = epochs_trained
    train(cfg, tmp_path / "whole", checkpoint=True)
    whole = trained.starts[2]
    stop[0] = (2, 1, "before backup")  # stage 2 has no backup yet: it starts over
    with pytest.raises(Stop):
        train(cfg, tmp_path / "job", checkpoint=True)
    train(cfg, tmp_path / "job", checkpoint=True)
    assert all((a == b).all() for a, b in zip(trained.starts[2], whole, strict=True))


@pytest.mark.slow
def test_an_epoch_logged_but_not_backed_up_is_replayed_once(compose, tmp_path, epochs_trained):
    cfg = compose(*TWO_STAGES)
    trained, stop = epochs_trained
    stop[0] = (2, 3, "before backup")  # epoch 3's row is in the log, its backup is not
    with pytest.raises(Stop):
        train(cfg, tmp_path / "job", checkpoint=True)
    trained.clear()
    metrics = train(cfg, tmp_path / "job", checkpoint=True)
    assert trained == {2: 2}  # epochs 3 (again) and 4
    assert [int(r["epoch"]) for r in _history(tmp_path / "job")] == list(range(1, 8))
    assert metrics["epochs"] == 7


@pytest.mark.slow
def test_an_uninterrupted_run_with_a_checkpoint_gives_the_same_results(compose, tmp_path):
    cfg = compose(*TWO_STAGES)
    train(cfg, tmp_path / "plain")
    train(cfg, tmp_path / "kept", checkpoint=True)
    for name in ("history.csv", "metrics.json"):
        assert (tmp_path / "kept" / name).read_text() == (tmp_path / "plain" / name).read_text()


def test_another_config_in_a_stopped_runs_directory_is_refused(compose, tmp_path, epochs_trained):
    _, stop = epochs_trained
    stop[0] = (1, 1)
    with pytest.raises(Stop):
        train(compose(*TWO_STAGES), tmp_path / "job", checkpoint=True)
    saved = {p: p.read_bytes() for p in (tmp_path / "job" / ".resume").rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="holds an unfinished run of another config"):
        train(compose(*TWO_STAGES, "trainer.batch_size=16"), tmp_path / "job", checkpoint=True)
    assert {
        p: p.read_bytes() for p in (tmp_path / "job" / ".resume").rglob("*") if p.is_file()
    } == saved


@pytest.fixture
def clocked_stages(monkeypatch):
    """Each epoch takes a second by the checkpoint's clock. ``extra[stage]``: callbacks that the
    next fit of that stage gets after the checkpoint's (once)."""
    clock, extra = [0.0], {}

    class Clock:
        @staticmethod
        def monotonic():
            return clock[0]

    class Tick(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock[0] += 1

    monkeypatch.setattr(job_checkpoint, "time", Clock)
    keep = JobCheckpoint.callbacks
    monkeypatch.setattr(
        JobCheckpoint,
        "callbacks",
        lambda self, stage: [Tick(), *keep(self, stage), *extra.pop(stage, [])],
    )
    return clock, extra


class StopTraining(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True  # as early stopping does


EIGHT_EPOCHS = "trainer.stages=[{name:first,epochs:3},{name:second,epochs:8}]"


@pytest.mark.slow
def test_the_stage_is_backed_up_at_most_every_checkpoint_interval(
    compose, tmp_path, clocked_stages
):
    clock, extra = clocked_stages
    extra[2] = [StopAfter(2, 8)]
    with pytest.raises(Stop):
        train(
            compose(*TWO_STAGES, EIGHT_EPOCHS, "trainer.checkpoint_interval=3"),
            tmp_path / "job",
            checkpoint=True,
        )
    resume = tmp_path / "job" / ".resume"
    # Stopped after epoch 8 of stage 2, backed up after its epochs 3 and 6 (3 and 6 s in), and
    # the random layers' states kept of the last backup's epoch alone.
    with (resume / "stage2" / "backup.npy").open("rb") as f:
        assert np.load(f)[1] == 6  # its header: array count, epochs done
    assert [p.name for p in resume.glob("stage2.seeds*.npz")] == ["stage2.seeds6.npz"]

    # Continued with another interval (how often it backs up is not part of the config it must
    # match), and stopped after one epoch, as early stopping may: the rows of epoch 8, logged
    # by the stopped run after its last backup, are dropped.
    extra[2] = [StopTraining()]
    before = clock[0]
    metrics = train(
        compose(*TWO_STAGES, EIGHT_EPOCHS, "trainer.checkpoint_interval=60"),
        tmp_path / "job",
        checkpoint=True,
    )
    assert clock[0] - before == 1  # stage 1 restored; stage 2 continues with its epoch 7
    assert [(int(r["epoch"]), r["stage"]) for r in _history(tmp_path / "job")] == [
        *[(e, "first") for e in (1, 2, 3)],
        *[(e, "second") for e in range(4, 11)],
    ]
    assert metrics["epochs"] == 10


def test_every_run_keeps_a_checkpoint_by_default(compose):
    assert compose().trainer.checkpoint is True
    assert compose().trainer.checkpoint_interval == 30
    assert compose("trainer.checkpoint=false").trainer.checkpoint is False
