"""What ``hydra/sweeper=optuna`` adds to Hydra's Optuna sweeper: a study kept in the sweep dir
(sqlite) that the same command continues, the config that selects it, and the checks of its
settings before anything is written."""

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from framework.config.source import group_options
from framework.errors import UserError
from framework.parts.ranges import DURATION, check_ranges, check_value, setting
from framework.parts.tasks import AUTO, dataset_task, find_objective, registered_task

DIRECTIONS = ("minimize", "maximize")
PRUNERS = ("median", "hyperband", "none")
# Set by the sweeper for each job (Hydra's hydra.job.env_set): the number of the job's trial.
TRIAL_ENV = "FRAMEWORK_OPTUNA_TRIAL"
_MISSING = object()


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
        direction: Any = setting(
            "${framework_direction:${trainer.objective},${task.name},${dataset.name}}",
            choices=DIRECTIONS,
        )
        n_trials: int = setting(20, at_least=1)
        n_jobs: int = setting(2, at_least=1)
        max_failure_rate: float = setting(0.0, at_least=0, at_most=1)
        # Stops a trial whose objective, epoch by epoch, is going nowhere: Optuna's
        # MedianPruner (worse than the median of the trials before at the same epoch) or
        # HyperbandPruner; none: every trial trains to its end.
        pruner: str = setting("none", choices=PRUNERS)
        # median: trials that finish before any is pruned; epochs a trial trains before it
        # may be (hyperband: its smallest budget).
        pruner_startup_trials: int = setting(5, at_least=0)
        pruner_warmup_epochs: int = setting(2, at_least=0)
        # No trial starts once the sweep has run this long (90s, 10m, 1h); the running ones
        # finish. null: none.
        timeout: str | None = setting(None, form=DURATION)

    ConfigStore.instance().store(
        group="hydra/sweeper", name="optuna", node=ContinuingOptunaSweeperConf, provider="framework"
    )


def make_pruner(name: str, startup_trials: int, warmup_epochs: int):
    """Optuna's pruner of ``hydra.sweeper.pruner``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_epochs))
    return optuna.pruners.NopPruner()


class TrialPruner:
    """The job's side of a pruned study: reports each epoch's objective to the job's trial
    through the study's storage (so it works in any process the launcher runs the job in),
    and asks the study's pruner whether the trial goes on.

    Args:
        storage: the study's storage (a URL).
        study_name: the study.
        number: the job's trial.
        pruner: ``hydra.sweeper.pruner``.
        startup_trials, warmup_epochs: its settings.
    """

    def __init__(self, storage, study_name, number: int, pruner, startup_trials, warmup_epochs):
        import optuna

        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            pruner=make_pruner(pruner, startup_trials, warmup_epochs),
        )
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        self.trial = optuna.trial.Trial(study, trial_id)
        self.name = f"optuna {pruner}"
        self.epoch = None  # where it stopped the trial

    def report(self, epoch: int, value: float) -> bool:
        """Reports epoch ``epoch``'s (from 1) objective; returns whether to stop the trial."""
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.epoch = epoch
        return self.epoch is not None


def job_pruner(hydra_cfg) -> TrialPruner | None:
    """The pruner of an Optuna sweep's job (its trial set by the sweeper), or None."""
    number = os.environ.get(TRIAL_ENV)
    sweeper = hydra_cfg.sweeper
    if number is None or sweeper.get("pruner", "none") == "none":
        return None
    return TrialPruner(
        _absolute(sweeper.storage, hydra_cfg.runtime.cwd),
        sweeper.study_name,
        int(number),
        sweeper.pruner,
        sweeper.pruner_startup_trials,
        sweeper.pruner_warmup_epochs,
    )


def _absolute(storage: str, cwd: str) -> str:
    """A sqlite storage's URL with its file relative to ``cwd`` (where the sweeper opened it)
    made absolute: a launcher may run the job in another directory."""
    from sqlalchemy.engine import make_url

    url = make_url(storage)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return storage
    return str(url.set(database=str(Path(cwd, url.database))))


def optuna_direction(objective: str | None, task: str, dataset: str | None = None) -> str:
    """Optuna's name for the direction of a ``trainer.objective``; for null, of the task's own
    objective. Under ``task=auto``, the task the dataset declares, if it does.

    Raises:
        UserError: null under ``task=auto`` with a dataset whose data decides the task (a CSV
            file), after the study must know its direction.
    """
    if task == AUTO:
        task = dataset_task(dataset) or AUTO
    if objective is None:
        if task == AUTO:
            raise UserError(
                f"hydra/sweeper=optuna needs the objective's direction before any data "
                f"is loaded, and the data of dataset {dataset!r} decides its task; set "
                "trainer.objective (e.g. val_accuracy, val_mae) or task"
            )
        objective = registered_task(task).default_objective
    return find_objective(objective, task).study_direction


def check_study(config, task_cfg, sweep_dir: Path):
    """Checks an Optuna sweep before anything is written: the sweeper's settings, each value its
    search space (``hydra.sweeper.params`` and the command line's sweeps) may give a setting,
    and the study its storage holds (read only).

    Args:
        config: the composed config, Hydra's node included.
        task_cfg: the same without Hydra's node, as the jobs get it.
        sweep_dir: the sweep dir, as it resolves (not created yet).

    Raises:
        UserError: the first bad setting, value or storage, in one line.
    """
    sweeper = config.hydra.sweeper
    check_ranges(sweeper, "hydra.sweeper.")  # n_trials, direction (resolved here)...
    if not isinstance(sweeper.direction, str):  # a list: a study of several objectives
        shown = ",".join(str(d) for d in sweeper.direction)
        raise UserError(
            f"hydra.sweeper.direction=[{shown}]: a job returns one "
            f"objective, so one direction; accepted: {', '.join(DIRECTIONS)}"
        )
    for override in _search_overrides(config):
        _check_search(override, task_cfg)
    _check_storage(sweeper.storage, sweeper.study_name, sweeper.direction, sweep_dir)


def _search_overrides(config) -> list:
    """The overrides the sweeper makes its search space of: ``hydra.sweeper.params``, then the
    command line's sweeps (its other overrides are composed already)."""
    parser = OverridesParser.create()
    params = config.hydra.sweeper.params or {}
    command_line = parser.parse_overrides(list(config.hydra.overrides.task))
    return [
        *parser.parse_overrides([f"{k}={v}" for k, v in params.items()]),
        *(o for o in command_line if o.is_sweep_override()),
    ]


def _check_search(override, cfg):
    """Refuses a sweep Optuna cannot sample (``interval(0.1, 0.001)``), a value it gives a
    setting that the setting does not take, or an option a config group does not have."""
    from hydra_plugins.hydra_optuna_sweeper._impl import (
        create_optuna_distribution_from_override,
    )
    from optuna.distributions import CategoricalDistribution

    try:
        distribution = create_optuna_distribution_from_override(override)
    except (ValueError, AssertionError) as e:  # Optuna's word on a range
        raise UserError(
            f"cannot search {override.input_line}: {str(e).strip().splitlines()[0]}"
        ) from None
    if isinstance(distribution, str):
        values = [distribution]
    elif isinstance(distribution, CategoricalDistribution):
        values = list(distribution.choices)
    else:  # a range: its bounds
        values = [distribution.low, distribution.high]
    key = override.key_or_group
    parser = OverridesParser.create()
    # As each trial's job reads them back: ``key=value``.
    values = [o.value() for o in parser.parse_overrides([f"{key}={v}" for v in values])]
    if override.is_add() or override.is_delete():
        return  # a key the base config does not have
    options = group_options(key)
    if options:  # a config group: Hydra composes each trial's option
        unknown = [v for v in values if isinstance(v, str) and v not in options]
        if unknown:
            raise UserError(
                f"unknown {key} {unknown[0]!r} in {override.input_line}; accepted: "
                f"{', '.join(sorted(options))}"
            )
        return
    current = OmegaConf.select(cfg, key, default=_MISSING)
    if current is _MISSING and not override.is_force_add():
        raise UserError(f"cannot search {override.input_line}: no setting {key!r} in the config")
    if current is _MISSING or OmegaConf.is_dict(current):
        return
    for value in values:
        check_value(cfg, key, value)


def _check_storage(storage, study_name, direction: str, sweep_dir: Path):
    """Refuses a sqlite storage whose directory is missing, a file there that is not an Optuna
    database, and a stored study of the same name that goes the other way. Other databases are
    left to Optuna."""
    from sqlalchemy.engine import make_url

    if not isinstance(storage, str) or not storage.startswith("sqlite:"):
        return
    database = make_url(storage).database
    if not database or database == ":memory:":
        return
    path = Path(database)
    retry = "choose another (hydra.sweeper.storage=...)"
    if not path.exists():
        parent = path.parent
        if parent.resolve() != sweep_dir.resolve() and not parent.is_dir():
            raise UserError(
                f"hydra.sweeper.storage={storage}: no directory {parent}; create it or {retry}"
            )
        return
    if not path.is_file():
        raise UserError(f"hydra.sweeper.storage={storage}: {path} is not a file; {retry}")
    if not path.stat().st_size:
        return  # an empty file: Optuna makes it a database
    stored = _stored_directions(path, study_name)
    if stored is not None and stored != [direction]:
        raise UserError(
            f"study {study_name!r} in {path} was made to {' and '.join(stored)} its objective, "
            f"and this command would {direction} it; keep the objective it was "
            "made with (trainer.objective, hydra.sweeper.direction), or start another study "
            "(hydra.sweeper.study_name=... or another hydra.sweep.dir)"
        )


def _stored_directions(path: Path, study_name) -> list[str] | None:
    """The directions of the study ``study_name`` in a sqlite file, opened read only; None where
    it holds no such study.

    Raises:
        UserError: the file is not an Optuna database.
    """
    import optuna

    if study_name is None:
        return None
    read_only = f"sqlite:///file:{urllib.parse.quote(str(path.resolve()))}?mode=ro&uri=true"
    try:
        study = optuna.load_study(study_name=study_name, storage=read_only)
    except KeyError:  # no such study yet
        return None
    except Exception as e:  # not a database, or not Optuna's (a write it would need refused)
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{path} is not an Optuna study database ({detail}); move it away or "
            "choose another storage (hydra.sweeper.storage=...)"
        ) from None
    return [d.name.lower() for d in study.directions]


def plain_optuna_log():
    """Optuna's own log lines ("A new study created...") without colour codes where no
    terminal reads them (a log file, a Slurm job's output): Optuna 2 colours them always."""
    import logging
    import sys

    import optuna

    if sys.stderr.isatty() or getattr(plain_optuna_log, "done", False):
        return
    optuna.logging.disable_default_handler()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s] %(message)s"))
    logging.getLogger("optuna").addHandler(handler)
    plain_optuna_log.done = True


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
