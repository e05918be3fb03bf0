"""Tasks as parts: classification, regression and multilabel, chosen by ``task=`` or from the
targets under ``task=auto``, and a third party's task registered with the same hook."""

import csv
import json
from dataclasses import dataclass

import numpy as np
import pytest

from framework.api import Targets, Task, UserError, encode_targets, hookimpl
from framework.run.train import load_data, train
from framework_plugins.datasets.sample_csv import houses, tags

from conftest import assert_one_line_error

# The tests that train in this process also run on Keras's JAX backend (make test's second
# pass): marked backends.


def write_csv(path, kind, rows=200):
    header, body = kind(rows, seed=7)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(body)
    return path


@pytest.fixture(scope="module")
def houses_csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "houses.csv", houses)


@pytest.fixture(scope="module")
def regression_run(houses_csv, tmp_path_factory):
    from framework.run import train as train_module

    from conftest import compose_config

    kept = {}
    save = train_module._save_model
    train_module._save_model = lambda model, run_dir: (
        kept.update(model=model),
        save(model, run_dir),
    )
    try:
        cfg = compose_config(
            "dataset=csv",
            f"dataset.path={houses_csv}",
            "dataset.target=price",
            "trainer.epochs=4",
            "trainer.verbose=0",
        )
        run_dir = tmp_path_factory.mktemp("run")
        metrics = train(cfg, run_dir)
    finally:
        train_module._save_model = save
    return cfg, run_dir, metrics, kept["model"]


@pytest.mark.backends
def test_a_numeric_price_is_regression_with_scores_in_its_own_units(regression_run):
    cfg, run_dir, metrics, model = regression_run
    assert metrics["data"]["task"] == "regression" and metrics["data"]["targets"] == ["price"]
    # The model trains on standardized prices; every number reported is back in thousands.
    raw = load_data(cfg)  # the targets as the file holds them, not yet standardized
    x, prices = raw.test
    scaling = metrics["data"]["target_scaling"]
    predicted = model.predict(x, verbose=0)[:, 0] * scaling["scale"][0] + scaling["mean"][0]
    error = predicted - prices[:, 0]
    test = metrics["test"]
    assert test["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-4)
    assert test["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-4)
    total = np.sum((prices[:, 0] - prices[:, 0].mean()) ** 2)
    assert test["r2"] == pytest.approx(1 - np.sum(error**2) / total, abs=1e-4)
    assert test["mae"] > 5 * abs(test["loss"])  # thousands, not standard deviations
    for name in ("predicted_vs_true.png", "residuals.png", "curves.png"):
        assert (run_dir / name).stat().st_size > 0
    assert not (run_dir / "confusion_matrix.png").exists()


@pytest.mark.backends
def test_the_epochs_metrics_are_in_the_targets_units_too(regression_run):
    _, run_dir, metrics, _ = regression_run
    last = list(csv.DictReader((run_dir / "history.csv").open()))[-1]
    # The saved model is the last epoch's: its evaluation and the epoch's logs agree.
    for name in ("mae", "rmse", "r2"):
        assert float(last[f"val_{name}"]) == pytest.approx(metrics["validation"][name], rel=1e-3)
    assert metrics["objective"] == {
        "name": "val_mae",
        "direction": "min",
        "value": metrics["validation"]["mae"],
    }


def rows_file(path, source, columns, count):
    """The first ``count`` rows of a CSV file, with only ``columns``."""
    rows = list(csv.DictReader(source.open()))[:count]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([row[c] for c in columns] for row in rows)
    return path


@pytest.mark.backends
def test_predict_prints_a_new_rows_price_in_its_units_and_writes_it(
    regression_run, houses_csv, tmp_path, capsys
):
    import keras

    from framework.deploy.rows import read_rows
    from framework.predict import main
    from framework_plugins.datasets.tabular import encode_rows

    _, run_dir, metrics, _ = regression_run
    features = ["area_m2", "rooms", "age_years", "distance_km", "neighbourhood"]
    one = rows_file(tmp_path / "one.csv", houses_csv, features, 1)
    main([str(run_dir), str(one), "--output", str(tmp_path / "one_predicted.csv")])
    # model.keras loads in plain Keras (no class of ours in it) and predicts the same price.
    model = keras.saving.load_model(run_dir / "model.keras")
    x = encode_rows(metrics["data"], *read_rows(one), "one.csv")
    scaling = metrics["data"]["target_scaling"]
    price = float(model.predict(x, verbose=0)[0, 0]) * scaling["scale"][0] + scaling["mean"][0]
    assert capsys.readouterr().out.splitlines()[0] == f"Prediction: {price:.6g}"
    written = list(csv.DictReader((tmp_path / "one_predicted.csv").open()))
    assert float(written[0]["price"]) == pytest.approx(price, rel=1e-5)
    assert list(written[0]) == [*features, "price"]


@pytest.mark.parametrize(
    "columns, fragments",
    [
        (
            ["area_m2", "rooms", "age_years", "neighbourhood"],
            ["no column 'distance_km'", "needs: area_m2, rooms"],
        ),
    ],
)
def test_rows_without_a_column_the_model_needs_are_refused_in_one_line(
    regression_run, houses_csv, tmp_path, capsys, columns, fragments
):
    from framework.predict import main

    rows = rows_file(tmp_path / "rows.csv", houses_csv, columns, 3)
    with pytest.raises(SystemExit) as e:
        main([str(regression_run[1]), str(rows), "--output", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    for fragment in fragments:
        assert fragment in err[0]
    assert not (tmp_path / "out.csv").exists()


def test_the_numeric_csv_says_it_chose_regression_in_one_line(cli, houses_csv):
    result = cli(
        "dataset=csv",
        f"dataset.path={houses_csv}",
        "dataset.target=price",
        "trainer.epochs=1",
        "trainer.verbose=0",
    )
    assert result.returncode == 0, result.stderr
    distinct = len({float(row["price"]) for row in csv.DictReader(houses_csv.open())})
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: task")]
    assert notes == [
        f"note: task regression: target 'price' is numeric with {distinct} distinct "
        "values (choose another with task=classification)"
    ]
    assert "MAE" in result.stdout and "R²" in result.stdout


@pytest.mark.parametrize(
    "columns, task, names, said",
    [
        ({"species": ["b", "a", "b"]}, None, ["a", "b"], False),
        ({"grade": ["10", "2", "3", "2"]}, None, ["2", "3", "10"], True),
        ({"price": [str(i * 1.5) for i in range(30)]}, "regression", ["price"], True),
        ({"a": ["0", "1", "1"], "b": ["1", "0", "1"]}, "multilabel", ["a", "b"], True),
        ({"a": ["1.5", "2", "3"], "b": ["4", "5", "6.5"]}, "regression", ["a", "b"], True),
    ],
)
def test_auto_picks_the_task_from_the_values(columns, task, names, said, capsys):
    targets = encode_targets("auto", columns, "f.csv")
    assert (targets.task, targets.names) == (task, names)
    assert targets.stratify is (task is None)
    assert ("note: task" in capsys.readouterr().out) is said


@dataclass
class GradesConfig:
    pass


class Grades(Task):
    """Letter grades: a third party's task that task=auto asks, in its declared order."""

    kinds = ("grades",)
    auto = True
    auto_order = 60  # before classification (100), which would take the letters as classes

    def takes_targets(self, columns):
        cells = {c for values in columns.values() for c in values}
        return "letter grades" if len(columns) == 1 and cells <= set("ABCDF") else None

    def encode(self, columns, source):
        ((name, cells),) = columns.items()
        return Targets(np.array(["ABCDF".index(c) for c in cells]), [name], "grades")


class GradesPlugin:
    @hookimpl
    def register_tasks(self, register):
        register("grades", Grades, GradesConfig())


@pytest.mark.parametrize("order, task", [(60, "grades"), (200, None)])
def test_a_third_party_task_takes_part_in_auto_in_its_declared_order(
    isolated_registries, monkeypatch, capsys, order, task
):
    from framework.parts.loading import register_plugins

    monkeypatch.setattr(Grades, "auto_order", order)
    register_plugins([("grades_plugin", GradesPlugin())])
    targets = encode_targets("auto", {"grade": ["A", "C", "A"]}, "f.csv")
    assert targets.task == task  # None: classification's class labels
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    if task:
        assert notes == [
            "note: task grades: letter grades (choose another with task=classification)"
        ]
    else:
        assert targets.names == ["A", "C"] and notes == []


def test_targets_that_no_task_takes_under_auto_are_refused_in_one_line(isolated_registries):
    del isolated_registries["task"]._parts["classification"]  # the one that takes text
    with pytest.raises(UserError) as e:
        encode_targets("auto", {"species": ["a", "b"]}, "f.csv")
    assert str(e.value) == (
        "task=auto finds no task that takes the target columns of f.csv (species); choose one "
        "with task=: multilabel, regression"
    )


@pytest.mark.parametrize(
    "task, columns, fragments",
    [
        (
            "regression",
            {"species": ["a", "b"]},
            ["'species'", "non-numeric value 'a'", "task=classification"],
        ),
        ("multilabel", {"a": ["0", "1"], "b": ["2", "0"]}, ["'b'", "holds '2'", "0 or 1"]),
        ("multilabel", {"a": ["0", "1"]}, ["two or more"]),
        ("classification", {"a": ["x", "y"], "b": ["y", "x"]}, ["one target column", "multilabel"]),
        ("auto", {"a": ["x", "y"], "b": ["1", "0"]}, ["one target column", "regression"]),
    ],
)
def test_targets_that_fit_no_task_are_refused_in_one_line(task, columns, fragments):
    with pytest.raises(UserError) as e:
        encode_targets(task, columns, "f.csv")
    assert "\n" not in str(e.value)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_prices_taken_as_classes_are_refused_in_one_short_line(cli, houses_csv):
    result = cli(
        "dataset=csv",
        f"dataset.path={houses_csv}",
        "dataset.target=price",
        "task=classification",
        "trainer.epochs=1",
    )
    assert_one_line_error(result, "has 1 example", "at least 2 of each class", "task=regression")
    assert len(result.stderr) < 300


def test_rows_for_a_run_not_trained_on_a_csv_file_are_refused_in_one_line(cli, tmp_path):
    from conftest import compose_config

    run_dir = tmp_path / "iris"
    train(
        compose_config("experiment=iris_binary", "trainer.epochs=1", "trainer.verbose=0"), run_dir
    )
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    result = cli("iris", "rows.csv", module="framework.predict")
    assert_one_line_error(result, "was not trained on a CSV file")


def test_a_task_setting_under_auto_asks_for_the_task_in_one_line(cli):
    result = cli("dataset=diabetes", "task.loss=huber")
    assert_one_line_error(
        result, "task.loss is a setting of a chosen task", "task=regression task.loss=..."
    )


def test_a_task_that_does_not_fit_the_dataset_names_those_that_do(compose, tmp_path):
    with pytest.raises(
        UserError,
        match="task 'regression' does not fit dataset 'iris', whose "
        "targets are multiclass; accepted: classification",
    ):
        train(compose("dataset=iris", "task=regression", "trainer.epochs=1"), tmp_path / "r")


def test_an_objective_of_another_task_is_refused(compose, tmp_path):
    with pytest.raises(
        UserError,
        match="unknown trainer.objective 'val_mae'; accepted: "
        "val_loss, val_accuracy, loss, accuracy$",
    ):
        train(compose("experiment=iris_binary", "trainer.objective=val_mae"), tmp_path / "r")


@pytest.mark.slow
@pytest.mark.backends
def test_the_multilabel_experiment_scores_each_label(compose, tmp_path):
    path = write_csv(tmp_path / "tags.csv", tags, rows=300)
    metrics = train(
        compose(
            "experiment=multilabel_csv",
            f"dataset.path={path}",
            "trainer.epochs=5",
            "trainer.verbose=0",
        ),
        tmp_path / "run",
    )
    test = metrics["test"]
    assert metrics["data"]["labels"] == ["sports", "politics", "tech"]
    assert set(test["per_label"]) == {"sports", "politics", "tech"}
    f1 = [test["per_label"][name]["f1"] for name in ("sports", "politics", "tech")]
    assert test["macro_f1"] == pytest.approx(np.mean(f1))
    assert 0 < test["macro_f1"] <= 1 and 0 <= test["exact_match"] <= 1
    assert sum(label["support"] for label in test["per_label"].values()) > 0
    assert (tmp_path / "run" / "label_scores.png").stat().st_size > 0
    assert metrics["objective"]["name"] == "val_macro_f1"

    from framework.predict import main

    rows = rows_file(tmp_path / "rows.csv", path, [f"x{i}" for i in range(1, 7)], 4)
    main([str(tmp_path / "run"), str(rows), "--output", str(tmp_path / "labels.csv")])
    written = list(csv.DictReader((tmp_path / "labels.csv").open()))
    for row in written:  # the labels present are those whose probability is above 0.5
        present = [n for n in ("sports", "politics", "tech") if float(row[f"p_{n}"]) > 0.5]
        assert row["labels"].split() == present


@pytest.mark.slow
def test_a_regression_sweep_ranks_its_jobs_by_validation_mae_lowest_first(cli, tmp_path):
    result = cli(
        "-m",
        "experiment=diabetes_regression",
        "trainer.epochs=1,12",
        "trainer.verbose=0",
        "hydra.sweep.dir=sweep",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    maes = {
        row["job"]: json.loads((tmp_path / "sweep" / row["job"] / "metrics.json").read_text())[
            "validation"
        ]["mae"]
        for row in rows
    }
    assert [float(row["objective_value"]) for row in rows] == sorted(maes.values())
    assert [row["objective"] for row in rows] == ["val_mae", "val_mae"]
    assert [float(row["validation_mae"]) for row in rows] == [maes[r["job"]] for r in rows]
    assert rows[0]["job"] == "1"  # 12 epochs beat 1
    assert "best val_mae first" in result.stdout and "test mae" in result.stdout


@dataclass
class OrdinalConfig:
    pass


class Ordinal(Task):
    """Ordered classes as one number: a linear unit, rounded to the nearest class."""

    kinds = ("binary", "multiclass")
    metric_names = ("mae",)
    default_objective = "val_mae"

    def output_layer(self, ctx, data, one_hot, dtype):
        return ctx.dense(1, "linear", name="predictions", dtype=dtype)

    def loss(self, data, one_hot):
        return "mean_squared_error"

    def metrics(self, data):
        return ["mae"]

    def evaluate(self, model, split, data, batch_size):
        from framework.api import predict_split

        outputs, y = predict_split(model, split, batch_size)
        y = np.asarray(y, float).reshape(-1)
        rank = np.clip(np.rint(outputs[:, 0]), 0, len(data.class_names) - 1)
        return {
            "loss": float(np.mean((outputs[:, 0] - y) ** 2)),
            "mae": float(np.mean(np.abs(outputs[:, 0] - y))),
            "exact": float(np.mean(rank == y)),
            "samples": len(y),
        }

    def score_lines(self, metrics):
        test = metrics["test"]
        return [f"Ordinal:   MAE {test['mae']:.4f}  exact {test['exact']:.4f}"]


class OrdinalPlugin:
    @hookimpl
    def register_tasks(self, register):
        register("ordinal", Ordinal, OrdinalConfig())


@pytest.mark.slow
def test_a_third_party_task_registers_with_the_same_hook(
    isolated_registries, compose, tmp_path, capsys
):
    from framework.parts.loading import register_plugins
    from framework.parts.tasks import task_of_run

    register_plugins([("ordinal_plugin", OrdinalPlugin())])
    assert isolated_registries["task"].get("ordinal").provider == "ordinal_plugin"
    metrics = train(
        compose("dataset=wine", "task=ordinal", "trainer.epochs=3", "trainer.verbose=0"),
        tmp_path / "run",
    )
    assert metrics["objective"] == {
        "name": "val_mae",
        "direction": "min",
        "value": metrics["validation"]["mae"],
    }
    assert set(metrics["test"]) == {"loss", "mae", "exact", "samples"}
    assert "Ordinal:   MAE" in capsys.readouterr().out
    # Its runs say whose they are; task=auto still takes the built-in classification for classes.
    assert isinstance(task_of_run(metrics), Ordinal)
    auto = train(
        compose("dataset=wine", "trainer.epochs=1", "trainer.verbose=0"), tmp_path / "auto"
    )
    assert "task_name" not in auto["data"] and auto["objective"]["name"] == "val_accuracy"
    assert task_of_run(auto).name == "classification"


@pytest.mark.slow
def test_the_plugin_test_kit_checks_a_regression_dataset(tmp_path):
    from framework.testing import check_part

    metrics = check_part("dataset", "diabetes", tmp_path)
    assert metrics["data"]["task"] == "regression"


@pytest.mark.parametrize(
    "target, fragment",
    [
        ("[]", "dataset.target is an empty list"),
        ("5", "target column '5' is not in"),
    ],
)
def test_a_target_that_names_no_column_is_refused_in_one_line(cli, houses_csv, target, fragment):
    result = cli("dataset=csv", f"dataset.path={houses_csv}", f"dataset.target={target}")
    assert_one_line_error(result, fragment)
