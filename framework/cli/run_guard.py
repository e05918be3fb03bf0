"""The checks Hydra runs before it writes anything (a callback of ``conf/config.yaml``).

Hydra creates the output directory and writes ``.hydra/*.yaml`` before the task function starts,
so a run refused there would already have rewritten what a finished run recorded. These
callbacks see the composed config first: the output directory as it resolves (however it was
set: the command line, ``++``, an environment variable, an experiment), and the settings.
"""

import contextlib
import copy
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from framework.config.optuna import check_study
from framework.config.preflight import check_settings
from framework.errors import Refused, UserError
from framework.parts.ranges import check_ranges
from framework.run.checkpoint import check_resumable
from framework.run.rundir import finished_run_check, hold_lock, make_dir, shown
from framework.sweeps.summary import finished_sweep_check

# Sweepers that continue what their sweep dir holds: the resuming grid, and an Optuna study.
CONTINUING_SWEEPERS = ("ResumingSweeper", "ContinuingOptunaSweeper")


class RunGuard(Callback):
    """Refuses a run before Hydra writes into its directory: settings out of range, a directory
    that holds a finished run or sweep (or another config's unfinished run), that cannot be
    written, or that another running process holds."""

    def on_run_start(self, config: DictConfig, **kwargs):
        with refusing():
            self._check_run(config)

    def on_multirun_start(self, config: DictConfig, **kwargs):
        with refusing():
            self._check_sweep(config)

    @staticmethod
    def _check_run(config: DictConfig):
        run_dir = _resolved_dir(config, "hydra.run.dir")
        task_cfg = _task_config(config)
        check_settings(task_cfg)
        finished_run_check(run_dir)  # before make_dir: a finished run is not written into
        # A distributed search's chief and workers share the run dir (framework.sweeps.tuner).
        if "KERASTUNER_TUNER_ID" in os.environ:
            make_dir(run_dir, "hydra.run.dir")
        else:
            hold_lock(run_dir)  # until this process ends; then the checks, without a race
        finished_run_check(run_dir)
        check_resumable(run_dir, task_cfg)

    @staticmethod
    def _check_sweep(config: DictConfig):
        sweep_dir = _resolved_dir(config, "hydra.sweep.dir")
        # The settings every job shares (a swept one is composed at its default here, and each
        # job checks its own value); which parts fit is each job's to check.
        task_cfg = _without_hydra(config)
        check_ranges(task_cfg)
        sweeper = str(config.hydra.sweeper.get("_target_", ""))
        if sweeper.endswith("ContinuingOptunaSweeper"):  # its study is written before any job
            check_study(config, task_cfg, sweep_dir)
        if not sweeper.endswith(CONTINUING_SWEEPERS):
            finished_sweep_check(sweep_dir)
        # For the whole sweep, before the sweeper or a launcher writes anything: a second sweep
        # given the same dir would rewrite its jobs' .hydra records under running jobs.
        hold_lock(sweep_dir, "hydra.sweep.dir")
        if not sweeper.endswith(CONTINUING_SWEEPERS):
            finished_sweep_check(sweep_dir)  # again: another sweep may have ended meanwhile


@contextlib.contextmanager
def refusing():
    """Carries an error out of a Hydra callback, which would only warn of it and go on."""
    try:
        yield
    except Exception as e:  # a UserError, a config's own error, or a bug: never let it run
        raise Refused(e) from e


def _resolved_dir(config: DictConfig, key: str) -> Path:
    # Interpolations such as ${hydra.job.override_dirname} resolve against Hydra's config.
    HydraConfig.instance().set_config(config)
    directory = Path(OmegaConf.select(config, key))
    try:
        directory.exists()  # a name over the system's limit; a missing parent: make_dir's
    except OSError as e:
        raise UserError(
            f"cannot use {key}={shown(directory)}: {e.strerror}; choose another "
            f"directory ({key}=...)"
        ) from None
    return directory


def _task_config(config: DictConfig) -> DictConfig:
    """The run config the task function will get (Hydra's own node removed), its output dir set
    as ``run_job`` sets it, so that it resolves as it will then."""
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(config.hydra.run.dir)
    HydraConfig.instance().set_config(config)
    return _without_hydra(config)


def _without_hydra(config: DictConfig) -> DictConfig:
    task_cfg = copy.deepcopy(config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg
