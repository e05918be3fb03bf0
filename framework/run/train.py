"""One run, in named phases: ``load_data`` -> ``build_model`` ->
``plan_stages`` -> ``fit_stage`` for each stage (fit, then evaluate) -> ``write_run_dir``.

``train(cfg, run_dir)`` runs them all and is pure: tests call it without Hydra. Anything else
that trains (a tuner trial, a resumed run) calls the same phases.
"""

import copy
import dataclasses
import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework.runtime.backend import import_backend, use_backend

import_backend()  # KERAS_BACKEND, as trainer.backend set it, and without its start-up logs

import keras  # noqa: E402
import numpy as np
from omegaconf import DictConfig, OmegaConf

from framework.config.optimizers import make_optimizer, optimizer_settings
from framework.config.preflight import check_takes
from framework.config.schema import StageConfig
from framework.errors import UserError, raise_if_stopped
from framework.parts import registry
from framework.parts.contexts import DataContext, RunContext, recut
from framework.parts.kinds import data_kind
from framework.parts.objective import (
    best_first,
    check_objective,
    objective_over,
    objective_value,
)
from framework.parts.protocols import Protocol, Round
from framework.parts.ranges import plain
from framework.parts.tasks import Task, recorded_name, run_task
from framework.run.card import write_run_card
from framework.run.checkpoint import JobCheckpoint
from framework.run.class_weight import class_weights
from framework.run.compiled_heads import CompiledHeads
from framework.run.evaluation import is_one_hot
from framework.run.feature_cache import cache_key, load_or_extract
from framework.run.hparams import write_hparams
from framework.run.model import (
    after_default_seeds,
    build_head,
    build_model,
    default_seeds_drawn,
    set_trainable,
)
from framework.run.pruning import Pruning
from framework.run.record import RunRecord, write_record
from framework.run.report import (
    console_report,
    plot_curves,
    write_history,
    write_summary,
)
from framework.run.rundir import running_in, shown, write_atomic
from framework.run.tracking import Tracking, final_scores, kept_files, record_tags, tracked
from framework.runtime.environment import environment
from framework.runtime.epoch_order import start_epoch
from framework.runtime.execution import (
    compile_options,
    distributed,
    replicas,
    set_precision,
    single_device_note,
    split_evenly,
)


def train(
    cfg: DictConfig,
    run_dir,
    checkpoint: bool = False,
    hparams: dict | None = None,
    pruner=None,
    *,
    loaded: tuple | None = None,
    compiled_heads: CompiledHeads | None = None,
    tracking: Tracking | None = None,
) -> dict:
    """Trains, evaluates and saves the model a config describes.

    Args:
        cfg: a composed config (see conf/config.yaml), its settings checked
            (``framework.config.preflight.check_settings``, as the command that runs it does).
        run_dir: the directory to write into; it must not hold a finished run.
        checkpoint: keep a checkpoint in the run dir as training goes, and continue from the
            one an earlier, stopped run of the same config left there (a requeued job).
        hparams: the settings a sweep varies: written with the scores as the job's row of
            TensorBoard's HParams dashboard, before metrics.json.
        pruner: told each epoch's objective, it may stop the run (``framework.run.pruning``);
            a pruned run is written as it stopped, metrics.json saying so.
        loaded: the config's task and data, loaded already (``load_task_data``), or None.
        compiled_heads: compiled models that a holdout run may reuse, and keeps its own in
            (a search's, for its best config's retraining; a sweep's jobs in one process): for
            its head-only stages on cached features, or its one stage's whole model; or None.
        tracking: the run's tracking (``tracker=``), as its command set it up (a sweep job's,
            under its sweep); None: the config's tracker, for a run of its own.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        UserError: bad input; the run directory is marked FAILED and no metrics.json is written.
    """
    run_dir = Path(run_dir)
    with running_in(run_dir), tracked(tracking or Tracking(cfg, run_dir)) as tracking:
        metrics, task = _train(
            cfg, run_dir, checkpoint, hparams, pruner, loaded, compiled_heads, tracking
        )
        tracking.log_final(final_scores(metrics), kept_files(run_dir), record_tags(metrics))
    print(console_report(run_dir, metrics, task))
    return metrics


@dataclass
class StagePlan:
    """One training stage, resolved before any training.

    Args:
        number: its place, from 1.
        name: its name in history.csv and metrics.json.
        epochs: how many epochs it trains.
        trainable: ``"all"``, ``"head"``, ``{"last": N}`` or ``{"from": layer}``.
        optimizer: the optimizer's name and settings (``optimizer_settings``).
        feature_key: the feature-cache key when the stage trains the head on cached features
            of the frozen backbone, else None.
    """

    number: int
    name: str
    epochs: int
    trainable: Any
    optimizer: dict
    feature_key: str | None = None

    @property
    def on_cached_features(self) -> bool:
        return self.feature_key is not None


@dataclass
class Run:
    """What the phases of one run hand on to each other.

    Args:
        cfg: the run config.
        run_dir: where the run writes.
        data: the loaded dataset, prepared by its task.
        task: the run's task.
        built: the assembled model and its parts.
        batch_size: the batch size of fit and evaluation.
        features: the frozen backbone's features by split, once a stage needs them.
        history: one row per epoch, over all stages.
        stage_starts: ``(first epoch, stage name)`` of each stage, for the curves.
        stage_metrics: each stage's scores, as metrics.json lists them.
        scores: the last stage's evaluation of each split (with labels and predictions).
        checkpoint: the run's own checkpoint, when it keeps one.
        score_test: False for a tuner's trial, which never looks at the test split.
        hparams: a sweep job's varied settings, for TensorBoard's HParams dashboard, or None.
        distribution: the devices the run is split over (``execution.distributed``), or None.
        pruner: what may stop the run as it goes (``framework.run.pruning``), or None.
        compiled_heads: compiled models to reuse for head-only stages on cached features (a
            search's trials), or for the one stage of a whole model (a sweep's jobs), or None.
        tracking: where each epoch is logged as it ends (``tracker=``), or None.

    Attributes:
        class_weight: each class's weight in the training loss (``class_weights``), or None:
            ``trainer.class_weight`` resolved, or refused, as the run is set up.
    """

    cfg: Any
    run_dir: Path
    data: Any
    task: Task
    built: Any
    batch_size: int
    features: dict | None = None
    history: list = field(default_factory=list)
    stage_starts: list = field(default_factory=list)
    stage_metrics: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    checkpoint: JobCheckpoint | None = None
    score_test: bool = True
    hparams: dict | None = None
    distribution: dict | None = None
    pruner: Any = None
    compiled_heads: CompiledHeads | None = None
    tracking: Tracking | None = None
    class_weight: dict | None = field(init=False)

    def __post_init__(self):
        self.class_weight = class_weights(
            plain(self.cfg.trainer.get("class_weight")),
            self.task,
            self.data,
            f"dataset {self.cfg.dataset.name!r}",
        )

    @property
    def pruned(self) -> bool:
        return self.pruner is not None and self.pruner.epoch is not None

    @property
    def loss(self):
        return self.task.loss(self.data, one_hot_targets(self.data.train))

    @property
    def objective(self) -> str:
        """``trainer.objective``, or the task's own."""
        return self.cfg.trainer.objective or self.task.default_objective


def _train(
    cfg, run_dir: Path, checkpoint: bool, hparams, pruner, loaded, compiled_heads, tracking
) -> tuple[dict, Task]:
    use_backend(cfg.trainer.get("backend"))  # refused if this process runs another
    job_checkpoint = JobCheckpoint(run_dir, cfg) if checkpoint else None
    clear_session()
    keras.utils.set_random_seed(cfg.seed)
    set_precision(cfg.trainer.precision)
    task, data = loaded or load_task_data(cfg)
    check_objective(cfg.trainer.objective or task.default_objective, task.objectives)
    protocol = load_protocol(cfg)
    rounds = protocol.rounds(data, cfg.seed)  # bad folds are refused before any training
    batch_size = cfg.get("dataset", {}).get("batch_size") or cfg.trainer.batch_size
    with distributed(cfg.trainer.distribution) as distribution:
        note = single_device_note(distribution)
        if note:
            print(f"note: {note}")
        if distribution and keras.config.backend() == "jax":
            for note in split_evenly(data, batch_size, len(distribution["devices"])):
                print(f"note: {note}")
        if protocol.single:
            run = fit_round(
                cfg,
                run_dir,
                data,
                task,
                batch_size,
                checkpoint=job_checkpoint,
                hparams=hparams,
                distribution=distribution,
                pruner=pruner,
                compiled_heads=None if distribution else compiled_heads,
                tracking=tracking,
            )
            metrics = write_run_dir(run)
        else:
            if pruner is not None:
                print(f"note: a pruner stops holdout runs only; the {len(rounds)} rounds train on")
            metrics = fit_rounds(
                Rounds(cfg, run_dir, data, task, batch_size, checkpoint, distribution, tracking),
                protocol,
                rounds,
                hparams,
            )
    if job_checkpoint:
        job_checkpoint.delete()  # the run is finished: metrics.json says so
    return metrics, task


def load_protocol(cfg) -> Protocol:
    """The run's evaluation protocol (``protocol=``); the holdout for a config without one (a
    run saved before protocols)."""
    protocol_cfg = cfg.get("protocol")
    if protocol_cfg is None:
        return Protocol()
    part = registry.protocols.get(protocol_cfg.name)
    protocol = part.build(protocol_cfg)
    if not isinstance(protocol, Protocol):
        raise part.misbehaved(f"returned {type(protocol).__name__}, not a Protocol")
    return protocol


def fit_round(
    cfg,
    run_dir: Path,
    data,
    task: Task,
    batch_size: int,
    *,
    checkpoint: JobCheckpoint | None = None,
    score_test: bool = True,
    hparams: dict | None = None,
    distribution: dict | None = None,
    shared: "SharedFeatures | None" = None,
    rows=None,
    pruner=None,
    compiled_heads: CompiledHeads | None = None,
    tracking: Tracking | None = None,
) -> Run:
    """Builds one model (under the random state the caller seeded) and trains its stages.

    Args:
        shared: the frozen backbone's features shared by the models of a protocol (extracted
            once), which builds the model (``SharedFeatures.build``: its head alone, where that
            is all it trains); None: extracted, or read from the feature cache, if a stage
            trains on them.
        rows: with ``shared``, the rows of train+validation that validate this model
            (``Round.validation``); None: the data's own split.
        pruner: what may stop the run as it goes (``Run.pruner``); a pruned run trains no
            further stage.
        compiled_heads: ``Run.compiled_heads``, where ``shared`` gives none.
        tracking: ``Run.tracking``.

    Returns:
        The trained run, not yet written.
    """
    if shared is not None:
        built = shared.build(cfg, data, task, distribution)
    else:
        built = build_model(cfg, data, one_hot_targets(data.train), task)
    run = Run(
        cfg,
        run_dir,
        data,
        task,
        built,
        batch_size,
        checkpoint=checkpoint,
        score_test=score_test,
        hparams=hparams,
        distribution=distribution,
        pruner=pruner,
        compiled_heads=compiled_heads,
        tracking=tracking,
    )
    if run.class_weight:
        weights = (f"{name} {weight:.4g}" for name, weight in run.class_weight.items())
        print(f"Class weights: {', '.join(weights)}")
    plans = plan_stages(cfg, run.data, run.built)
    if rows is not None and not data.in_arrays and not all(p.on_cached_features for p in plans):
        data.pooled()  # refused in one line: these splits cannot be cut
    if shared is not None:
        shared.give(run, plans, rows)
        keras.utils.set_random_seed(cfg.seed)  # as it was, whether shared built a model or not
    for plan in plans:
        fit_stage(run, plan, len(plans))
        if run.pruned:
            break
    return run


class SharedFeatures:
    """A frozen backbone's features of the run's data, extracted (or read from the feature
    cache) once for all the models of a protocol, with the backbone's weights that made them:
    features are per example, so each model gets them cut as its data is (``recut``), and its
    backbone those weights (a backbone of random weights is the run's seed's in every round).

    A model whose stages all train its head on these features needs no backbone: one full build
    shows what a build draws before the head, and every model is then a head built alone
    (``build``), from the random state its own full build would have left; that full model,
    kept, takes the kept round's head at the end (``_save_kept_model``).

    Args:
        cfg: the run config (the run's own seed).
        data: the run's data, as the dataset cut it.
        task: the run's task.
    """

    def __init__(self, cfg, data, task: Task):
        self.cfg, self.data, self.task = cfg, data, task
        self.found = {}  # feature-cache key: (features by split, backbone weights)
        self.heads = CompiledHeads()  # the rounds' heads are of the same layers: traced once
        # The full build whose heads can be built alone, and the default seeds it drew before
        # its head (``default_seeds_drawn``); None: each model is built whole.
        self.full, self._drawn = None, None
        self._first_build = True

    def build(self, cfg, data, task: Task, distribution: dict | None):
        """A model of the run's config but for its seed (and epochs), under the random state the
        caller seeded: its head alone (``build_head``) where a full build showed that all its
        stages train the head on these features, else the full model.

        Returns:
            The ``Assembled`` model; a head alone has no full model or backbone.
        """
        one_hot = one_hot_targets(data.train)
        before = random.getstate()
        if self._first_build and distribution is None:
            self._first_build = False  # what a build draws is found once (or not at all)
            built = build_model(cfg, data, one_hot, task)
            drawn = default_seeds_drawn(before, built.random_state)
            plans = plan_stages(cfg, data, built)
            key = _feature_key(self.cfg, self.data, built)
            if key is None or drawn is None or not all(p.on_cached_features for p in plans):
                return built
            self.full, self._drawn = built, drawn
        if self.full is None or distribution is not None:
            return build_model(cfg, data, one_hot, task)
        full = self.full
        features = (full.backbone.output,)  # their shape and dtype
        state = after_default_seeds(before, self._drawn)
        return build_head(
            cfg, data, features, one_hot, task, full.pretrained, state, full.recorded()
        )

    def give(self, run: "Run", plans: list, rows=None):
        """Sets a model's backbone weights and features, where a stage trains on cached
        features, and the compiled heads its head-only stages may reuse.

        Args:
            run: the model's run (its model built, not trained).
            plans: its stages.
            rows: the rows of train+validation that validate it; None: the data's own split;
                none (``[]``): all of them train, nothing validates (a refit).
        """
        key = _feature_key(self.cfg, self.data, run.built)
        if key is None or not any(plan.on_cached_features for plan in plans):
            return
        if key not in self.found:
            built = run.built if run.built.backbone is not None else self.full
            if run.cfg.seed != self.cfg.seed:  # a resumed run: the run's seed's backbone
                keras.utils.set_random_seed(self.cfg.seed)
                built = build_model(
                    self.cfg, self.data, one_hot_targets(self.data.train), self.task
                )
            cache_dir = Path(self.cfg.trainer.feature_cache.dir)
            features, hit = load_or_extract(built.backbone, self.data, key, cache_dir)
            print(
                f"  on {'cached' if hit else 'newly extracted'} features of the frozen backbone "
                f"({cache_dir / key}), shared by every round"
            )
            self.found[key] = (features, built.backbone.get_weights())
        features, weights = self.found[key]
        if run.built.backbone is not None:  # None: the head was built alone
            run.built.backbone.set_weights(weights)
        run.features = dict(features)
        if run.distribution is None:
            run.compiled_heads = self.heads
        if rows is not None:
            # As integers: a refit's rows are an empty list.
            run.features["train"], validation = recut(
                features["train"], features["validation"], np.asarray(rows, dtype=int)
            )
            if len(rows):
                run.features["validation"] = validation
            else:  # a refit on train+validation: nothing validates
                del run.features["validation"]


_runs_started = []  # in this process


def clear_session(free_memory: bool = True):
    """Resets Keras's global state (names, the global seed generator) for a run, and frees the
    models of earlier runs in this process (a sweep's jobs one after another, a tuner's trials).

    A process's first run has nothing to free: it skips the garbage collection, about 0.2 s
    once TensorFlow is loaded.

    Args:
        free_memory: False to skip the garbage collection where little is left to free.
    """
    free_memory = free_memory and bool(_runs_started)
    _runs_started.append(True)
    try:
        keras.backend.clear_session(free_memory=free_memory)
    except TypeError:  # a Keras without the argument (before 3.6) always collects
        keras.backend.clear_session()


def plan_stages(cfg, data, built) -> list[StagePlan]:
    """The run's stages, resolved: epochs, what trains, the optimizer, cached features or not.

    Returns:
        One plan per ``trainer.stages`` entry, or one stage of ``trainer.epochs`` without them.
    """
    stages = list(cfg.trainer.stages) or [OmegaConf.structured(StageConfig())]
    plans, backbone_trained = [], False
    for number, stage in enumerate(stages, start=1):
        trainable = plain(stage.trainable)
        if trainable is None:  # as built: a pretrained backbone stays frozen
            trainable = "head" if built.pretrained else "all"
        # Features extracted before the backbone trained would be stale after it.
        key = (
            _feature_key(cfg, data, built) if trainable == "head" and not backbone_trained else None
        )
        backbone_trained = backbone_trained or trainable != "head"
        epochs = stage.epochs if stage.epochs is not None else cfg.trainer.epochs
        plans.append(StagePlan(number, stage.name, epochs, trainable, _optimizer(stage, cfg), key))
    return plans


def fit_stage(run: Run, plan: StagePlan, stages: int):
    """Trains one stage and evaluates it on validation and test.

    A stage that the run's checkpoint holds finished is restored instead of trained.

    Args:
        run: the run so far; its history, stage metrics and scores grow.
        plan: the stage.
        stages: how many stages the run has (for the stage's header line).
    """
    built, cfg = run.built, run.cfg
    if built.backbone is not None:  # None: the head was built alone (``build_head``)
        set_trainable(built.backbone, plan.trainable, built.pretrained)
    epochs = f"{plan.epochs} epoch{'s' if plan.epochs != 1 else ''}"
    print(
        f"Stage {plan.number}/{stages} {plan.name}: {epochs}, trains "
        f"{_describe_trainable(plan.trainable)}"
    )
    done = _restore_stage(run, plan) if run.checkpoint else None
    if done and plan.number < stages:  # only the last stage's scores are kept: no need to evaluate
        run.stage_metrics.append(done["metrics"])
        return
    if plan.on_cached_features and run.features is None:
        cache_dir = Path(cfg.trainer.feature_cache.dir)
        run.features, hit = load_or_extract(built.backbone, run.data, plan.feature_key, cache_dir)
        print(
            f"  on {'cached' if hit else 'newly extracted'} features of the frozen backbone "
            f"({cache_dir / plan.feature_key})"
        )
    # A head-only stage over cached features trains the head model, whose layers the full
    # model shares: the full model is trained all the same.
    own = built.head if plan.on_cached_features else built.model
    target = own
    # A whole model is reused in a run of one stage only: a stage that trains other layers
    # compiles the model again.
    if run.compiled_heads is not None and (plan.on_cached_features or stages == 1):
        target = run.compiled_heads.compiled(
            own,
            lambda head: _compile(head, plan, run),
            plan.optimizer["learning_rate"],
            {
                "optimizer": {k: v for k, v in plan.optimizer.items() if k != "learning_rate"},
                "task": [run.task.name, one_hot_targets(run.data.train)],
                "compile": compile_options(run.cfg.trainer),
            },
        )
    else:
        _compile(target, plan, run)
    if not done:
        start = len(run.history) + 1
        run.stage_starts.append((start, plan.name))
        history = _fit(run, plan, target)
        for i in range(len(next(iter(history.values()), []))):
            row = {"epoch": len(run.history) + 1, "stage": plan.name}
            row.update({k: v[i] for k, v in history.items()})
            run.history.append(row)
    if target is not own:
        if own is built.model:  # saved with its optimizer's state, as trained
            _compile(own, plan, run)
        CompiledHeads.take_back(own, target)
    if plan.on_cached_features:
        if built.model is not None:  # None: the head was built alone (``build_head``)
            # Saved compiled, with an optimizer built for the variables it would train.
            _compile(built.model, plan, run)
            built.model.optimizer.build(built.model.trainable_variables)
        splits = {split: run.features.get(split) for split in ("validation", "test")}
        if run.compiled_heads is not None:
            splits = {
                split: features and run.compiled_heads.score_inputs(features, run.batch_size)
                for split, features in splits.items()
            }
    else:
        splits = {"validation": run.data.validation, "test": run.data.test}
    if not run.score_test:
        splits.pop("test")
    run.scores = {
        split: run.task.evaluate(target, source, run.data, run.batch_size)
        for split, source in splits.items()
        if source is not None
    }
    kept = ("loss", *run.task.metric_names)
    run.stage_metrics.append(
        {
            "stage": plan.name,
            "trainable": plan.trainable,
            "cached_features": plan.on_cached_features,
            "optimizer": plan.optimizer,
            **{split: {k: s[k] for k in kept} for split, s in run.scores.items()},
        }
    )
    if run.checkpoint and not done:
        run.checkpoint.save_stage(
            _checkpointed(built, plan),
            plan.number,
            {
                "start": [start, plan.name],
                "metrics": run.stage_metrics[-1],
                "history": run.history[start - 1 :],
            },
        )


def _restore_stage(run: Run, plan: StagePlan) -> dict | None:
    """Restores the weights and history of a stage that the run's checkpoint holds finished.

    Returns:
        What the checkpoint held of the stage (its history and scores), or None.
    """
    done = run.checkpoint.finished_stage(plan.number)
    if done:
        run.checkpoint.restore_weights(_checkpointed(run.built, plan), plan.number)
        print("  restored, finished, from the run's checkpoint")
        run.stage_starts.append(tuple(done["start"]))
        run.history += done["history"]
    return done


def _checkpointed(built, plan: StagePlan):
    """The model whose weights a finished stage keeps in the checkpoint: the head, for a stage
    over cached features (the frozen backbone is as built: a head built alone has none)."""
    return built.head if plan.on_cached_features else built.model


def _fit(run: Run, plan: StagePlan, target) -> dict[str, list[float]]:
    """Fits the stage's model; returns its history (with the epochs from before a restart)."""
    # Each epoch's data order is set by its number in the run, so that a resumed fit (which
    # starts at a later epoch) serves the epochs it trains as the uninterrupted fit did.
    before = len(run.history)  # the epochs of the stages before
    callbacks = [
        keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: start_epoch(run.cfg.seed, before + epoch)
        )
    ]
    callbacks += [
        registry.callbacks.get(name).build(cb_cfg, RunContext(run.run_dir, plan.name))
        for name, cb_cfg in run.cfg.callbacks.items()
    ]
    # Where a stopped fit of the stage left a backup, the fit continues from it.
    initial_epoch = run.checkpoint.restore(plan.number, target) if run.checkpoint else 0
    if run.checkpoint:
        callbacks += run.checkpoint.callbacks(plan.number)
    if run.pruner:
        callbacks.append(Pruning(run.pruner, run.objective, before))
    if run.tracking and run.tracking.active:
        callbacks.append(run.tracking.epoch_callback(run.run_dir, before))
    callbacks.append(StopCheck())  # last: an epoch's end is logged and backed up before
    if plan.on_cached_features:
        # As the training split does: NumPy arrays as the data says; a pipeline reshuffles each
        # epoch exactly when it has a fixed-order twin.
        shuffle = (
            run.data.shuffle
            if isinstance(run.data.train, tuple)
            else run.data.train_in_order is not None
        )
        args, kwargs = (
            (),
            run.compiled_heads
            and run.compiled_heads.fit_inputs(run.features, run.batch_size, shuffle, run.cfg.seed),
        )
        if not kwargs:
            args, kwargs = (
                run.features["train"],
                {
                    "batch_size": run.batch_size,
                    "shuffle": shuffle,
                    "validation_data": run.features.get("validation"),
                },
            )
    else:
        args, kwargs = _fit_inputs(run.data.train, run.batch_size, run.data.shuffle)
        kwargs["validation_data"] = run.data.validation
    fit = target.fit(
        *args,
        **kwargs,
        # Keras's own: each training example's loss (not validation's) weighed by its class.
        class_weight=run.class_weight and dict(enumerate(run.class_weight.values())),
        epochs=plan.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=run.cfg.trainer.verbose,
    )
    # Keras's BackupAndRestore (the backup_and_restore callback) leaves its restored epoch on
    # the model, where the next stage's fit would start from it (Keras reads it on every fit
    # and never resets it).
    target._initial_epoch = None
    if run.checkpoint:
        return run.checkpoint.stage_history(plan.number, fit)
    return {k: [float(v) for v in values] for k, values in fit.history.items()}


class StopCheck(keras.callbacks.Callback):
    """Stops a fit at an epoch's start or end where a signal's ``Stopped`` was lost
    (``raise_if_stopped``)."""

    def on_epoch_begin(self, epoch, logs=None):
        raise_if_stopped()

    def on_epoch_end(self, epoch, logs=None):
        raise_if_stopped()


# A protocol's rounds, each in a folder of its own (its number, or "refit") in the run dir.
ROUNDS_DIR = "rounds"
# A round's record (beside its model and checkpoint): written last, it marks the round
# finished, and a run continued from its checkpoint keeps it.
ROUND_RECORD = "round.json"
# The model of a round whose stages all trained its head on cached features: the head's weights
# alone (the run's model.keras is assembled from the kept round's, once); another round keeps
# its model.keras and summary.txt.
HEAD_WEIGHTS = "head.weights.h5"
# A round's labels and predictions of each split it was scored on, for the kept round's plots.
ROUND_SCORES = "scores.npz"


@dataclass
class Rounds:
    """What the rounds of a protocol share: the run's config (its seed), dir, data (as the
    dataset cut it), task and batch size, whether it keeps a checkpoint, its devices, and its
    tracking (or None)."""

    cfg: Any
    run_dir: Path
    data: Any
    task: Task
    batch_size: int
    checkpoint: bool
    distribution: dict | None
    tracking: Tracking | None = None


def fit_rounds(ctx: Rounds, protocol: Protocol, rounds: list, hparams: dict | None) -> dict:
    """Trains a protocol's rounds (those a stopped run finished are kept), keeps the best
    round's model or a refit, and writes the run dir.

    Returns:
        The metrics written.

    Raises:
        UserError: a refit of data without a test split.
    """
    if protocol.refit and ctx.data.test is None:
        raise UserError(
            "protocol.refit=true trains on train+validation and needs a test split to score the "
            f"refit model; dataset {ctx.cfg.dataset.name!r} has none: set protocol.refit=false"
        )
    shared = SharedFeatures(ctx.cfg, ctx.data, ctx.task)
    results = [
        _fit_round_once(ctx, shared, str(number), round_, f"Round {number}/{len(rounds)}")
        for number, round_ in enumerate(rounds, start=1)
    ]
    objective = ctx.task.objective(results[0]["record"]["objective"]["name"])
    kept = best_first(
        results,
        lambda r: objective,
        lambda r: r["record"]["objective"]["value"],
        lambda r: int(r["folder"]),
    )[0]
    if protocol.refit:
        refit = Round("refit", ctx.cfg.seed, validation=[])
        cfg = _refit_config(ctx.cfg, results)
        kept = _fit_round_once(ctx, shared, "refit", refit, "Refit on train+validation", cfg)
    return _write_rounds(ctx, shared, protocol, results, kept, hparams)


def _fit_round_once(ctx: Rounds, shared, folder: str, round_, header: str, cfg=None) -> dict:
    """Trains a round in its folder and writes its record, or reads the record a stopped run
    left there (with a checkpoint kept).

    Returns:
        The round's record, as read back from its file (the same whether trained now or
        before).
    """
    round_dir = ctx.run_dir / ROUNDS_DIR / folder
    found = round_dir / ROUND_RECORD
    if ctx.checkpoint and found.is_file():
        print(f"{header}: {round_.name}, finished before (kept in {shown(round_dir)})")
        return json.loads(found.read_text())
    print(f"{header}: {round_.name}, seed {round_.seed}")
    round_dir.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(cfg if cfg is not None else ctx.cfg)
    cfg.seed = round_.seed
    data = round_data(ctx.data, round_)
    checkpoint = JobCheckpoint(round_dir, cfg) if ctx.checkpoint else None
    # Rounds whose models are heads built alone leave little to free: no garbage collection.
    clear_session(free_memory=shared.full is None)
    keras.utils.set_random_seed(round_.seed)
    run = fit_round(
        cfg,
        round_dir,
        data,
        ctx.task,
        ctx.batch_size,
        checkpoint=checkpoint,
        distribution=ctx.distribution,
        shared=shared,
        rows=round_.validation,
        tracking=ctx.tracking,
    )
    evaluated_on = "test" if data.test is not None else "validation"
    if all(stage["cached_features"] for stage in run.stage_metrics):
        run.built.head.save_weights(round_dir / HEAD_WEIGHTS)
    else:
        _save_model_files(run)
    arrays = {
        f"{split}_{key}": np.asarray(scores[key])
        for split, scores in run.scores.items()
        for key in ("y_true", "y_pred")
    }
    np.savez(round_dir / ROUND_SCORES, **arrays)
    result = {
        "folder": folder,
        "name": round_.name,
        "seed": round_.seed,
        "record": _run_record(run, evaluated_on).as_dict(),
        "scores": {
            split: {k: v for k, v in scores.items() if k not in ("y_true", "y_pred")}
            for split, scores in run.scores.items()
        },
        "history": run.history,
        "stage_starts": run.stage_starts,
    }
    write_atomic(found, json.dumps(result))
    if checkpoint:
        checkpoint.delete()
    return json.loads(found.read_text())


def round_data(data, round_: Round):
    """A round's data: the data's own split, cut again (``Data.recut``), or train and
    validation together for a refit (``validation=[]``), which validates nothing; ``tf.data``
    splits as they are, where only cached features of them train (``SharedFeatures``)."""
    if round_.validation is None or not data.in_arrays:
        return data  # pipelines: only their features are cut (fit_round checks every stage's)
    if len(round_.validation):
        return data.recut(round_.validation)
    return dataclasses.replace(data, train=data.pooled(), validation=None, train_in_order=None)


def _refit_config(cfg, results: list[dict]):
    """The run config of a refit: each stage trains for the mean, over the rounds, of the
    epochs it trained (early stopping may have ended it sooner), rounded, at least 1."""
    cfg = copy.deepcopy(cfg)
    names = [stage.name for stage in cfg.trainer.stages] or [StageConfig().name]
    epochs = [
        max(
            1,
            round(
                sum(sum(1 for row in r["history"] if row["stage"] == name) for r in results)
                / len(results)
            ),
        )
        for name in names
    ]
    if cfg.trainer.stages:
        for stage, n in zip(cfg.trainer.stages, epochs, strict=True):
            stage.epochs = n
    else:
        cfg.trainer.epochs = epochs[0]
    return cfg


def _write_rounds(
    ctx: Rounds, shared: SharedFeatures, protocol: Protocol, results: list, kept: dict, hparams
) -> dict:
    """Writes the run dir of a protocol's run: the kept round's model, plots and history, and
    metrics.json with every round's validation scores, their mean and std.

    Returns:
        The metrics written.
    """
    run_dir, task = ctx.run_dir, ctx.task
    kept_dir = run_dir / ROUNDS_DIR / kept["folder"]
    record = dict(kept["record"])
    with np.load(kept_dir / ROUND_SCORES) as arrays:
        scores = {
            split: {
                **values,
                "y_true": arrays[f"{split}_y_true"],
                "y_pred": arrays[f"{split}_y_pred"],
            }
            for split, values in kept["scores"].items()
        }
    task.report(run_dir, scores, ctx.data, record["evaluated_on"])
    if (kept_dir / HEAD_WEIGHTS).is_file():
        _save_kept_model(ctx, shared, kept)
    else:
        for name in ("model.keras", "summary.txt"):
            tmp = run_dir / f".{name}.{os.getpid()}.tmp"
            shutil.copyfile(kept_dir / name, tmp)
            shutil.move(tmp, run_dir / name)
    write_history(run_dir, kept["history"])
    starts = [tuple(start) for start in kept["stage_starts"]]
    plot_curves(run_dir, kept["history"], starts, (*task.metric_names, "loss")[0])
    validations = [r["record"]["validation"] for r in results]
    mean, std = objective_over([r["record"]["objective"]["value"] for r in results])
    spread = {k: objective_over([v[k] for v in validations]) for k in validations[0]}
    record["objective"] = {**record["objective"], "value": mean, "std": std}
    record["seed"] = ctx.cfg.seed
    if not record["validation"]:  # a refit: the rounds' mean
        record["validation"] = {k: m for k, (m, _) in spread.items()}
    record["protocol"] = {
        "name": protocol.name,
        **protocol.settings(),
        "refit": protocol.refit,
        "kept": kept["name"],
        "rounds": [
            {
                "name": r["name"],
                "seed": r["seed"],
                "epochs": r["record"]["epochs"],
                "validation": r["record"]["validation"],
                "objective": r["record"]["objective"]["value"],
            }
            for r in results
        ],
        "validation": {
            "mean": {k: m for k, (m, _) in spread.items()},
            "std": {k: sd for k, (_, sd) in spread.items()},
        },
    }
    run_record = RunRecord(**record)
    if hparams is not None:
        write_hparams(run_dir, hparams, run_record)
    write_run_card(run_dir, run_record)
    write_record(run_dir, run_record)  # last: its presence marks a finished run
    return run_record.as_dict()


def _save_kept_model(ctx: Rounds, shared: SharedFeatures, kept: dict):
    """Saves model.keras and summary.txt of a kept round that trained only its head on cached
    features: the full model the rounds' heads were built from (``SharedFeatures.full``, or one
    built as the round's was), with the shared backbone's weights and the round's trained head,
    compiled as its last stage left it."""
    cfg = copy.deepcopy(ctx.cfg)
    cfg.seed = kept["seed"]
    built = shared.full
    if built is None:  # each round built its model whole, or all had finished before
        clear_session()  # the layers' names as the round's model had them
        keras.utils.set_random_seed(cfg.seed)
        built = build_model(cfg, ctx.data, one_hot_targets(ctx.data.train), ctx.task)
    run = Run(cfg, ctx.run_dir, ctx.data, ctx.task, built, ctx.batch_size)
    plans = plan_stages(cfg, ctx.data, built)
    shared.give(run, plans)  # the backbone's weights
    built.head.load_weights(ctx.run_dir / ROUNDS_DIR / kept["folder"] / HEAD_WEIGHTS)
    set_trainable(built.backbone, plans[-1].trainable, built.pretrained)
    _compile(built.model, plans[-1], run)
    built.model.optimizer.build(built.model.trainable_variables)
    _save_model_files(run)


def write_run_dir(run: Run) -> dict:
    """Writes the history, the plots, the model, its summary, the model card and, last,
    metrics.json.

    A pruned run is never a sweep's best: it writes its records as it stopped (the history,
    the model's summary, metrics.json) and no plots or model.keras, which cost a sweep about
    a second or two per trial.

    Returns:
        The metrics written.
    """
    data, run_dir, task = run.data, run.run_dir, run.task
    evaluated_on = "test" if data.test is not None else "validation"
    write_history(run_dir, run.history)
    if run.pruned:
        write_summary(run_dir, run.built.model)
    else:
        task.report(run_dir, run.scores, data, evaluated_on)
        _save_model_files(run)
        plot_curves(run_dir, run.history, run.stage_starts, (*task.metric_names, "loss")[0])
    record = _run_record(run, evaluated_on)
    if run.hparams is not None:
        write_hparams(run_dir, run.hparams, record)
    write_run_card(run_dir, record)
    write_record(run_dir, record)  # last: its presence marks a finished run
    return record.as_dict()


def _save_model_files(run: Run):
    """Saves model.keras (compiled with the task's portable metrics) and its summary."""
    model, task = run.built.model, run.task
    portable = task.saved_metrics(run.data)
    if portable is not None:  # the same optimizer, its state kept
        if run.compiled_heads is not None:
            run.compiled_heads.forget(model)
        model.compile(
            optimizer=model.optimizer,
            loss=run.loss,
            metrics=portable,
            **compile_options(run.cfg.trainer),
        )
    _save_model(model, run.run_dir)
    write_summary(run.run_dir, model)


def _run_record(run: Run, evaluated_on: str) -> RunRecord:
    """The record of a trained run (a protocol's round, or the one model of a holdout run)."""
    data, task = run.data, run.task
    final = {k: v for k, v in run.scores[evaluated_on].items() if k not in ("y_true", "y_pred")}
    validation = run.stage_metrics[-1].get("validation", {})  # a refit has none
    return RunRecord(
        test=final,
        evaluated_on=evaluated_on,
        validation=validation,
        stages=run.stage_metrics,
        epochs=len(run.history),
        model=run.built.recorded(),
        data={
            "name": run.cfg.dataset.name,
            "task": data.task,
            **recorded_name(task, data),
            **task.data_info(data),
            **data.info,
        },
        seed=run.cfg.seed,
        # Where and how it ran: Keras's devices, the GPUs this process was given, the backend
        # and its execution settings.
        devices={
            "keras": keras.distribution.list_devices(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
        execution={
            "backend": keras.config.backend(),
            "precision": run.cfg.trainer.precision,
            **compile_options(run.cfg.trainer),
            "distribution": run.distribution
            and {**run.distribution, "replicas": replicas(run.built.model)},
        },
        objective={
            "name": run.objective,
            # A refit validates nothing: its run's value is the rounds' mean.
            "value": objective_value(run.objective, validation, run.history)
            if validation or not run.objective.startswith("val_")
            else None,
            "direction": task.objective(run.objective).direction,
        },
        class_weight=run.class_weight,
        pruned={"epoch": run.pruner.epoch, "by": run.pruner.name} if run.pruned else None,
        environment=environment(),
    )


def _compile(model, plan: StagePlan, run: Run):
    model.compile(
        optimizer=make_optimizer(**plan.optimizer),
        loss=run.loss,
        metrics=run.task.metrics(run.data),
        **compile_options(run.cfg.trainer),
    )


def _optimizer(stage, cfg) -> dict:
    """The optimizer a stage trains with, its settings resolved."""
    learning_rate = (
        stage.learning_rate if stage.learning_rate is not None else cfg.optimizer.learning_rate
    )
    return optimizer_settings(
        stage.optimizer or cfg.optimizer.name, learning_rate, cfg.optimizer.momentum
    )


def _feature_key(cfg, data, built):
    """The feature-cache key for a head-only stage, or None where features cannot be cached."""
    if not cfg.trainer.feature_cache.enabled or built.input_steps:
        return None  # augmentation before the backbone changes its features every epoch
    return cache_key(cfg, data, registry.backbones.get(cfg.backbone.name))


def load_data(cfg, follow_backbone: bool = True):
    """The dataset a run config describes, resized to its backbone's input size if it has one.

    Args:
        cfg: a composed run config.
        follow_backbone: False to serve the dataset's own size as its config says, without
            checking it against the backbone's (a finished run's data, rebuilt).

    Raises:
        UserError: the dataset cannot be built.
    """
    input_size = cfg.backbone.get("input_size") if follow_backbone else None
    input_size = tuple(input_size) if input_size else None
    ctx = DataContext(
        seed=cfg.seed, batch_size=cfg.trainer.batch_size, input_size=input_size, task=cfg.task.name
    )
    data = registry.datasets.get(cfg.dataset.name).build(cfg.dataset, ctx)
    # What the data turned out to be decides, for datasets that declared nothing too.
    source = f"dataset {cfg.dataset.name!r}"
    check_takes(registry.backbones.get(cfg.backbone.name), data_kind(data.input_shape), source)
    for name in cfg.regularizer:
        check_takes(registry.regularizers.get(name), data_kind(data.input_shape), source)
    return data


def load_task_data(cfg) -> tuple[Task, Any]:
    """The run's task and its dataset, prepared by the task for training (``Task.prepare``).

    Raises:
        UserError: the dataset cannot be built, or does not fit the task.
    """
    data = load_data(cfg)
    task = run_task(cfg, data)
    return task, task.prepare(data, f"dataset {cfg.dataset.name!r}")


def _describe_trainable(trainable) -> str:
    if trainable == "head":
        return "the head"
    if trainable == "all":
        return "everything"
    ((key, value),) = trainable.items()
    return (
        f"the head and the backbone's last {value} layers"
        if key == "last"
        else (f"the head and the backbone from layer {value!r}")
    )


def _fit_inputs(split, batch_size, shuffle: bool):
    if isinstance(split, tuple):
        x, y = split
        return (x, y), {"batch_size": batch_size, "shuffle": shuffle}
    return (split,), {"shuffle": False}  # a tf.data pipeline shuffles itself


def one_hot_targets(split) -> bool:
    """Whether a split's labels are one-hot (categorical cross-entropy) or integers."""
    return is_one_hot(
        np.shape(split[1]) if isinstance(split, tuple) else split.element_spec[1].shape
    )


def _save_model(model, run_dir: Path):
    tmp = run_dir / f".model.{os.getpid()}.tmp.keras"  # apart from another process's
    model.save(tmp)
    shutil.move(tmp, run_dir / "model.keras")
