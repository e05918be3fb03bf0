"""framework.predict round trip: train on a shapes folder tree, predict images and folders."""

import contextlib
import csv
import io
import json
import subprocess

import pytest

from framework.predict import main
from framework.train import train
from framework_plugins.shapes import write_shapes_tree

from conftest import run_cli

TREE = {"num_classes": 3, "samples_per_class": 300, "image_size": (32, 32)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import compose_config

    root = tmp_path_factory.mktemp("predict")
    write_shapes_tree(root / "shapes", seed=42, **TREE)
    cfg = compose_config("experiment=cnn_multiclass", f"dataset.path={root / 'shapes'}",
                         "backbone.input_size=[32,32]", "trainer.epochs=6", "trainer.verbose=0")
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
    fragment = {"missing": "nothing.png", "not_image": "notes.txt is not an image",
                "corrupt": "broken.jpg cannot be read", "empty_folder": "no readable images",
                "not_a_run": "is not a finished run"}[case]
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
