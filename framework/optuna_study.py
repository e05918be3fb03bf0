"""What ``hydra/sweeper=optuna`` adds to Hydra's Optuna sweeper: a study kept in the sweep dir
(sqlite) that the same command continues, and the config that selects it."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from framework.errors import UserError
from framework.tasks import AUTO, objective_direction, registered_task


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
        # trainer.objective's (or, where it is null, the task's): maximize val_accuracy,
        # minimize val_loss...
        direction: Any = "${framework_direction:${trainer.objective},${task.name}}"

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna",
                                 node=ContinuingOptunaSweeperConf, provider="framework")


def optuna_direction(objective: str | None, task: str) -> str:
    """Optuna's name for the direction of a ``trainer.objective``; for null, of the task's own
    objective.

    Raises:
        UserError: null under ``task=auto``, where the data decides the task, after the study
            must know its direction.
    """
    if objective is None:
        if task == AUTO:
            raise UserError("hydra/sweeper=optuna needs the objective's direction before any data "
                            "is loaded; set trainer.objective (e.g. val_accuracy, val_mae) or task")
        objective = registered_task(task).default_objective
    return "minimize" if objective_direction(objective, task) == "min" else "maximize"


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

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        return 0
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(running)
