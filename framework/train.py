"""One run: data -> model -> callbacks -> fit stage by stage -> evaluate -> run directory.

``train(cfg, run_dir)`` is pure: tests call it without Hydra.
"""

import shutil
from pathlib import Path

from framework.backend import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import numpy as np
from omegaconf import DictConfig, OmegaConf

from framework import registry
from framework.config import StageConfig
from framework.contexts import DataContext, RunContext
from framework.errors import UserError
from framework.evaluation import evaluate, is_one_hot, split_arrays, take_examples
from framework.feature_cache import cache_key, load_or_extract
from framework.kinds import data_kind
from framework.preflight import check_fit, check_takes
from framework.model import (
    build_model,
    check_optimizer,
    loss_for,
    make_optimizer,
    optimizer_settings,
    set_trainable,
)
from framework.rundir import FAILED, finished_run_check, mark_failed
from framework.report import (
    console_report,
    plot_confusion_matrix,
    plot_curves,
    plot_misclassified,
    write_history,
    write_metrics,
    write_summary,
)


def train(cfg: DictConfig, run_dir) -> dict:
    """Trains, evaluates and saves the model a config describes.

    Args:
        cfg: a composed config (see conf/config.yaml).
        run_dir: the directory to write into; it must not hold a finished run.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        UserError: bad input; the run directory is marked FAILED and no metrics.json is written.
    """
    run_dir = Path(run_dir)
    finished_run_check(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED).unlink(missing_ok=True)
    try:
        metrics = _train(cfg, run_dir)
    except BaseException as e:
        mark_failed(run_dir, f"{type(e).__name__}: {e}")
        raise
    print(console_report(run_dir, metrics))
    return metrics


def _train(cfg, run_dir: Path) -> dict:
    check_fit({group: cfg[group].name for group in ("dataset", "backbone", "head")},
              list(cfg.regularizer))
    check_optimizer(cfg.optimizer.name)
    stages = _stages(cfg)
    for stage in stages:
        if stage.optimizer:
            check_optimizer(stage.optimizer)
    keras.backend.clear_session()  # models of earlier runs in this process: free them
    keras.utils.set_random_seed(cfg.seed)

    data = load_data(cfg)
    one_hot = _one_hot(data.train)
    built = build_model(cfg, data, one_hot)
    model = built.model
    batch_size = cfg.get("dataset", {}).get("batch_size") or cfg.trainer.batch_size
    features = None  # the frozen backbone's features, once a head-only stage needs them

    history, stage_starts, stage_metrics = [], [], []
    for number, stage in enumerate(stages, start=1):
        trainable = _plain(stage.trainable)
        if trainable is None:  # as built: a pretrained backbone stays frozen
            trainable = "head" if built.pretrained else "all"
        set_trainable(built.backbone, trainable, built.pretrained)
        key = _feature_key(cfg, data, built) if trainable == "head" else None
        epochs = f"{stage.epochs} epoch{'s' if stage.epochs != 1 else ''}"
        print(f"Stage {number}/{len(stages)} {stage.name}: {epochs}, trains "
              f"{_describe_trainable(trainable)}")
        if key is not None and features is None:
            features, hit = load_or_extract(built.backbone, data, key,
                                            Path(cfg.trainer.feature_cache.dir))
            print(f"  on {'cached' if hit else 'newly extracted'} features of the frozen backbone "
                  f"({Path(cfg.trainer.feature_cache.dir) / key})")
        # A head-only stage over cached features trains the head model, whose layers the full
        # model shares: the full model is trained all the same.
        target = built.head if key is not None else model
        _compile(target, stage, cfg, loss_for(data.task, one_hot))
        callbacks = [
            registry.callbacks.get(name).build(cb_cfg, RunContext(run_dir, stage.name))
            for name, cb_cfg in cfg.callbacks.items()
        ]
        stage_starts.append((len(history) + 1, stage.name))
        if key is not None:
            fit = built.head.fit(
                *features["train"],
                batch_size=batch_size,
                # The training split reshuffles each epoch exactly when it has a fixed-order twin.
                shuffle=data.train_in_order is not None,
                validation_data=features["validation"],
                epochs=stage.epochs,
                callbacks=callbacks,
                verbose=cfg.trainer.verbose,
            )
            # Saved compiled, with an optimizer built for the variables it would train.
            _compile(model, stage, cfg, loss_for(data.task, one_hot))
            model.optimizer.build(model.trainable_variables)
            splits = {split: features.get(split) for split in ("validation", "test")}
        else:
            args, kwargs = _fit_inputs(data.train, batch_size)
            fit = model.fit(
                *args,
                **kwargs,
                validation_data=data.validation,
                epochs=stage.epochs,
                callbacks=callbacks,
                verbose=cfg.trainer.verbose,
            )
            splits = {"validation": data.validation, "test": data.test}
        for i in range(len(fit.epoch)):
            row = {"epoch": len(history) + 1, "stage": stage.name}
            row.update({k: float(v[i]) for k, v in fit.history.items()})
            history.append(row)
        scores = {split: evaluate(target, source, data.class_names, batch_size)
                  for split, source in splits.items() if source is not None}
        stage_metrics.append({
            "stage": stage.name,
            "trainable": trainable,
            "cached_features": key is not None,
            "optimizer": _optimizer(stage, cfg),
            **{split: {"loss": s["loss"], "accuracy": s["accuracy"]} for split, s in scores.items()},
        })

    evaluated_on = "test" if data.test is not None else "validation"
    final = scores[evaluated_on]
    plot_confusion_matrix(run_dir, final["y_true"], final["y_pred"], data.class_names,
                          evaluated_on)
    if len(data.input_shape) == 3:  # images: show the validation images the model got wrong
        val = scores["validation"]
        wrong = np.flatnonzero(val["y_true"] != val["y_pred"])
        images = take_examples(split_arrays(data.validation)[0], wrong)
        plot_misclassified(run_dir, images, val["y_true"][wrong], val["y_pred"][wrong],
                           data.class_names)
    final = {k: v for k, v in final.items() if k not in ("y_true", "y_pred")}
    _save_model(model, run_dir)
    write_summary(run_dir, model)
    write_history(run_dir, history)
    plot_curves(run_dir, history, stage_starts)
    metrics = {
        "test": final,
        "evaluated_on": evaluated_on,
        "validation": stage_metrics[-1]["validation"],
        "stages": stage_metrics,
        "epochs": len(history),
        "model": {"name": model.name, "params": int(model.count_params())},
        "data": {"name": cfg.dataset.name, "task": data.task, "classes": list(data.class_names),
                 **data.info},
        "seed": cfg.seed,
    }
    write_metrics(run_dir, metrics)  # last: its presence marks a finished run
    return metrics


def _compile(model, stage, cfg, loss):
    model.compile(optimizer=make_optimizer(**_optimizer(stage, cfg)), loss=loss,
                  metrics=["accuracy"])


def _optimizer(stage, cfg) -> dict:
    """The optimizer a stage trains with, its settings resolved."""
    learning_rate = (stage.learning_rate if stage.learning_rate is not None
                     else cfg.optimizer.learning_rate)
    return optimizer_settings(stage.optimizer or cfg.optimizer.name, learning_rate,
                              cfg.optimizer.momentum)


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
        UserError: the dataset cannot be built, or has fewer than 2 classes.
    """
    input_size = cfg.backbone.get("input_size") if follow_backbone else None
    input_size = tuple(input_size) if input_size else None
    ctx = DataContext(seed=cfg.seed, batch_size=cfg.trainer.batch_size, input_size=input_size)
    data = registry.datasets.get(cfg.dataset.name).build(cfg.dataset, ctx)
    # What the data turned out to be decides, for datasets that declared nothing too.
    source = f"dataset {cfg.dataset.name!r}"
    check_takes(registry.backbones.get(cfg.backbone.name), data_kind(data.input_shape), source)
    for name in cfg.regularizer:
        check_takes(registry.regularizers.get(name), data_kind(data.input_shape), source)
    if len(data.class_names) < 2:
        raise UserError(
            f"dataset {cfg.dataset.name!r} has {len(data.class_names)} class "
            f"({', '.join(map(str, data.class_names)) or 'none'}); a classifier needs at least 2"
        )
    return data


def _stages(cfg):
    # Copies: the run's config stays as composed.
    stages = [OmegaConf.merge(StageConfig, s) for s in cfg.trainer.stages]
    stages = stages or [OmegaConf.structured(StageConfig())]
    for stage in stages:
        if stage.epochs is None:
            stage.epochs = cfg.trainer.epochs
    return stages


def _describe_trainable(trainable) -> str:
    if trainable == "head":
        return "the head"
    if trainable == "all":
        return "everything"
    (key, value), = trainable.items()
    return f"the head and the backbone's last {value} layers" if key == "last" else (
        f"the head and the backbone from layer {value!r}")


def _fit_inputs(split, batch_size):
    if isinstance(split, tuple):
        x, y = split
        return (x, y), {"batch_size": batch_size}
    return (split,), {"shuffle": False}  # a tf.data pipeline shuffles itself


def _one_hot(split) -> bool:
    return is_one_hot(np.shape(split[1]) if isinstance(split, tuple)
                      else split.element_spec[1].shape)


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _save_model(model, run_dir: Path):
    tmp = run_dir / ".model.tmp.keras"
    model.save(tmp)
    shutil.move(tmp, run_dir / "model.keras")
