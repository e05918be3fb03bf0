"""Evaluation protocols (protocol=holdout|kfold|seeds): the records of several models, their
mean as the objective, the holdout unchanged, a stopped k-fold run resumed, a search's ranking."""

import csv
import json
import statistics

import keras
import numpy as np
import pytest

from framework.parts import registry
from framework.run.train import load_protocol, load_task_data, train

from conftest import assert_one_line_error

FAST = ("experiment=iris_binary", "trainer.epochs=3", "trainer.verbose=0")
# A head-only stage over the cached features of a frozen backbone of random weights.
ON_FEATURES = (
    "experiment=cnn_shapes",
    "dataset.samples_per_class=10",
    "trainer.verbose=0",
    "trainer.stages=[{name:head,epochs:3,trainable:head}]",
)


def _by_hand(metrics: dict):
    """The objective's mean and std over the rounds, computed from the per-round values."""
    values = [r["objective"] for r in metrics["protocol"]["rounds"]]
    return sum(values) / len(values), statistics.stdev(values)


def test_a_kfold_run_records_each_fold_and_ranks_by_their_mean(compose, tmp_path):
    cfg = compose(*FAST, "protocol=kfold", "protocol.folds=3")
    metrics = train(cfg, tmp_path / "run")
    protocol = metrics["protocol"]
    assert protocol["name"] == "kfold" and protocol["folds"] == 3 and protocol["refit"] is False
    rounds = protocol["rounds"]
    assert [r["name"] for r in rounds] == ["fold 1", "fold 2", "fold 3"]
    assert [r["seed"] for r in rounds] == [42, 43, 44]  # each fold its own seed
    for r in rounds:  # the objective of a fold is its validation accuracy
        assert r["objective"] == r["validation"]["accuracy"]
    mean, std = _by_hand(metrics)
    assert metrics["objective"]["name"] == "val_accuracy"
    assert metrics["objective"]["value"] == pytest.approx(mean, abs=1e-12)
    assert metrics["objective"]["std"] == pytest.approx(std, abs=1e-12)
    for key in ("loss", "accuracy"):
        values = [r["validation"][key] for r in rounds]
        assert protocol["validation"]["mean"][key] == pytest.approx(statistics.mean(values))
        assert protocol["validation"]["std"][key] == pytest.approx(statistics.stdev(values))
    # The kept model is the fold with the best validation accuracy (the first of equals), and
    # the record's validation and test scores are that model's.
    best = max(range(3), key=lambda i: (rounds[i]["objective"], -i))
    assert protocol["kept"] == rounds[best]["name"]
    kept = json.loads((tmp_path / "run" / "rounds" / str(best + 1) / "round.json").read_text())
    assert metrics["validation"] == kept["record"]["validation"]
    assert metrics["test"] == kept["record"]["test"]
    assert (tmp_path / "run" / "model.keras").read_bytes() == (
        tmp_path / "run" / "rounds" / str(best + 1) / "model.keras"
    ).read_bytes()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["protocol"] == protocol


def test_kfold_cuts_train_and_validation_into_stratified_folds_and_keeps_test(compose):
    cfg = compose(*FAST, "protocol=kfold", "protocol.folds=4")
    keras.utils.set_random_seed(cfg.seed)
    _, data = load_task_data(cfg)
    rounds = load_protocol(cfg).rounds(data, cfg.seed)
    _, y = data.pooled()
    rows = np.concatenate([r.validation for r in rounds])
    assert sorted(rows.tolist()) == list(range(len(y)))  # each row validates once
    for r in rounds:
        fold = data.recut(r.validation)
        assert len(fold.train[1]) + len(fold.validation[1]) == len(y)
        assert fold.test is data.test
        # Stratified: each fold holds the classes in the proportions of the whole.
        share = np.mean(fold.validation[1]) - np.mean(y)
        assert abs(share) < 0.05


def test_a_seeds_run_trains_each_seed_on_the_same_split(compose, tmp_path):
    cfg = compose(*FAST, "protocol=seeds", "protocol.repeats=2")
    metrics = train(cfg, tmp_path / "run")
    rounds = metrics["protocol"]["rounds"]
    assert [(r["name"], r["seed"]) for r in rounds] == [("seed 42", 42), ("seed 43", 43)]
    assert metrics["protocol"]["repeats"] == 2
    mean, std = _by_hand(metrics)
    assert metrics["objective"]["value"] == pytest.approx(mean, abs=1e-12)
    assert metrics["objective"]["std"] == pytest.approx(std, abs=1e-12)
    assert metrics["seed"] == 42
    sizes = {
        json.loads(p.read_text())["record"]["stages"][-1]["validation"]["loss"] is not None
        for p in (tmp_path / "run" / "rounds").glob("*/round.json")
    }
    assert sizes == {True}


def test_the_holdout_records_no_protocol_and_trains_as_a_run_without_one(compose, tmp_path):
    cfg = compose(*FAST)
    assert cfg.protocol.name == "holdout"
    metrics = train(cfg, tmp_path / "holdout")
    assert "protocol" not in metrics and "std" not in metrics["objective"]
    assert "protocol" not in json.loads((tmp_path / "holdout" / "metrics.json").read_text())
    assert not (tmp_path / "holdout" / "rounds").exists()
    del cfg.protocol  # a config saved before protocols
    train(cfg, tmp_path / "before")
    assert (tmp_path / "holdout" / "metrics.json").read_bytes() == (
        tmp_path / "before" / "metrics.json"
    ).read_bytes()
    assert (tmp_path / "holdout" / "history.csv").read_bytes() == (
        tmp_path / "before" / "history.csv"
    ).read_bytes()


class Stop(Exception):
    """The process dies in the middle of a fold."""


class StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Stop(f"stopped after epoch {epoch + 1}")


@pytest.mark.slow
@pytest.mark.parametrize("config", ["iris", "on features"])
def test_a_kfold_run_stopped_in_fold_2_continues_there_with_the_same_results(
    compose, tmp_path, monkeypatch, config
):
    from framework.run.checkpoint import JobCheckpoint

    overrides = FAST if config == "iris" else ON_FEATURES
    if config == "on features":  # fold 2 a head built alone, then the first build of a process
        overrides += (f"trainer.feature_cache.dir={tmp_path / 'cache'}",)
    cfg = compose(*overrides, "protocol=kfold", "protocol.folds=3", "trainer.checkpoint_interval=0")
    whole = train(cfg, tmp_path / "whole", checkpoint=True)

    fitted, stop = [], [True]
    keep = JobCheckpoint.callbacks

    def callbacks(self, stage):
        fold = self.dir.parent.name  # rounds/<fold>/.resume
        fitted.append(fold)
        chain = keep(self, stage)
        if fold == "2" and stop[0]:  # killed after epoch 2 of fold 2, once it is backed up
            stop[0] = False
            chain.append(StopAfter(2))
        return chain

    monkeypatch.setattr(JobCheckpoint, "callbacks", callbacks)
    with pytest.raises(Stop):
        train(cfg, tmp_path / "job", checkpoint=True)
    assert fitted == ["1", "2"]
    assert (tmp_path / "job" / "rounds" / "1" / "round.json").is_file()
    assert (tmp_path / "job" / "rounds" / "2" / ".resume").is_dir()
    assert not (tmp_path / "job" / "metrics.json").exists()

    fitted.clear()
    metrics = train(cfg, tmp_path / "job", checkpoint=True)  # run again in its directory
    assert fitted == ["2", "3"]  # fold 1 kept; fold 2 continued from its checkpoint
    for key in ("objective", "protocol", "validation", "test", "stages", "epochs"):
        assert metrics[key] == whole[key], key
    assert (tmp_path / "job" / "history.csv").read_bytes() == (
        tmp_path / "whole" / "history.csv"
    ).read_bytes()
    assert not (tmp_path / "job" / "rounds" / "2" / ".resume").exists()
    _assert_same_weights(tmp_path / "job" / "model.keras", tmp_path / "whole" / "model.keras")


def _assert_same_weights(path, other):
    model, other = keras.saving.load_model(path), keras.saving.load_model(other)
    assert [w.path for w in model.weights] == [w.path for w in other.weights]
    for mine, theirs in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_kfold_over_cached_features_builds_heads_alone_as_full_builds_would_start_them(
    compose, tmp_path, monkeypatch
):
    from framework.run import train as training
    from framework.run.evaluation import split_arrays

    built = []
    for name in ("build_model", "build_head"):
        build = getattr(training, name)
        monkeypatch.setattr(
            training,
            name,
            lambda *a, build=build, name=name, **kw: built.append(name) or build(*a, **kw),
        )
    cfg = compose(
        *ON_FEATURES,
        f"trainer.feature_cache.dir={tmp_path / 'cache'}",
        "protocol=kfold",
        "protocol.folds=3",
    )
    metrics = train(cfg, tmp_path / "alone")
    # One full build shows what a build draws before its head; the folds build heads alone, and
    # that full model takes the kept fold's head.
    assert built == ["build_model", "build_head", "build_head", "build_head"]
    rounds = tmp_path / "alone" / "rounds"
    assert sorted(p.name for p in (rounds / "1").iterdir()) == [
        "head.weights.h5",
        "round.json",
        "scores.npz",
    ]

    built.clear()  # no count of draws found: each fold builds its model whole
    monkeypatch.setattr(training, "default_seeds_drawn", lambda before, after: None)
    whole = train(cfg, tmp_path / "whole")
    assert built == ["build_model"] * 4  # three folds and the kept one
    assert json.dumps(whole["protocol"]["rounds"]) == json.dumps(metrics["protocol"]["rounds"])
    for name in ("metrics.json", "history.csv", "summary.txt"):
        assert (tmp_path / "alone" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    _assert_same_weights(tmp_path / "alone" / "model.keras", tmp_path / "whole" / "model.keras")

    # model.keras is the kept fold's: its backbone and trained head predict the test images as
    # the head did on their cached features.
    kept = next(
        i
        for i, r in enumerate(metrics["protocol"]["rounds"], 1)
        if r["name"] == metrics["protocol"]["kept"]
    )
    keras.utils.set_random_seed(cfg.seed)
    _, data = load_task_data(cfg)
    model = keras.saving.load_model(tmp_path / "alone" / "model.keras")
    predicted = model.predict(split_arrays(data.test)[0], verbose=0).argmax(axis=-1)
    with np.load(rounds / str(kept) / "scores.npz") as scores:
        np.testing.assert_array_equal(predicted, scores["test_y_pred"])
    head = model.get_layer("head")
    weights = head.get_weights()
    head.load_weights(rounds / str(kept) / "head.weights.h5")
    for mine, kept_weights in zip(weights, head.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, kept_weights)


@pytest.mark.parametrize("backbone", ["simple_cnn", "mobilenetv2"])
def test_the_default_seeds_a_build_draws_before_its_head_are_as_many_from_any_seed(
    compose, backbone
):
    import random

    from framework.run.model import after_default_seeds, build_model, default_seeds_drawn

    weights = ("backbone.weights=null",) if backbone == "mobilenetv2" else ()
    cfg = compose(*ON_FEATURES, f"backbone={backbone}", *weights)
    _, data = load_task_data(cfg)
    states = {}
    for seed in (3, 7):
        keras.utils.set_random_seed(seed)
        before = random.getstate()
        states[seed] = before, build_model(cfg, data).random_state
    drawn = default_seeds_drawn(*states[3])
    assert drawn  # an initializer's seed for each layer with weights
    before, after = states[7]
    assert after_default_seeds(before, drawn) == after
    assert default_seeds_drawn(before, after) == drawn


@pytest.mark.slow
def test_a_search_with_kfold_ranks_each_trial_by_its_folds_mean(compose, tmp_path, monkeypatch):
    from framework.sweeps import tuner as tuning

    means = []
    objective_over = tuning.objective_over

    def keep(values):
        found = objective_over(values)
        means.append((list(values), found[0]))
        return found

    monkeypatch.setattr(tuning, "objective_over", keep)
    cfg = compose(
        *FAST,
        "protocol=kfold",
        "protocol.folds=2",
        "tuner=random",
        "tuner.max_trials=2",
        "+tuner.space.optimizer.learning_rate={choice:[0.001,0.1]}",
    )
    metrics = tuning.tune(cfg, tmp_path / "run")
    assert len(means) == 2 and all(len(values) == 2 for values, _ in means)
    for values, mean in means:
        assert mean == pytest.approx(sum(values) / 2)
    trials = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert sorted(float(t["val_accuracy"]) for t in trials) == pytest.approx(
        sorted(mean for _, mean in means)
    )
    # The best config, retrained under the same protocol, records its folds.
    assert metrics["protocol"]["folds"] == 2


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (("protocol=kfold", "protocol.folds=1"), ("protocol.folds", "1")),
        (("protocol=seeds", "protocol.repeats=0"), ("protocol.repeats",)),
        (("protocol=kfold", "protocol.folds=500"), ("protocol.folds=500", "at most")),
        (("protocol=nested",), ("protocol", "nested")),
    ],
)
def test_bad_protocol_settings_are_refused_in_one_line(cli, overrides, fragments):
    assert_one_line_error(cli(*FAST, *overrides), *fragments)


def test_the_protocols_are_parts_listed_with_the_others():
    assert registry.protocols.names() == ["holdout", "kfold", "seeds"]
    assert {p.provider for p in registry.protocols} == {"protocols"}


@pytest.mark.slow
def test_kfold_over_a_frozen_backbone_extracts_its_features_once(compose, tmp_path, monkeypatch):
    from framework.run import feature_cache

    extractions = []
    extract = feature_cache.extract
    monkeypatch.setattr(
        feature_cache, "extract", lambda *a, **kw: extractions.append(1) or extract(*a, **kw)
    )
    cfg = compose(
        "experiment=cnn_shapes",
        "dataset.samples_per_class=10",
        "trainer.verbose=0",
        "trainer.stages=[{name:head,epochs:2,trainable:head}]",
        f"trainer.feature_cache.dir={tmp_path / 'cache'}",
        "protocol=kfold",
        "protocol.folds=3",
    )
    metrics = train(cfg, tmp_path / "run")
    assert extractions == [1]  # features are per image: the folds index one extraction
    for path in sorted((tmp_path / "run" / "rounds").glob("*/round.json")):
        assert json.loads(path.read_text())["record"]["stages"][0]["cached_features"] is True
    assert len(metrics["protocol"]["rounds"]) == 3


@pytest.mark.slow
def test_a_refit_trains_on_train_and_validation_for_the_folds_mean_epochs(compose, tmp_path):
    cfg = compose(
        *FAST,
        "trainer.epochs=6",
        "callbacks=[early_stopping]",
        "callbacks.early_stopping.patience=0",
        "callbacks.early_stopping.min_delta=0.5",  # stops each fold after its first epochs
        "protocol=kfold",
        "protocol.folds=2",
        "protocol.refit=true",
    )
    metrics = train(cfg, tmp_path / "run")
    protocol = metrics["protocol"]
    assert protocol["refit"] is True and protocol["kept"] == "refit"
    epochs = [r["epochs"] for r in protocol["rounds"]]
    assert metrics["epochs"] == max(1, round(sum(epochs) / len(epochs)))
    refit = json.loads((tmp_path / "run" / "rounds" / "refit" / "round.json").read_text())
    assert metrics["test"] == refit["record"]["test"]
    # It validates nothing: the record's validation scores are the folds' mean.
    assert metrics["validation"] == protocol["validation"]["mean"]
    assert "validation" not in refit["record"]["stages"][0]


@pytest.mark.slow
def test_a_refit_over_cached_image_features_shows_the_test_images_it_got_wrong(compose, tmp_path):
    cfg = compose(
        *ON_FEATURES,
        f"trainer.feature_cache.dir={tmp_path / 'cache'}",
        "protocol=kfold",
        "protocol.folds=2",
        "protocol.refit=true",
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["protocol"]["kept"] == "refit" and metrics["evaluated_on"] == "test"
    # It validated nothing: its grid is of the test split's images.
    assert (tmp_path / "run" / "misclassified.png").is_file()


def test_a_sweep_summary_shows_a_protocols_mean_and_std(tmp_path):
    from framework.sweeps.summary import columns, format_table

    job = {
        "job": 0,
        "status": "finished",
        "varied": "protocol=kfold",
        "headline": "accuracy",
        "objective": "val_accuracy",
        "objective_value": 0.95,
        "objective_std": 0.0125,
        "direction": "max",
        "test_accuracy": 0.9,
    }
    holdout = {k: v for k, v in job.items() if k != "objective_std"} | {"job": 1}
    assert "0.9500 ± 0.0125" in format_table([job, holdout])
    assert "objective_std" in columns([job, holdout])
    assert "objective_std" not in columns([holdout])  # a holdout sweep's summary.csv unchanged
