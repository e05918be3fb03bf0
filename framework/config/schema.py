"""The core's config schema and the configs it stores in Hydra's ConfigStore.

Parts' configs come from their plugins (framework.parts.registry); this module adds the typed
schema of the top-level config. Hydra finds the parts and the experiments shipped in
``experiments/`` through the config source of framework.config.source, which keeps them out of
the ConfigStore.
``setup_configs()`` is what a process calls before Hydra composes anything.
"""

import importlib.resources
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import MISSING, OmegaConf

from framework.config import source as config_source
from framework.config.optimizers import OPTIMIZERS
from framework.config.optuna import optuna_direction, store_optuna_config
from framework.errors import PluginError
from framework.parts.loading import load_plugins
from framework.parts.ranges import DURATION, setting
from framework.parts.registry import REGISTRIES
from framework.runtime.backend import BACKENDS
from framework.runtime.devices import gpu_workers
from framework.runtime.execution import DISTRIBUTIONS, PRECISIONS

CONF_PACKAGE = "framework.conf"


@dataclass
class OptimizerConfig:
    # One of framework.config.optimizers.OPTIMIZERS; optimizer=sgd and optimizer.name=sgd are
    # the same.
    name: str = setting("adam", choices=OPTIMIZERS)
    # null: the optimizer's own default (its learning_rate in OPTIMIZERS).
    learning_rate: float | None = setting(None, above=0)
    # Optimizers that take a momentum only (sgd, rmsprop); null: the optimizer's own default.
    momentum: float | None = setting(None, at_least=0, at_most=1)


@dataclass
class StageConfig:
    name: str = "train"
    # null: trainer.epochs.
    epochs: int | None = setting(None, at_least=1)
    # What is trainable: "all", "head", "last: N" or "from: <layer name>" (of the backbone), or
    # null, as the backbone is built: "head" over one its plugin builds frozen (pretrained
    # weights), else "all".
    trainable: Any = None
    learning_rate: float | None = setting(None, above=0)
    optimizer: str | None = setting(None, choices=OPTIMIZERS)


@dataclass
class FeatureCacheConfig:
    # Train a head-only stage on the frozen backbone's features, extracted once and kept on disk.
    enabled: bool = True
    # Shared by every run and sweep job that uses the same data, backbone and weights.
    dir: str = "outputs/feature_cache"


@dataclass
class TrainerConfig:
    epochs: int = setting(10, at_least=1)
    batch_size: int = setting(32, at_least=1)
    # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
    verbose: int = setting(2, choices=(0, 1, 2))
    # GPUs each worker process of a parallel sweep (hydra/launcher=joblib or gpus) claims for all
    # its jobs; the GPUs each job asks for with hydra/launcher=ray_cluster or slurm.
    gpus_per_job: int = setting(1, at_least=0)
    # What a sweep ranks and an optimizing sweeper tunes: a score the task logs, on validation
    # (val_accuracy, val_loss; regression's val_mae...) or on train; never the test split.
    # null: the task's own (classification val_accuracy, regression val_mae, multilabel
    # val_macro_f1). Losses and errors are minimized, the rest maximized.
    objective: str | None = None
    # Weigh each example's training loss by its class (a task of one class per example, e.g.
    # classification): balanced (n_samples / (n_classes * the class's count), counted on the
    # training split), or {class name: weight} (classes left out weigh 1); null: unweighted.
    class_weight: Any = setting(None, choices=("balanced",), values={"above": 0})
    # Keep a checkpoint in the run dir as training goes (each stage, and the stage being
    # trained), so that a run stopped part-way continues there when it runs again in the same
    # dir: a killed run rerun with hydra.run.dir=<its dir>, a Slurm job requeued, a sweep
    # resumed with hydra/sweeper=resume. Deleted when the run finishes.
    checkpoint: bool = True
    # The least time, in seconds, between two backups of the stage being trained, each at an
    # epoch's end (0: after every epoch); a stopped run replays the epochs since the last one.
    checkpoint_interval: float = setting(30.0, at_least=0)
    # Empty: one stage of `epochs` that trains the head over a pretrained (frozen) backbone,
    # everything otherwise.
    stages: list[StageConfig] = field(default_factory=list)
    feature_cache: FeatureCacheConfig = field(default_factory=FeatureCacheConfig)
    # Keras backend: tensorflow or jax; null: the KERAS_BACKEND environment variable, else
    # tensorflow. Applied before Keras is imported: one backend per process.
    backend: str | None = setting(None, choices=BACKENDS)
    # Keras dtype policy: float32, mixed_float16 or mixed_bfloat16 (computations in 16 bits,
    # variables and the output layer in float32).
    precision: str = setting("float32", choices=PRECISIONS)
    # XLA compilation of the train, evaluation and predict steps: auto (Keras's choice: on where
    # the model supports it), true or false.
    jit_compile: Any = setting("auto", choices=("auto", True, False))
    # Batches each compiled call runs before returning to Python (fewer round trips per epoch).
    steps_per_execution: int = setting(1, at_least=1)
    # data_parallel: every batch split over this machine's devices (GPUs, or CPU devices), the
    # model replicated on each; null: one device.
    distribution: str | None = setting(None, choices=DISTRIBUTIONS)


TUNER_ALGORITHMS = ("random", "bayesian", "hyperband")
TUNER_PRUNERS = ("median", "none")


@dataclass
class TunerConfig:
    # random, bayesian or hyperband: keras-tuner's RandomSearch, BayesianOptimization or
    # Hyperband oracle (tuner=random etc. picks one with its defaults).
    algorithm: str = setting("random", choices=TUNER_ALGORITHMS)
    # Trials to run in all, resumed searches included (random, bayesian).
    max_trials: int = setting(10, at_least=1)
    # null: trainer.objective.
    objective: str | None = None
    # Epochs each trial trains; null: trainer.epochs. Hyperband: the most a trial trains.
    epochs: int | None = setting(None, at_least=1)
    # Hyperband: the factor between its brackets' budgets, and how many times it runs them.
    factor: int = setting(3, at_least=2)
    hyperband_iterations: int = setting(1, at_least=1)
    # random, bayesian: median stops a trial whose objective so far is worse than the median
    # of the finished trials' at the same epoch (Hyperband prunes by its brackets); none: every
    # trial trains to its end. With it: trials that finish before any is pruned, and the fewest
    # epochs a trial trains before it may be.
    pruner: str = setting("none", choices=TUNER_PRUNERS)
    pruner_startup_trials: int = setting(5, at_least=0)
    pruner_warmup_epochs: int = setting(2, at_least=0)
    # No trial starts once the search has run this long (90s, 10m, 1h); the running one
    # finishes, and the best so far is retrained. null: none.
    time_budget: str | None = setting(None, form=DURATION)
    # The settings to search, by their config key, e.g.
    #   backbone.units: {choice: [[32], [64, 32]]}
    #   optimizer.learning_rate: {log_float: [1e-4, 1e-2]}
    #   regularizer.dropout.rate: {float: [0.0, 0.5, 0.1]}
    #   trainer.batch_size: {int: [16, 64, 16]}
    space: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepConfig:
    # At the end of a sweep (-m), keep model.keras of the best k jobs only (by trainer.objective)
    # and delete the others'; null: keep every job's.
    keep_top_k: int | None = setting(None, at_least=1)


@dataclass
class Config:
    dataset: Any = MISSING
    backbone: Any = MISSING
    head: Any = MISSING
    # What the model predicts: auto (what the dataset's targets call for), classification,
    # regression or multilabel (python -m framework.plugins lists the registered ones).
    task: Any = MISSING
    # How the run trains and scores its model: holdout (once, on the dataset's split), kfold
    # (protocol.folds over train+validation) or seeds (protocol.repeats seeds); a sweep ranks
    # by the mean of the models' validation objectives.
    protocol: Any = MISSING
    # Where each run is logged beside its run dir: none, mlflow (an MLflow store: SQLite under
    # outputs/ or a server), tensorboard (one log dir for all runs) or csv (one table of runs).
    tracker: Any = MISSING
    regularizer: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # A hyperparameter search in one run (tuner=random, bayesian or hyperband); null: none.
    tuner: Any = None
    # NumPy's seeds are 32-bit.
    seed: int = setting(42, at_least=0, at_most=2**32 - 1)


# Whether this process has stored the core's configs (setup_configs).
_stored = False


def setup_configs():
    """Loads the plugins and, once per process, stores the core's configs: what must be done
    before Hydra composes anything (later calls do nothing).

    Raises:
        PluginError: a plugin failed to load, or a YAML file of ``conf/`` shadows a part.
    """
    global _stored
    load_plugins()
    if not _stored:
        _store_core_configs()
        _stored = True


def _store_core_configs():
    """Stores the schema, puts the parts and experiments on Hydra's config search path, and
    refuses YAML files that shadow a part."""
    config_source.register()
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for name in OPTIMIZERS:  # optimizer=sgd, as optimizer.name=sgd
        cs.store(group="optimizer", name=name, node={"name": name}, provider="framework")
    for algorithm in TUNER_ALGORITHMS:
        cs.store(group="tuner", name=algorithm, node=TunerConfig(algorithm=algorithm))
    # hydra/sweeper=resume: the grid sweeper, skipping the jobs its sweep dir holds finished.
    # Registered by hand too: an editable install hides it from Hydra's namespace scan.
    from hydra_plugins.framework_resume_sweeper import ContinuingOptunaSweeper, ResumingSweeper

    Plugins.instance().register(ResumingSweeper)
    Plugins.instance().register(ContinuingOptunaSweeper)
    store_optuna_config()  # after the scan above, which stores the plugin's own
    cs.store(
        group="hydra/sweeper",
        name="resume",
        provider="framework",
        node={
            "_target_": "hydra_plugins.framework_resume_sweeper.ResumingSweeper",
            "max_batch_size": None,
            "params": None,
        },
    )
    OmegaConf.register_new_resolver("framework_config_groups", config_groups, replace=True)
    OmegaConf.register_new_resolver("framework_gpu_workers", gpu_workers, replace=True)
    OmegaConf.register_new_resolver("framework_direction", optuna_direction, replace=True)
    for group, registry in REGISTRIES.items():
        shadowed = sorted(set(_yaml_files(CONF_PACKAGE, group)) & set(registry.names()))
        if shadowed:
            # Hydra would silently load the file instead of the part.
            raise PluginError(
                f"conf/{group}/{shadowed[0]}.yaml has the name of a registered {group}; "
                "rename the file"
            )


def config_groups() -> str:
    """The groups a user composes from, each with its options, one line each (for --help)."""
    groups = {group: registry.names() for group, registry in REGISTRIES.items()}
    groups["experiment"] = sorted(config_source.experiment_names())
    groups["task"] = sorted([*groups["task"], *_yaml_files(CONF_PACKAGE, "task")])
    groups["optimizer"] = sorted(OPTIMIZERS)
    groups["trainer"] = sorted(_yaml_files(CONF_PACKAGE, "trainer"))
    return "\n".join(f"{group}: {', '.join(names)}" for group, names in sorted(groups.items()))


def experiment_part_settings(name: str | None) -> dict[str, tuple[str, list[str]]]:
    """What experiment ``name`` sets for the parts it picks: ``{group: (part name, keys)}``."""
    return config_source.part_settings_keys(name)


def is_stored_experiment(name: str) -> bool:
    """Whether ``name`` is one of the experiments shipped in ``experiments/``."""
    return name in config_source.experiment_names()


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
