"""framework.predict round trip: train on a shapes folder tree, predict images and folders."""

import contextlib
import csv
import io
import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from framework import predict as predict_module
from framework.api import hookimpl
from framework.deploy.predictions import writable_folder_check
from framework.errors import UserError
from framework.predict import main
from framework.run.record import write_record
from framework.run.train import train
from framework_plugins.datasets.shapes import write_shapes_tree

from conftest import run_cli
from test_run_record import RECORD

TREE = {"num_classes": 3, "samples_per_class": 300, "image_size": (32, 32)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import compose_config

    root = tmp_path_factory.mktemp("predict")
    write_shapes_tree(root / "shapes", seed=42, **TREE)
    cfg = compose_config(
        "experiment=cnn_multiclass",
        f"dataset.path={root / 'shapes'}",
        "backbone.input_size=[32,32]",
        "trainer.epochs=6",
        "trainer.verbose=0",
    )
    metrics = train(cfg, root / "run")
    return root, metrics


def predict(root, *args, run_dir=None):
    """Runs framework.predict in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(run_dir or root / "run"), *map(str, args)])
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess([], code, out.getvalue(), err.getvalue())


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_folder_predictions_match_the_evaluation(trained):
    root, metrics = trained
    result = predict(root, root / "shapes" / "test", "--output", root / "test.csv")
    assert result.returncode == 0, result.stderr
    rows = read_rows(root / "test.csv")
    assert len(rows) == metrics["test"]["samples"] == 180
    accuracy = sum(r["class"] == r["true_class"] for r in rows) / len(rows)
    # The same images the run evaluated, read back from disk: the same answers.
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    assert f"Accuracy:  {accuracy:.4f}" in result.stdout
    assert {r["class"] for r in rows} <= {"circle", "square", "triangle"}
    assert all(0 < float(r["confidence"]) <= 1 for r in rows)


def test_new_images_are_classified_about_as_well(trained):
    root, metrics = trained
    write_shapes_tree(root / "new", seed=99, **{**TREE, "samples_per_class": 40})
    result = predict(root, root / "new" / "validation", "--output", root / "new.csv")
    assert result.returncode == 0, result.stderr
    rows = read_rows(root / "new.csv")
    accuracy = sum(r["class"] == r["true_class"] for r in rows) / len(rows)
    assert accuracy >= metrics["test"]["accuracy"] - 0.1


def test_one_image_prints_its_class_and_top_n(trained):
    root, _ = trained
    image = sorted((root / "shapes" / "test" / "square").iterdir())[0]
    one = predict(root, image)
    assert one.returncode == 0, one.stderr
    line = one.stdout.strip()
    assert line.startswith("Prediction: ") and line.endswith("%)") and "(confidence: " in line
    top = predict(root, image, "--top", "3").stdout.strip().splitlines()
    assert len(top) == 4 and top[0] == line
    names = {row.split()[1] for row in top[1:]}
    assert names == {"circle", "square", "triangle"}


def test_existing_output_is_not_overwritten(trained):
    root, _ = trained
    out = root / "keep.csv"
    out.write_text("precious\n")
    result = predict(root, root / "shapes" / "test", "--output", out)
    assert result.returncode == 2 and "keep.csv exists" in result.stderr
    assert out.read_text() == "precious\n"


@pytest.mark.parametrize("case", ["missing", "not_image", "corrupt", "empty_folder", "not_a_run"])
def test_bad_paths_are_one_line_errors(trained, case):
    root, _ = trained
    run_dir, target = root / "run", root / "nothing.png"
    if case == "not_image":
        target = root / "notes.txt"
        target.write_text("hello")
    elif case == "corrupt":
        target = root / "broken.jpg"
        target.write_bytes(b"\xff\xd8\xff not really a jpeg")
    elif case == "empty_folder":
        target = root / "empty"
        target.mkdir(exist_ok=True)
    elif case == "not_a_run":
        run_dir = root / "shapes"
        target = root / "shapes" / "test"
    result = predict(root, target, run_dir=run_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    fragment = {
        "missing": "nothing.png",
        "not_image": "notes.txt is not an image",
        "corrupt": "broken.jpg cannot be read",
        "empty_folder": "no readable images",
        "not_a_run": "is not a finished run",
    }[case]
    assert fragment in lines[0]


def test_errors_exit_2_without_traceback_from_the_command_line(trained):
    root, _ = trained
    result = run_cli(str(root / "run"), str(root / "nowhere"), cwd=root, module="framework.predict")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no such file or folder: {root / 'nowhere'}"


def test_run_writes_confusion_matrix_and_misclassified_grid(trained):
    root, metrics = trained
    assert (root / "run" / "confusion_matrix.png").stat().st_size > 0
    assert (root / "run" / "misclassified.png").stat().st_size > 0
    saved = json.loads((root / "run" / "metrics.json").read_text())
    assert saved["data"]["classes"] == ["circle", "square", "triangle"]


def copy_run(root, tmp_path):
    """A copy of the trained run's files that framework.predict reads, to damage."""
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("model.keras", "metrics.json"):
        shutil.copy(root / "run" / name, copy / name)
    return copy


def one_image(root):
    return sorted((root / "shapes" / "test" / "square").iterdir())[0]


def assert_one_line(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


def test_a_bad_option_is_one_line_and_help_is_unchanged(trained):
    root, _ = trained
    result = predict(root, one_image(root), "--top", "abc")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: argument --top: invalid int value: 'abc'")
    assert len(result.stderr.strip().splitlines()) == 1
    shown = predict(root, "--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: python -m framework.predict")
    assert "--unsafe" in shown.stdout


@pytest.mark.parametrize("case", ["no_folder", "folder", "folder_overwrite"])
def test_a_bad_output_is_refused_before_the_model_runs(trained, case, tmp_path, monkeypatch):
    root, _ = trained

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before --output was checked")

    monkeypatch.setattr(predict_module, "load_predictor", no_loading)
    output = tmp_path / "nodir" / "x.csv" if case == "no_folder" else tmp_path / "outdir"
    if case != "no_folder":
        output.mkdir()
        (output / "keep.txt").write_text("precious\n")
    extra = ["--overwrite"] if case == "folder_overwrite" else []
    result = predict(root, root / "shapes" / "test", "--output", output, *extra)
    assert_one_line(result, f"--output {output}")
    assert (
        f"there is no folder {tmp_path / 'nodir'}"
        if case == "no_folder"
        else "is a folder; give a file name"
    ) in result.stderr
    # Nothing half-written left behind, nothing lost.
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if case == "no_folder" else ["outdir"])
    if case != "no_folder":
        assert [p.name for p in output.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "case",
    [
        "model_truncated",
        "model_not_keras",
        "metrics_truncated",
        "metrics_without_classes",
        "config_garbage",
    ],
)
def test_damaged_run_files_are_one_line_errors(trained, case, tmp_path):
    root, _ = trained
    copy = copy_run(root, tmp_path)
    name = {"model": "model.keras", "metrics": "metrics.json", "config": ".hydra/config.yaml"}[
        case.partition("_")[0]
    ]
    path = copy / name
    if case.endswith("truncated"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "model_not_keras":
        path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive: no config.json
    elif case == "metrics_without_classes":
        path.write_text('{"test": {}}')
    else:
        path.parent.mkdir()
        path.write_text("dataset: {interpolation: [bilinear\n")
    result = predict(root, one_image(root), run_dir=copy)
    assert_one_line(result, f"{name} in {copy} is damaged (")
    assert result.stderr.rstrip().endswith("re-run training into a new directory")


def save_lambda_model(path):
    """A model.keras with a Lambda layer (Python code that runs as it loads) over 32x32 images."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    with warnings.catch_warnings():  # Keras may warn that the lambda is unsafe: it is
        warnings.simplefilter("ignore")
        model.save(path)


def test_a_model_with_python_code_is_refused_unless_unsafe(trained, tmp_path):
    root, _ = trained
    copy = copy_run(root, tmp_path)
    save_lambda_model(copy / "model.keras")
    refused = predict(root, one_image(root), run_dir=copy)
    assert_one_line(refused, f"{copy / 'model.keras'} holds Python code (a Lambda layer)")
    assert "pass --unsafe" in refused.stderr
    allowed = predict(root, one_image(root), "--unsafe", run_dir=copy)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.startswith("Prediction: ")


@dataclass
class PointsConfig:
    pass


def points_rows(data, header, rows, source):
    """New rows as the model's inputs: the run's recorded columns, as numbers."""
    import numpy as np

    return np.array([[float(row[header.index(c)]) for c in data["columns"]] for row in rows], "f4")


class PointsPlugin:
    @hookimpl
    def register_datasets(self, register):
        register("points", "absent_module:build", PointsConfig(), rows=points_rows)


def test_a_dataset_that_registers_a_row_reader_predicts_new_rows(
    isolated_registries, tmp_path, capsys
):
    import keras

    from framework.deploy.predictions import predict_rows
    from framework.parts.loading import register_plugins

    register_plugins([("points_plugin", PointsPlugin())])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")]).save(
        run_dir / "model.keras"
    )
    data = {"name": "points", "task": "binary", "classes": ["no", "yes"], "columns": ["x", "y"]}
    write_record(run_dir, replace(RECORD, data=data))
    (tmp_path / "rows.csv").write_text("y,x\n1,2\n3,4\n")
    predict_rows(run_dir, tmp_path / "rows.csv", tmp_path / "out.csv", False, False)
    rows = list(csv.reader((tmp_path / "out.csv").open()))
    assert rows[0] == ["y", "x", "class", "confidence"] and len(rows) == 3
    assert capsys.readouterr().out.startswith("Row 1: ")


def test_a_folder_that_takes_no_file_is_refused_even_where_os_access_says_writable(tmp_path):
    """Linux's /proc (the project runs and is tested on Linux) takes no new file, though
    os.access says root may write there: writability is tried (rundir.cannot_write), as the run
    guard and the run dir's lock try it."""
    from framework.run.rundir import cannot_write, make_dir

    assert cannot_write(tmp_path) is None
    assert cannot_write(Path("/proc"))
    with pytest.raises(UserError, match="cannot write --output /proc/p.csv: the folder /proc"):
        writable_folder_check(
            Path("/proc"), "--output /proc/p.csv", "choose another --output", create=False
        )
    with pytest.raises(UserError, match="cannot write into hydra.run.dir=/proc"):
        make_dir(Path("/proc"), "hydra.run.dir")
