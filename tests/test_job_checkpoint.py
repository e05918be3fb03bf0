"""A run stopped part-way (a requeued Slurm job, a killed sweep job) continues from its own
checkpoint when it runs again in the same directory."""

import csv

import keras
import pytest

from framework.errors import UserError
from framework.job_checkpoint import JobCheckpoint, wanted
from framework.train import train

TWO_STAGES = ("experiment=iris_binary", "trainer.verbose=0",
              "trainer.stages=[{name:first,epochs:3},{name:second,epochs:4}]")


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
    """Counts the epochs each stage trains; ``stop[0] = (stage, epochs)`` stops the next run
    after that stage's epoch, once its checkpoint is saved."""
    trained, stop = {}, [None]
    keep = JobCheckpoint.callbacks

    class Count(keras.callbacks.Callback):
        def __init__(self, stage):
            super().__init__()
            self.stage = stage

        def on_epoch_end(self, epoch, logs=None):
            trained[self.stage] = trained.get(self.stage, 0) + 1

    def callbacks(self, stage):
        extra = [Count(stage)]
        if stop[0] and stop[0][0] == stage:
            extra.append(StopAfter(*stop[0]))
            stop[0] = None
        return keep(self, stage) + extra

    monkeypatch.setattr(JobCheckpoint, "callbacks", callbacks)
    return trained, stop


def _history(run_dir):
    return list(csv.DictReader((run_dir / "history.csv").open()))


def test_a_run_stopped_mid_stage_continues_from_its_checkpoint(compose, tmp_path, capsys,
                                                               epochs_trained):
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


def test_a_run_stopped_after_a_stages_last_epoch_trains_only_the_next(compose, tmp_path,
                                                                      epochs_trained):
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


def test_an_uninterrupted_run_with_a_checkpoint_gives_the_same_results(compose, tmp_path):
    cfg = compose(*TWO_STAGES)
    train(cfg, tmp_path / "plain")
    train(cfg, tmp_path / "kept", checkpoint=True)
    for name in ("history.csv", "metrics.json"):
        assert (tmp_path / "kept" / name).read_text() == (tmp_path / "plain" / name).read_text()


def test_another_config_in_a_stopped_runs_directory_is_refused(compose, tmp_path,
                                                               epochs_trained):
    _, stop = epochs_trained
    stop[0] = (1, 1)
    with pytest.raises(Stop):
        train(compose(*TWO_STAGES), tmp_path / "job", checkpoint=True)
    saved = {p: p.read_bytes() for p in (tmp_path / "job" / ".resume").rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="holds an unfinished run of another config"):
        train(compose(*TWO_STAGES, "trainer.batch_size=16"), tmp_path / "job", checkpoint=True)
    assert {p: p.read_bytes() for p in (tmp_path / "job" / ".resume").rglob("*")
            if p.is_file()} == saved


@pytest.mark.parametrize("setting, in_sweep, slurm, expected", [
    ("auto", True, False, True), ("auto", False, False, False), ("auto", False, True, True),
    (True, False, False, True), (False, True, True, False)])
def test_checkpoints_are_kept_in_sweeps_and_slurm_jobs_by_default(setting, in_sweep, slurm,
                                                                  expected, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    if slurm:
        monkeypatch.setenv("SLURM_JOB_ID", "1234")
    assert wanted(setting, in_sweep) is expected


def test_an_unknown_checkpoint_setting_is_refused():
    with pytest.raises(UserError, match="trainer.checkpoint must be auto, true or false. "
                                        "Received: 'yes'"):
        wanted("yes", True)
