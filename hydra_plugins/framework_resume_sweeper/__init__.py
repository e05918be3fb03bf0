"""``hydra/sweeper=resume`` (see framework.sweeps.resume) and ``hydra/sweeper=optuna`` (see
framework.config.optuna): Hydra instantiates sweepers only from the ``hydra_plugins`` namespace
package, so the classes are here."""

from pathlib import Path

from hydra._internal.core_plugins import basic_sweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper

from framework.config.optuna import fail_running_trials, next_job_number, plain_optuna_log
from framework.parts.ranges import seconds
from framework.sweeps.resume import SkipFinished


class ResumingSweeper(Sweeper):
    """Hydra's BasicSweeper, whose launcher skips the jobs the sweep dir holds finished.

    It holds a BasicSweeper rather than subclassing it, looked up when needed: Hydra's plugin
    scan executes the core plugin modules again, replacing their classes.
    """

    def __init__(self, max_batch_size=None, params=None):
        self.grid = basic_sweeper.BasicSweeper(max_batch_size=max_batch_size, params=params)

    def setup(self, *, hydra_context, task_function, config):
        self.grid.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.grid.launcher = SkipFinished(
            self.grid.launcher, Path(config.hydra.sweep.dir), config.hydra
        )

    def sweep(self, arguments):
        # The sweep's job count, as the grid sweeper will split it into jobs.
        parser = OverridesParser.create(config_loader=self.grid.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self.grid._parse_config(), *arguments])
        batches = self.grid.split_arguments(overrides, self.grid.max_batch_size)
        self.grid.launcher.check_job_count(sum(len(batch) for batch in batches))
        return self.grid.sweep(arguments)


class ContinuingOptunaSweeper(Sweeper):
    """Hydra's Optuna sweeper (``hydra/sweeper=optuna``), continuing the study its sweep dir
    holds: the new trials' jobs are numbered after the jobs already there, and trials that a
    stopped sweep left running are marked failed first. Its trials run in our loop
    (``framework.sweeps.study``): with a pruner and a time budget."""

    def __init__(self, pruner, pruner_startup_trials, pruner_warmup_epochs, timeout, **settings):
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

        self.optuna = OptunaSweeper(**settings)  # the jobs read the pruner's settings themselves
        self.timeout = None if timeout is None else seconds(timeout)
        self.pruned = pruner != "none"
        plain_optuna_log()

    def setup(self, *, hydra_context, task_function, config):
        self.optuna.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)  # where the study's sqlite file goes
        impl = self.optuna.sweeper
        impl.job_idx = next_job_number(sweep_dir)
        failed = fail_running_trials(impl.storage, impl.study_name)
        if failed:
            print(f"note: {failed} trial(s) that a stopped sweep left running are marked failed")
        if impl.job_idx:
            print(f"Resuming: study {impl.study_name!r} continues after job {impl.job_idx - 1}")

    def sweep(self, arguments):
        from framework.sweeps.study import run_study

        return run_study(self.optuna.sweeper, arguments, self.timeout, self.pruned)
