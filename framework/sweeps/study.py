"""The trials of ``hydra/sweeper=optuna``: Hydra's Optuna sweeper's loop (ask a batch of trials,
launch their jobs, tell their results), with two things it lacks: pruned trials, and a time
budget (``hydra.sweeper.timeout``).

A job whose trial its pruner stopped (``framework.config.optuna.TrialPruner``) says so in its
run record; its trial is told PRUNED, not failed.
"""

import functools
import logging
import math
import time
from pathlib import Path

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import OmegaConf

from framework.config.optuna import TRIAL_ENV
from framework.errors import UserError
from framework.run.record import read_record

log = logging.getLogger(__name__)


def run_study(impl, arguments: list[str], timeout: float | None, pruned: bool):
    """Runs an Optuna sweep: batches of ``n_jobs`` trials until ``n_trials`` have run, or
    until ``timeout`` seconds have passed (the running batch finishes); then writes
    ``optimization_results.yaml`` with the best trial so far.

    Args:
        impl: Hydra's ``OptunaSweeperImpl``, set up (its settings, launcher and config).
        arguments: the command line's sweep overrides.
        timeout: the time budget in seconds, or None.
        pruned: whether its trials are pruned: each job is told its trial's number then.
    """
    start = time.monotonic()
    impl._process_searchspace_config()
    distributions, fixed = create_params_from_overrides(
        [*impl._parse_sweeper_params_config(), *arguments]
    )
    if impl.search_space_distributions:
        distributions = {**impl.search_space_distributions, **distributions}
    sampler, n_trials = impl.sampler, impl.n_trials
    is_grid = isinstance(sampler, functools.partial) and sampler.func == optuna.samplers.GridSampler
    if is_grid:
        choices = {k: impl._to_grid_sampler_choices(d) for k, d in distributions.items()}
        sampler = sampler(choices)
        n_trials = min(n_trials, math.prod(len(c) for c in choices.values()))
    for name in fixed:
        distributions.pop(name, None)
    study = optuna.create_study(
        study_name=impl.study_name,
        storage=impl.storage,
        sampler=sampler,
        directions=impl._get_directions(),
        load_if_exists=True,
    )
    log.info(f"Study name: {study.study_name}")
    log.info(f"Storage: {impl.storage}")
    log.info(f"Sampler: {type(sampler).__name__}")
    log.info(f"Directions: {impl._get_directions()}")
    to_go = n_trials
    while to_go > 0:
        if timeout is not None and time.monotonic() - start >= timeout:
            print(
                f"Stopped:   the time budget (hydra.sweeper.timeout) is spent after "
                f"{n_trials - to_go} trial(s); no more trials start",
                flush=True,
            )
            break
        trials = [study.ask() for _ in range(min(to_go, impl.n_jobs))]
        overrides = impl._configure_trials(trials, distributions, fixed)
        if pruned:  # its job's pruner reports to its trial (framework.config.optuna.job_pruner)
            overrides = [
                (*params, f"+hydra.job.env_set.{TRIAL_ENV}={trial.number}")
                for trial, params in zip(trials, overrides, strict=True)
            ]
        returns = impl.launcher.launch(overrides, initial_job_idx=impl.job_idx)
        impl.job_idx += len(returns)
        failures = [e for trial, ret in zip(trials, returns) if (e := _tell(study, trial, ret))]
        if len(failures) / len(returns) > impl.max_failure_rate:
            log.error(
                f"Failed {failures} times out of {len(returns)} "
                f"with max_failure_rate={impl.max_failure_rate}."
            )
            for ret in returns:
                ret.return_value  # raises the job's own error, with its traceback
        to_go -= len(trials)
    _write_results(study, Path(impl.config.hydra.sweep.dir))


def _tell(study, trial, ret) -> Exception | None:
    """Tells Optuna how a trial's job ended: PRUNED where its record says its pruner stopped
    it, COMPLETE with its value, or FAIL; returns the failure, if any."""
    try:
        record = read_record(Path(ret.hydra_cfg.hydra.runtime.output_dir))
    except UserError:
        record = None
    if record is not None and record.pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return None
    try:
        value = float(ret.return_value)
    except Exception as e:  # the job's error, or a return value that is not a number
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning(f"Failed experiment: {e}")
        return e
    try:
        study.tell(trial, value)
    except RuntimeError as e:  # a grid sampler's study.stop() once its grid is done
        if "`Study.stop` is supposed to be invoked" not in str(e):
            raise
    return None


def _write_results(study, sweep_dir: Path):
    """Writes ``optimization_results.yaml`` (as Hydra's Optuna sweeper does) with the best trial
    so far; none where no trial completed."""
    try:
        best = study.best_trial
    except ValueError:  # no trial completed
        return
    log.info(f"Best parameters: {best.params}")
    log.info(f"Best value: {best.value}")
    OmegaConf.save(
        OmegaConf.create({"name": "optuna", "best_params": best.params, "best_value": best.value}),
        sweep_dir / "optimization_results.yaml",
    )
