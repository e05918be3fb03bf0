"""``python -m framework [overrides]``: compose the config with Hydra and run it."""

import contextlib
import gc
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from framework.cli.help import get_args_parser, show_help
from framework.cli.messages import FAULT, USAGE_ERROR, one_line, one_line_usage, report_errors
from framework.cli.process_exit import run_and_exit
from framework.config.preflight import (
    CONFIG_NAME,
    check_settings,
    choose_parts,
    ineffective_settings,
)
from framework.config.schema import setup_configs
from framework.config.source import store_shadowed
from framework.errors import (
    DirectoryTaken,
    Stopped,
    UserError,
    raise_if_stopped,
    signals_deferred,
    stop_behind,
)
from framework.run.rundir import FAILED, failure, mark_failed
from framework.runtime.backend import import_backend, use_backend
from framework.runtime.devices import claim_worker_gpus
from framework.sweeps.summary import record_stopped_sweep, shown_status, unfinished_jobs

CONFIG_PATH = "pkg://framework.conf"


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
def run(cfg: DictConfig) -> float:
    """One job: trains the config; returns its objective (validation), NaN if it failed."""
    # A launcher may run this in a process of its own (joblib, Ray, submitit) that never ran
    # main(): the plugins are loaded and Hydra set up where the job runs (a no-op where they are).
    setup_configs()
    hydra_cfg = HydraConfig.get()
    sweep_params = hydra_cfg.sweeper.get("params")
    for note in ineffective_settings(cfg, hydra_cfg.mode, sweep_params, hydra_cfg.overrides.task):
        print(f"note: {note}")
    try:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            # A sweep job's own settings, before TensorFlow is imported (a single run's were
            # checked by the run guard, before Hydra wrote its run dir).
            check_settings(cfg)
            if _shares_local_gpus(hydra_cfg.launcher):
                _claim_gpus(cfg, hydra_cfg)
        # The backend (TensorFlow or JAX) is imported here, after the GPU claim.
        use_backend(cfg.trainer.backend)
        import_backend()
        _freeze_imports()
        checkpoint = cfg.trainer.checkpoint
        tracking = _tracking(cfg, hydra_cfg)
        if OmegaConf.select(cfg, "tuner.algorithm"):  # ~tuner leaves the rest of its settings
            from framework.sweeps.tuner import tune

            result = tune(cfg, hydra_cfg.runtime.output_dir, checkpoint, tracking)
            if not result:
                return float("nan")  # a worker of a distributed search
        else:
            from framework.config.optuna import job_pruner
            from framework.run.compiled_heads import sweep_jobs_models
            from framework.run.train import train

            hparams = _varied_settings(hydra_cfg) if hydra_cfg.mode == RunMode.MULTIRUN else None
            pruner = job_pruner(hydra_cfg) if hydra_cfg.mode == RunMode.MULTIRUN else None
            result = train(
                cfg,
                hydra_cfg.runtime.output_dir,
                checkpoint,
                hparams,
                pruner,
                compiled_heads=sweep_jobs_models() if hydra_cfg.mode == RunMode.MULTIRUN else None,
                tracking=tracking,
            )
    except (UserError, OmegaConfBaseException, OSError) as e:
        stopped = stop_behind(e)
        if stopped is not None:  # a signal that OmegaConf turned into its own error
            raise stopped from None
        if os.environ.get("FRAMEWORK_FULL_ERROR") or isinstance(e, BrokenPipeError):
            raise
        if hydra_cfg.mode == RunMode.RUN:
            print(f"error: {one_line(e)}", file=sys.stderr)
            # An OSError as the run went (a disk that filled, a dir made unwritable): a fault.
            sys.exit(FAULT if isinstance(e, OSError) else USAGE_ERROR)
        # In a sweep, the other jobs go on; the summary, read from the sweep dir, lists the
        # failed ones. NaN: what optimizing sweepers (Optuna) record as a failed trial.
        job_dir = Path(hydra_cfg.runtime.output_dir)
        # Failed before train() could mark it; a directory that holds a finished run or that
        # another process runs in is not this job's to mark.
        if not (job_dir / FAILED).exists() and not isinstance(e, DirectoryTaken):
            mark_failed(job_dir, failure(e))
        print(f"error: job {hydra_cfg.job.num} failed: {one_line(e)}", file=sys.stderr, flush=True)
        return float("nan")
    raise_if_stopped()  # a signal lost inside the job (Python ignored its Stopped)
    sys.stdout.flush()  # a worker's output reaches the console as its job ends
    return result["objective"]["value"]


def _freeze_imports():
    """Leaves what the process holds before its first job (the framework, Keras, TensorFlow:
    some 400,000 objects) out of the garbage collector's scans, once per process.

    Each run's ``clear_session`` collects garbage, and so does Python as a model is built and
    traced: on 2 CPU cores, some 0.5 s of every sweep job went to walking the imported modules
    again. Objects frozen are still freed when their last reference goes.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def _tracking(cfg, hydra_cfg):
    """The job's tracking: a sweep's job under its sweep (tagged with the sweep and its number)."""
    from framework.run.tracking import Tracking

    output_dir = hydra_cfg.runtime.output_dir
    if hydra_cfg.mode != RunMode.MULTIRUN:
        search = OmegaConf.select(cfg, "tuner.algorithm")  # as run() decides
        return Tracking(cfg, output_dir, kind="search" if search else "run")
    sweep_dir = Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir
    tags = {"sweep": str(hydra_cfg.sweep.dir), "job": str(hydra_cfg.job.num)}
    return Tracking(cfg, output_dir, parent_dir=sweep_dir, kind="job", tags=tags)


def _varied_settings(hydra_cfg) -> dict:
    """The settings this sweep job's sweep varies, with the job's values."""
    from framework.run.hparams import sweep_overrides, varied_settings

    sweep_dir = Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir
    return varied_settings(
        sweep_overrides(sweep_dir), hydra_cfg.sweeper.get("params"), list(hydra_cfg.overrides.task)
    )


def _shares_local_gpus(launcher) -> bool:
    """Whether the jobs run in local worker processes that share this machine's GPUs (joblib).

    Jobs run one after another in one process need no claim; Slurm and Ray give each job its
    own GPUs; submitit_local shows its jobs only the gpus_per_node it was given.
    """
    return "JoblibLauncher" in str(launcher.get("_target_", ""))


def _claim_gpus(cfg, hydra_cfg):
    """Gives this worker process its own GPU(s), once, before TensorFlow is imported."""
    sweep_dir = Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir
    line = claim_worker_gpus(sweep_dir, cfg.trainer.gpus_per_job)
    if line:
        # One write: workers share the console, and print's separate newline could interleave.
        print(line + "\n", end="", flush=True)


def _after_last(argv: list[str], overrides: list[str]) -> int:
    """The position just after the command line's last override (its end if it has none)."""
    if not overrides:
        return len(argv)
    return len(argv) - argv[::-1].index(overrides[-1])


def main():
    # The user's own HYDRA_FULL_ERROR=1 keeps Hydra's tracebacks; otherwise ask Hydra to raise,
    # so report_errors() can turn composition errors into one line and exit code 2.
    if os.environ.get("HYDRA_FULL_ERROR"):
        os.environ["FRAMEWORK_FULL_ERROR"] = "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        with report_errors():
            setup_configs()  # the parts and core configs, before Hydra composes anything
            args = one_line_usage(get_args_parser()).parse_args(sys.argv[1:])
            store_shadowed(args.config_dir)  # a user's file named as a part: Hydra's old way
            extra, notes = choose_parts(
                args.overrides, args.config_name or CONFIG_NAME, args.config_dir
            )
            # Beside a run's own output; on stderr where stdout is a config or help text.
            config_only = args.help or args.cfg or args.info or args.shell_completion
            for note in notes:
                print(f"note: {note}", file=sys.stderr if config_only else sys.stdout)
            # Hydra reads them as the user's own, so the config shown is the one run; argparse
            # wants all overrides side by side.
            at = _after_last(sys.argv, args.overrides)
            sys.argv[at:at] = extra
            if args.help and args.experimental_rerun is None:  # as hydra.main decides
                # What Hydra's --help prints, without its group listings our template leaves out.
                show_help(
                    get_args_parser().parse_args(sys.argv[1:]),
                    run.__wrapped__,
                    CONFIG_PATH,
                    CONFIG_NAME,
                )
                return 0
            run()
            raise_if_stopped()  # a signal lost after the last job
    except Stopped as stopped:
        # FAILED in a run's dir names the signal (run_and_exit prints it). A parallel sweep's
        # pool stops its workers (Ctrl-C reaches them too: one process group); the jobs they
        # left are marked, and summary.csv lists every job.
        with contextlib.suppress(Stopped), signals_deferred():  # a second Ctrl-C: still this
            record_stopped_sweep(stopped)
        raise
    unfinished = [f"job {job['job']}: {shown_status(job)}" for job in unfinished_jobs()]
    if unfinished:
        print(
            f"error: {len(unfinished)} sweep job(s) did not finish; {unfinished[0]} "
            "(see summary.csv in the sweep directory)",
            file=sys.stderr,
        )
        return USAGE_ERROR


if __name__ == "__main__":
    run_and_exit(main)
