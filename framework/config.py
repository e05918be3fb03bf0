"""The core's config schema and the configs it stores in Hydra's ConfigStore.

Parts' configs come from their plugins (framework.registry); this module adds the typed schema of
the top-level config and the experiments shipped in ``experiments/``.
"""

import importlib.resources
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from framework.errors import PluginError
from framework.registry import REGISTRIES

CONF_PACKAGE = "framework.conf"
EXPERIMENTS_PACKAGE = "framework.experiments"


@dataclass
class OptimizerConfig:
    name: str = "adam"
    learning_rate: float = 1e-3
    # sgd and rmsprop only.
    momentum: float = 0.0


@dataclass
class StageConfig:
    name: str = "train"
    epochs: int = 10
    # What is trainable: "all", "head", "last: N" or "from: <layer name>" (of the backbone), or
    # null, as the backbone is built: "head" over one its plugin builds frozen (pretrained
    # weights), else "all".
    trainable: Any = None
    learning_rate: float | None = None
    optimizer: str | None = None


@dataclass
class FeatureCacheConfig:
    # Train a head-only stage on the frozen backbone's features, extracted once and kept on disk.
    enabled: bool = True
    # Shared by every run and sweep job that uses the same data, backbone and weights.
    dir: str = "outputs/feature_cache"


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 32
    # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
    verbose: int = 2
    # Empty: one stage of `epochs` that trains the head over a pretrained (frozen) backbone,
    # everything otherwise.
    stages: list[StageConfig] = field(default_factory=list)
    feature_cache: FeatureCacheConfig = field(default_factory=FeatureCacheConfig)


@dataclass
class Config:
    dataset: Any = MISSING
    backbone: Any = MISSING
    head: Any = MISSING
    regularizer: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 42


def store_core_configs():
    """Stores the schema and the experiments, and refuses YAML files that shadow a part."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for name, text in _yaml_files(EXPERIMENTS_PACKAGE).items():
        cs.store(group="experiment", name=name, node=OmegaConf.create(text), package="_global_")
    for group, registry in REGISTRIES.items():
        shadowed = sorted(set(_yaml_files(CONF_PACKAGE, group)) & set(registry.names()))
        if shadowed:
            # Hydra 1.3 would silently merge the file into the stored node.
            raise PluginError(
                f"conf/{group}/{shadowed[0]}.yaml has the name of a registered {group}; "
                "rename the file"
            )


def _yaml_files(package, subdir=None) -> dict[str, str]:
    root = importlib.resources.files(package)
    if subdir:
        root = root.joinpath(subdir)
        if not root.is_dir():
            return {}
    return {
        p.name.removesuffix(".yaml"): p.read_text()
        for p in root.iterdir()
        if p.name.endswith(".yaml")
    }
