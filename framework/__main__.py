"""``python -m framework [overrides]``: compose the config with Hydra and run it."""

import os
import sys
from pathlib import Path

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from framework.cli import USAGE_ERROR, one_line, report_errors
from framework.errors import UserError
from framework.rundir import finished_run_check
from framework.plugins import load_plugins
from framework.preflight import CONFIG_NAME, choose_parts, ineffective_settings
from framework.sweep_summary import finished_sweep_check, unfinished_jobs


@hydra.main(version_base="1.3", config_path="pkg://framework.conf", config_name="config")
def run(cfg: DictConfig) -> float | None:
    from framework.train import train  # TensorFlow is imported here, after composition

    hydra_cfg = HydraConfig.get()
    sweep_params = hydra_cfg.sweeper.get("params")
    for note in ineffective_settings(cfg, hydra_cfg.mode, sweep_params, hydra_cfg.overrides.task):
        print(f"note: {note}")
    try:
        result = train(cfg, hydra_cfg.runtime.output_dir)
    except (UserError, OmegaConfBaseException) as e:
        if os.environ.get("FRAMEWORK_FULL_ERROR"):
            raise
        if hydra_cfg.mode == RunMode.RUN:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(USAGE_ERROR)
        # In a sweep, the other jobs go on; the summary at the end lists the failed ones.
        message = one_line(e)
        print(f"error: job {hydra_cfg.job.num} failed: {message}", file=sys.stderr)
        _failed_jobs.append(f"job {hydra_cfg.job.num}: {message}")
        return None
    return result["test"]["accuracy"]


# Jobs of this process's sweep that stopped on bad input (with an in-process launcher).
_failed_jobs: list[str] = []


def refuse_finished_run_dir(args):
    """Refuses a ``hydra.run.dir`` that holds a finished run, or a ``hydra.sweep.dir`` that
    holds a sweep, before Hydra writes into it."""
    for arg in args:
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if "${" in value:
            continue
        if key == "hydra.run.dir":
            finished_run_check(Path(value))
        elif key == "hydra.sweep.dir":
            finished_sweep_check(Path(value))


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
    with report_errors():
        refuse_finished_run_dir(sys.argv[1:])
        load_plugins()  # fills the ConfigStore before Hydra composes anything
        args = get_args_parser().parse_args(sys.argv[1:])
        extra, notes = choose_parts(args.overrides, args.config_name or CONFIG_NAME,
                                    args.config_dir)
        # Beside a run's own output; on stderr where stdout is a config or help text.
        config_only = args.help or args.cfg or args.info or args.shell_completion
        for note in notes:
            print(f"note: {note}", file=sys.stderr if config_only else sys.stdout)
        # Hydra reads them as the user's own, so the config shown is the one run; argparse
        # wants all overrides side by side.
        at = _after_last(sys.argv, args.overrides)
        sys.argv[at:at] = extra
        run()
    unfinished = [f"job {job['job']}: {job['status']}" for job in unfinished_jobs()]
    unfinished = unfinished or _failed_jobs  # the summary's view, or this process's own
    if unfinished:
        print(f"error: {len(unfinished)} sweep job(s) did not finish; {unfinished[0]} "
              "(see summary.csv in the sweep directory)", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
