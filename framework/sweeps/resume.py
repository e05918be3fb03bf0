"""``hydra/sweeper=resume``: Hydra's own grid sweeper, run again on a sweep's directory.

A job that finished there with the same overrides is not run again (its ``metrics.json`` gives
its objective); a job that failed or never finished runs again in its own directory. Selecting
this sweeper is the explicit switch: without it a sweep dir that holds a sweep stays refused.
The sweeper class lives in ``hydra_plugins.framework_resume_sweeper``, where Hydra looks for
plugins; this module is its glue around Hydra's launcher.
"""

import itertools
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.run.record import read_record
from framework.run.rundir import METRICS

NAME = "resume"


class SkipFinished:
    """Wraps a launcher: launches only the jobs not finished in the sweep dir, with their own
    job numbers (so each lands in its own directory again)."""

    def __init__(self, launcher, sweep_dir: Path, hydra_cfg):
        sweep = OmegaConf.to_container(hydra_cfg.sweep, resolve=False)
        if sweep.get("subdir") != "${hydra.job.num}" or not hydra_cfg.output_subdir:
            raise UserError(
                "hydra/sweeper=resume finds jobs by number: it needs hydra.sweep.subdir="
                "${hydra.job.num} and hydra.output_subdir set (the defaults)"
            )
        self.launcher = launcher
        self.sweep_dir = sweep_dir
        self.records = hydra_cfg.output_subdir

    def check_job_count(self, count: int):
        """Refuses a sweep dir that holds finished jobs beyond this sweep's ``count`` jobs.

        Raises:
            UserError: it does: the sweep is not the same sweep.
        """
        beyond = sorted(
            int(p.parent.name)
            for p in self.sweep_dir.glob(f"*/{METRICS}")
            if p.parent.name.isdigit() and int(p.parent.name) >= count
        )
        if beyond:
            raise UserError(
                f"{self.sweep_dir} holds job {beyond[0]}, beyond the {count} jobs of "
                "this sweep; a resumed sweep must be the same sweep"
            )

    def launch(self, job_overrides, initial_job_idx):
        returns, pending = [], []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            done = finished_job(self.sweep_dir / str(idx), list(overrides), idx, self.records)
            if done is None:
                pending.append(idx)
            returns.append(done)
        print(
            f"Resuming: {len(job_overrides) - len(pending)} job(s) finished before, "
            f"{len(pending)} to run",
            flush=True,
        )
        # Each run of consecutive pending jobs is launched with its first job's number, so every
        # job keeps its number (and its directory).
        for _, run in itertools.groupby(enumerate(pending), key=lambda pair: pair[1] - pair[0]):
            numbers = [idx for _, idx in run]
            batch = [job_overrides[idx - initial_job_idx] for idx in numbers]
            launched = self.launcher.launch(batch, initial_job_idx=numbers[0])
            for idx, ret in zip(numbers, launched):
                returns[idx - initial_job_idx] = ret
        return returns


def finished_job(
    job_dir: Path, overrides: list[str], idx: int, records: str = ".hydra"
) -> JobReturn | None:
    """The result of a job that finished in ``job_dir`` with ``overrides``, else None.

    Raises:
        UserError: the directory holds a finished job of other overrides (not the same sweep),
            or a metrics.json that cannot be read.
    """
    record = read_record(job_dir)
    if record is None:
        return None
    recorded_file = job_dir / records / "overrides.yaml"
    recorded = list(OmegaConf.load(recorded_file)) if recorded_file.is_file() else None
    if recorded != overrides:
        raise UserError(
            f"job {idx} in {job_dir.parent} ran other overrides "
            f"({' '.join(recorded or ['unrecorded'])}); a resumed sweep must be the same sweep: "
            "repeat its command with hydra/sweeper=resume"
        )
    ret = JobReturn(overrides=overrides, working_dir=str(job_dir), status=JobStatus.COMPLETED)
    ret.return_value = record.objective["value"]
    return ret
