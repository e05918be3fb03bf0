"""``python -m framework [overrides]``: compose the config with Hydra and run it."""

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from framework.cli import USAGE_ERROR, one_line, report_errors
from framework.errors import UserError
from framework.rundir import finished_run_check
from framework.plugins import load_plugins
from framework.sweep_summary import unfinished_jobs


@hydra.main(version_base="1.3", config_path="pkg://framework.conf", config_name="config")
def run(cfg: DictConfig) -> float | None:
    from framework.train import train  # TensorFlow is imported here, after composition

    hydra_cfg = HydraConfig.get()
    try:
        result = train(cfg, hydra_cfg.runtime.output_dir)
    except (UserError, OmegaConfBaseException) as e:
        if hydra_cfg.mode == RunMode.RUN:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(USAGE_ERROR)
        # In a sweep, the other jobs go on; the summary at the end lists the failed ones.
        print(f"error: job {hydra_cfg.job.num} failed: {one_line(e)}", file=sys.stderr)
        return None
    return result["test"]["accuracy"]


def refuse_finished_run_dir(args):
    """Refuses a ``hydra.run.dir`` that holds a finished run, before Hydra writes into it."""
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "hydra.run.dir" and "${" not in value:
            finished_run_check(Path(value))


def main():
    # The user's own HYDRA_FULL_ERROR=1 keeps Hydra's tracebacks; otherwise ask Hydra to raise,
    # so report_errors() can turn composition errors into one line and exit code 2.
    if os.environ.get("HYDRA_FULL_ERROR"):
        os.environ["FRAMEWORK_FULL_ERROR"] = "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    with report_errors():
        refuse_finished_run_dir(sys.argv[1:])
        load_plugins()  # fills the ConfigStore before Hydra composes anything
        run()
    unfinished = unfinished_jobs()
    if unfinished:
        first = unfinished[0]
        print(f"error: {len(unfinished)} sweep job(s) did not finish; job {first['job']}: "
              f"{first['status']} (see summary.csv in the sweep directory)", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
