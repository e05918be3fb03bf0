"""``python -m framework [overrides]``: compose the config with Hydra and run it."""

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from framework.cli import report_errors
from framework.plugins import load_plugins


@hydra.main(version_base="1.3", config_path="pkg://framework.conf", config_name="config")
def run(cfg: DictConfig) -> float | None:
    from framework.train import train  # TensorFlow is imported here, after composition

    result = train(cfg, HydraConfig.get().runtime.output_dir)
    return result.get("test", {}).get("accuracy")


def main():
    # The user's own HYDRA_FULL_ERROR=1 keeps Hydra's tracebacks; otherwise ask Hydra to raise,
    # so report_errors() can turn composition errors into one line and exit code 2.
    if os.environ.get("HYDRA_FULL_ERROR"):
        os.environ["FRAMEWORK_FULL_ERROR"] = "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    with report_errors():
        load_plugins()  # fills the ConfigStore before Hydra composes anything
        run()


if __name__ == "__main__":
    sys.exit(main())
