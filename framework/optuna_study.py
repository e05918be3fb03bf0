"""What ``hydra/sweeper=optuna`` adds to Hydra's Optuna sweeper: a study kept in the sweep dir
(sqlite) that the same command continues, and the config that selects it."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore


def store_optuna_config():
    """Makes ``hydra/sweeper=optuna`` Hydra's Optuna sweeper with its study in the sweep dir;
    a no-op without the hydra-optuna-sweeper package."""
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    except ImportError:
        return

    @dataclass
    class ContinuingOptunaSweeperConf(OptunaSweeperConf):
        _target_: str = "hydra_plugins.framework_resume_sweeper.ContinuingOptunaSweeper"
        # Inside the sweep dir: running the same command again continues the study.
        storage: Any = "sqlite:///${hydra.sweep.dir}/optuna.db"
        study_name: str | None = "framework"

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna",
                                 node=ContinuingOptunaSweeperConf, provider="framework")


def next_job_number(sweep_dir: Path) -> int:
    """The number after the highest job directory in ``sweep_dir`` (0 for none)."""
    numbers = [int(p.name) for p in sweep_dir.iterdir() if re.fullmatch(r"\d+", p.name)]
    return max(numbers, default=-1) + 1


def fail_running_trials(storage, study_name) -> int:
    """Marks the trials of a stored study left RUNNING (a killed sweep) as FAIL; returns how
    many. A study that is not stored yet has none."""
    if not storage or not study_name:
        return 0
    import optuna

    store = optuna.storages.get_storage(storage)
    try:
        study_id = store.get_study_id_from_name(study_name)
    except KeyError:  # no such study yet
        return 0
    running = store.get_all_trials(study_id, deepcopy=False,
                                   states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        store.set_trial_state(trial._trial_id, optuna.trial.TrialState.FAIL)
    return len(running)
