"""The model card: written as a run finishes, from the run dir's own files; rewritten by
``python -m framework.card RUN``, which imports no TensorFlow."""

import json
import re
import shutil
import subprocess

import pytest

from framework.card import main
from framework.run.card import CARD, render_card
from framework.run.record import RunRecord, read_record
from framework.runtime import environment as environment_module

from conftest import assert_one_line_error, run_cli, run_importing, run_main

CLASSES = ["setosa", "versicolor", "virginica"]
OVERRIDES = ("experiment=iris_multiclass", "trainer.epochs=2", "trainer.verbose=0")

# The record of a real regression run (experiment=diabetes_regression, 2 epochs) as an older
# version wrote it: no environment, no input shape. It has no .hydra/ beside it.
REGRESSION = {
    "test": {
        "loss": 0.6883,
        "mae": 54.4103,
        "rmse": 65.1921,
        "r2": 0.1978,
        "samples": 89,
        "per_target": {"progression": {"mae": 54.4103, "rmse": 65.1921, "r2": 0.1978}},
    },
    "evaluated_on": "test",
    "validation": {"loss": 0.8162, "mae": 59.0893, "rmse": 70.9921, "r2": 0.0626},
    "stages": [
        {
            "stage": "train",
            "trainable": "all",
            "cached_features": False,
            "optimizer": {"name": "adam", "learning_rate": 0.001, "momentum": 0.0},
            "validation": {"loss": 0.8162, "mae": 59.0893},
            "test": {"loss": 0.6883, "mae": 54.4103},
        }
    ],
    "epochs": 2,
    "model": {"name": "mlp_dense", "params": 193},
    "data": {
        "name": "diabetes",
        "task": "regression",
        "targets": ["progression"],
        "target_scaling": {"mean": [153.5], "scale": [77.4]},
        "samples": 442,
        "train": 282,
        "validation": 71,
        "test": 89,
    },
    "seed": 42,
    "devices": None,
    "execution": None,
    "objective": {"name": "val_mae", "value": 59.0893, "direction": "min"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished classification run of ``python -m framework`` (so with its .hydra/)."""
    root = tmp_path_factory.mktemp("card")
    result = run_cli(*OVERRIDES, "hydra.run.dir=run", cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "run"


def card_command(*args) -> subprocess.CompletedProcess:
    """Runs framework.card in this process."""
    return run_main(main, *args)


def table_rows(card: str, after: str) -> dict[str, list[str]]:
    """The rows of the first table after the line ``after``, by their first cell."""
    lines = card[card.index(after + "\n") :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow  # the run, once per module
def test_a_runs_card_holds_its_data_model_training_scores_and_command(run):
    card = (run / CARD).read_text()
    record = read_record(run)
    data = table_rows(card, "## Data")
    assert data["Classes (3)"] == [", ".join(CLASSES)]
    sizes = ", ".join(f"{s} {record.data[s]}" for s in ("train", "validation", "test"))
    assert data["Split sizes"] == [f"{sizes} (of {record.data['samples']} samples)"]
    model = table_rows(card, "## Model")
    assert model["Parameters"] == [f"{record.model['params']:,}"]
    assert model["Input shape"] == ["4"] and record.model["input_shape"] == [4]
    assert model["Backbone"] == ["mlp (units [8, 4], activation relu)"]
    per_class = table_rows(card, "Per class, on the test split:")
    assert list(per_class) == CLASSES
    for name in CLASSES:
        scores = record.test["per_class"][name]
        assert per_class[name] == [
            f"{scores['precision']:.4f}",
            f"{scores['recall']:.4f}",
            f"{scores['f1']:.4f}",
            str(scores["support"]),
        ]
    scores = table_rows(card, "## Scores")
    assert scores["accuracy"] == [
        f"{record.validation['accuracy']:.4f}",
        f"{record.test['accuracy']:.4f}",
    ]
    assert table_rows(card, "Stages:")["train"][:2] == ["2", "everything"]
    machine = table_rows(card, "## Machine and libraries")
    assert machine["Backend"] == ["tensorflow"]
    assert machine["Python"] == [record.environment["python"]]
    assert f"keras {record.environment['libraries']['keras']}" in machine["Libraries"][0]
    assert "```sh\npython -m framework " + " ".join(OVERRIDES) + "\n```" in card
    assert "holdout: one model" in card and "not recorded" not in card


@pytest.mark.slow  # the run, once per module
def test_the_command_writes_a_deleted_card_again_byte_for_byte(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")  # the same name: the card's title
    written = (copy / CARD).read_bytes()
    (copy / CARD).unlink()
    result = card_command(copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"{CARD}") and not result.stderr
    assert (copy / CARD).read_bytes() == written
    before = json.loads((copy / "metrics.json").read_text())
    assert card_command(copy).returncode == 0  # rewritten as it is: nothing else touched
    assert (copy / CARD).read_bytes() == written
    assert json.loads((copy / "metrics.json").read_text()) == before


def test_an_older_regression_run_gets_a_card_with_a_table_per_target(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(REGRESSION))
    assert card_command(tmp_path).returncode == 0
    card = (tmp_path / CARD).read_text()
    assert table_rows(card, "## Data")["Targets (1)"] == ["progression"]
    assert table_rows(card, "## Data")["Split sizes"] == [
        "train 282, validation 71, test 89 (of 442 samples)"
    ]
    assert table_rows(card, "Per target, on the test split:") == {
        "progression": ["54.4103", "65.1921", "0.1978"]
    }
    assert table_rows(card, "## Scores")["mae"] == ["59.0893", "54.4103"]
    model = table_rows(card, "## Model")
    assert model["Parameters"] == ["193"] and model["Input shape"] == ["not recorded"]
    assert model["Backbone"] == ["not recorded"]  # no .hydra/config.yaml
    machine = table_rows(card, "## Machine and libraries")
    assert machine["Backend"] == machine["Libraries"] == machine["Devices"] == ["not recorded"]
    assert "not recorded: the run has no .hydra/overrides.yaml" in card


def test_a_run_without_a_test_split_shows_its_final_evaluation_in_a_column_of_its_own(tmp_path):
    record = {**REGRESSION, "evaluated_on": "validation"}
    record["test"] = {**REGRESSION["test"], "mae": 58.5, "samples": 71}
    (tmp_path / "metrics.json").write_text(json.dumps(record))
    assert card_command(tmp_path).returncode == 0
    scores = table_rows((tmp_path / CARD).read_text(), "## Scores")
    assert scores["mae"] == ["59.0893", "58.5000"]
    assert all(len(cells) == 2 for cells in scores.values())


def test_a_protocols_card_shows_its_rounds_mean_and_std(tmp_path):
    record = dict(REGRESSION)
    rounds = [
        {"name": f"fold {i}", "seed": 41 + i, "epochs": 2, "objective": v, "validation": {"mae": v}}
        for i, v in ((1, 50.0), (2, 60.0))
    ]
    record["objective"] = {**record["objective"], "value": 55.0, "std": 5.0}
    record["protocol"] = {
        "name": "kfold",
        "folds": 2,
        "refit": False,
        "kept": "fold 1",
        "rounds": rounds,
        "validation": {"mean": {"mae": 55.0}, "std": {"mae": 5.0}},
    }
    card = render_card(tmp_path, RunRecord(**record))
    assert "kfold (folds 2): 2 models; kept fold 1." in card
    table = table_rows(card, "## Protocol")
    assert table["fold 2"] == ["43", "2", "60.0000", "60.0000"]
    assert table["mean"] == ["", "", "55.0000", "55.0000"]
    assert table["std"] == ["", "", "5.0000", "5.0000"]
    objective = table_rows(card, "## Training")["Objective"]
    assert objective == ["val_mae (minimize): 55.0000 ± 5.0000 (mean ± std of the models)"]


@pytest.mark.slow  # the run, once per module
def test_a_searchs_card_shows_the_best_trials_settings_and_command(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")
    command = "python -m framework experiment=iris_multiclass '~tuner' '++backbone.units=[32]'"
    (copy / "best_overrides.yaml").write_text(
        json.dumps({"settings": {"backbone.units": [32]}, "command": command})
    )
    card = render_card(copy, read_record(copy))
    assert table_rows(card, "## Model")["Backbone"] == ["mlp (units [32], activation relu)"]
    assert card.endswith(f"without the tuner:\n\n```sh\n{command}\n```\n")


@pytest.mark.parametrize(
    "setup, why",
    [
        (lambda d: d, "is not a directory"),
        (lambda d: d.mkdir(), "is not a finished run (no metrics.json)"),
        (lambda d: (d.mkdir(), (d / "FAILED").write_text("x")), "(it failed: see its FAILED)"),
        (lambda d: (d.mkdir(), (d / "metrics.json").write_text("{")), "is damaged"),
    ],
)
def test_a_dir_that_is_not_a_finished_run_is_refused_in_one_line(tmp_path, setup, why):
    setup(tmp_path / "dir")
    result = card_command(tmp_path / "dir")
    assert_one_line_error(result, why)
    assert not (tmp_path / "dir" / CARD).exists()


@pytest.mark.slow  # the run, once per module
def test_the_command_imports_no_tensorflow_or_keras(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")
    result, imported = run_importing("-m", "framework.card", str(copy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "framework.run.card" in imported
    assert not {"tensorflow", "keras", "jax"} & imported
    assert (copy / CARD).read_text() == (run / CARD).read_text()


def test_the_gpus_are_named_as_nvidia_smi_lists_them(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3'\necho 'NVIDIA H100 80GB HBM3'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert environment_module._gpu_names() == ["NVIDIA H100 80GB HBM3"] * 2
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert environment_module._gpu_names() == []
    found = environment_module.environment()
    assert re.fullmatch(r"3\.\d+\.\d+", found["python"]) and found["cpus"] >= 1
    assert "keras" in found["libraries"] and "numpy" in found["libraries"]
