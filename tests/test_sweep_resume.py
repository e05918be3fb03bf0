"""hydra/sweeper=resume refuses what it cannot resume safely (no training here)."""

from dataclasses import replace

import pytest
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.run.record import write_record
from framework.sweeps.resume import SkipFinished, finished_job

from test_run_record import RECORD

HYDRA = {"sweep": {"dir": "sweep", "subdir": "${hydra.job.num}"}, "output_subdir": ".hydra"}


def finished(sweep_dir, job, overrides, value=0.5):
    (sweep_dir / job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), sweep_dir / job / ".hydra" / "overrides.yaml")
    objective = {"name": "val_accuracy", "value": value, "direction": "max"}
    write_record(sweep_dir / job, replace(RECORD, objective=objective))


def test_a_job_finished_with_the_same_overrides_is_not_run_again(tmp_path):
    finished(tmp_path, "0", ["seed=1"], 0.75)
    ret = finished_job(tmp_path / "0", ["seed=1"], 0)
    assert ret.return_value == 0.75
    assert finished_job(tmp_path / "1", ["seed=2"], 1) is None  # not finished: runs again
    with pytest.raises(UserError, match="job 0 in .* ran other overrides .seed=1."):
        finished_job(tmp_path / "0", ["seed=3"], 0)


def test_a_finished_regression_job_gives_its_objective(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(["seed=1"]), tmp_path / "0" / ".hydra" / "overrides.yaml")
    objective = {"name": "val_mae", "value": 41.5, "direction": "min"}
    # No accuracy in a regression run.
    write_record(tmp_path / "0", replace(RECORD, validation={"mae": 41.5}, objective=objective))
    assert finished_job(tmp_path / "0", ["seed=1"], 0).return_value == 41.5


def test_a_sweep_dir_with_jobs_beyond_the_sweep_is_refused(tmp_path):
    for job in ("0", "1", "2"):
        finished(tmp_path, job, [f"seed={job}"])
    launcher = SkipFinished(None, tmp_path, OmegaConf.create(HYDRA))
    launcher.check_job_count(3)
    with pytest.raises(UserError, match="holds job 2, beyond the 2 jobs of this sweep"):
        launcher.check_job_count(2)


@pytest.mark.parametrize(
    "change", [{"sweep": {"subdir": "${hydra.job.override_dirname}"}}, {"output_subdir": None}]
)
def test_job_dirs_not_found_by_number_cannot_be_resumed(tmp_path, change):
    hydra_cfg = OmegaConf.merge(HYDRA, change)
    with pytest.raises(UserError, match="finds jobs by number"):
        SkipFinished(None, tmp_path, hydra_cfg)


def test_pending_jobs_are_launched_with_their_own_numbers_around_finished_ones(tmp_path):
    class Recorder:  # a launcher that records what it was asked to run
        calls = []

        def launch(self, batch, initial_job_idx):
            self.calls.append((initial_job_idx, [list(o) for o in batch]))
            return [f"ran {initial_job_idx + i}" for i in range(len(batch))]

    for job in ("0", "2"):
        finished(tmp_path, job, [f"seed={job}"], 1.0)
    recorder = Recorder()
    returns = SkipFinished(recorder, tmp_path, OmegaConf.create(HYDRA)).launch(
        [[f"seed={i}"] for i in range(5)], initial_job_idx=0
    )
    assert recorder.calls == [(1, [["seed=1"]]), (3, [["seed=3"], ["seed=4"]])]
    assert [r if isinstance(r, str) else r.return_value for r in returns] == [
        1.0,
        "ran 1",
        1.0,
        "ran 3",
        "ran 4",
    ]
