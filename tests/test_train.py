"""The core pipeline end to end, in process: files of a run, save/load, reproducibility."""

import json

import keras
import numpy as np
import pytest

from framework.run.train import train

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends

QUICK = ["trainer.epochs=3", "trainer.verbose=0"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import compose_config

    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config("experiment=iris_multiclass", *QUICK)
    return cfg, run_dir, train(cfg, run_dir)


def test_run_directory_holds_every_output(finished_run):
    _, run_dir, metrics = finished_run
    for name in ("model.keras", "metrics.json", "history.csv", "curves.png", "summary.txt"):
        assert (run_dir / name).stat().st_size > 0, name
    assert not (run_dir / "FAILED").exists()
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "stage"] and len(history) == 1 + 3
    summary = (run_dir / "summary.txt").read_text()
    assert "Total params" in summary and "dense_1" in summary and "predictions" in summary


def test_metrics_hold_test_scores_per_class_and_macro(finished_run):
    _, _, metrics = finished_run
    test = metrics["test"]
    assert metrics["evaluated_on"] == "test" and test["samples"] == 30
    assert 0 <= test["accuracy"] <= 1 and test["loss"] > 0
    assert set(test["per_class"]) == {"setosa", "versicolor", "virginica"}
    for scores in (*test["per_class"].values(), test["macro"]):
        assert {"precision", "recall", "f1"} <= set(scores)
    assert sum(s["support"] for s in test["per_class"].values()) == 30
    assert metrics["stages"][-1]["test"]["accuracy"] == test["accuracy"]


@pytest.mark.slow
def test_output_layer_and_loss_follow_the_task(finished_run, compose, tmp_path):
    cfg, run_dir, _ = finished_run
    model = keras.saving.load_model(run_dir / "model.keras")
    out = model.get_layer("head").get_layer("predictions")
    assert (out.units, out.activation.__name__) == (3, "softmax")
    assert model.loss == "categorical_crossentropy"  # one-hot labels in this experiment
    binary = train(compose("experiment=iris_binary", *QUICK), tmp_path / "b")
    model = keras.saving.load_model(tmp_path / "b" / "model.keras")
    out = model.get_layer("head").get_layer("predictions")
    assert (out.units, out.activation.__name__) == (1, "sigmoid")
    assert model.loss == "binary_crossentropy"
    assert binary["data"]["classes"] == ["other", "setosa"]
    train(compose("dataset=wine", "backbone=mlp", "head=dense", *QUICK), tmp_path / "w")
    model = keras.saving.load_model(tmp_path / "w" / "model.keras")
    assert model.loss == "sparse_categorical_crossentropy"


def test_saved_model_matches_the_architecture_of_its_config(compose, tmp_path):
    from framework.parts.registry import datasets
    from framework.run.model import build_model

    cfg = compose("experiment=wine_dropout_l2", *QUICK)
    train(cfg, tmp_path)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    # The architecture rebuilt from the config, given the saved weights, predicts the same.
    data = datasets.get("wine").build(cfg.dataset, None)
    x_test = data.test[0]
    rebuilt = build_model(cfg, data).model
    rebuilt.set_weights(loaded.get_weights())
    np.testing.assert_allclose(
        rebuilt.predict(x_test, verbose=0), loaded.predict(x_test, verbose=0), rtol=1e-6, atol=1e-6
    )


def test_model_before_saving_and_after_loading_agree(compose, tmp_path, kept_model):
    cfg = compose("experiment=iris_dropout", *QUICK)
    train(cfg, tmp_path)
    from framework.parts.registry import datasets

    x = datasets.get("iris").build(cfg.dataset, None).test[0]
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        kept_model["model"].predict(x, verbose=0),
        loaded.predict(x, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.slow
def test_same_config_twice_gives_the_same_metrics(compose, tmp_path):
    cfg = compose("experiment=wine", "trainer.epochs=5", "trainer.verbose=0")
    first = train(cfg, tmp_path / "one")
    second = train(cfg, tmp_path / "two")
    assert first["test"] == second["test"] and first["stages"] == second["stages"]
    assert (tmp_path / "one" / "history.csv").read_text() == (
        tmp_path / "two" / "history.csv"
    ).read_text()
    other = train(
        compose("experiment=wine", "trainer.epochs=5", "trainer.verbose=0", "seed=0"),
        tmp_path / "three",
    )
    assert other["test"]["loss"] != first["test"]["loss"]  # seed 0 seeds too, differently


def test_failed_run_is_marked_and_has_no_metrics(compose, tmp_path):
    from framework.errors import UserError

    cfg = compose("dataset=csv", f"dataset.path={tmp_path / 'missing.csv'}", "dataset.target=y")
    with pytest.raises(UserError, match="missing.csv"):
        train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "FAILED").read_text().startswith("UserError: CSV file not found")
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["optimizer=sgd"], {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}),
        (["optimizer.name=sgd"], {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}),
        (
            ["optimizer.name=sgd", "optimizer.learning_rate=0.05"],
            {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        ),
        (
            ["optimizer=rmsprop", "optimizer.momentum=0.5"],
            {"name": "rmsprop", "learning_rate": 0.001, "momentum": 0.5},
        ),
        ([], {"name": "adam", "learning_rate": 0.001, "momentum": 0.0}),
    ],
)
def test_an_optimizer_by_group_or_by_name_runs_with_the_same_settings(compose, overrides, expected):
    from framework.config.optimizers import make_optimizer, optimizer_settings

    cfg = compose("experiment=wine", *overrides).optimizer
    assert optimizer_settings(cfg.name, cfg.learning_rate, cfg.momentum) == expected
    optimizer = make_optimizer(cfg.name, cfg.learning_rate, cfg.momentum)
    assert float(optimizer.learning_rate) == pytest.approx(expected["learning_rate"])


def test_metrics_record_the_optimizer_each_stage_used(finished_run):
    _, _, metrics = finished_run
    assert metrics["stages"][0]["optimizer"] == {
        "name": "adam",
        "learning_rate": 0.001,
        "momentum": 0.0,
    }


def test_metrics_hold_the_objective_on_the_validation_split(finished_run):
    _, _, metrics = finished_run
    assert metrics["objective"] == {
        "name": "val_accuracy",
        "direction": "max",
        "value": metrics["validation"]["accuracy"],
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, reused",
    [
        # Dropout in its head, whose rate the compiled model takes as a variable.
        (["experiment=cnn_shapes", "dataset.samples_per_class=10", "head.dropout=0.3"], 2),
        # model.keras saved compiled with other metrics: each job's model compiled anew.
        (["experiment=diabetes_regression"], 0),
    ],
)
def test_sweep_jobs_in_one_process_reuse_a_compiled_model_and_train_as_runs_alone(
    compose, tmp_path, experiment, reused
):
    from framework.run.compiled_heads import CompiledHeads

    rates = ("0.001", "0.003", "0.01")
    configs = [
        compose(
            *experiment, "trainer.epochs=2", "trainer.verbose=0", f"optimizer.learning_rate={r}"
        )
        for r in rates
    ]
    models = CompiledHeads(size=2)  # as a sweep's jobs in one process have it
    for number, cfg in enumerate(configs):
        train(cfg, tmp_path / "sweep" / str(number), compiled_heads=models)
    assert models.reused == reused
    for number, cfg in enumerate(configs):
        train(cfg, tmp_path / "alone" / str(number))
    for number in map(str, range(len(rates))):
        sweep, alone = tmp_path / "sweep" / number, tmp_path / "alone" / number
        for name in ("metrics.json", "history.csv", "summary.txt"):
            assert (sweep / name).read_bytes() == (alone / name).read_bytes(), (number, name)
        # model.keras: the trained weights and the optimizer's state, as trained.
        saved = [keras.saving.load_model(run / "model.keras") for run in (sweep, alone)]
        for variables in (lambda m: m.weights, lambda m: m.optimizer.variables):
            pairs = zip(*(variables(m) for m in saved), strict=True)
            assert all(np.array_equal(a, b) for a, b in pairs)
