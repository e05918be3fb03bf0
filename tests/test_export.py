"""framework.export: SavedModel and TFLite (float32, float16, int8) exports of a trained run agree
with its Keras model, and framework.predict takes a .tflite in place of the run directory."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from omegaconf import OmegaConf

from framework import export, predict
from framework.deploy.predictors import Predictor, TFLitePredictor
from framework.run.train import train
from framework_plugins.datasets.shapes import write_shapes_tree

from conftest import compose_config, run_cli

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small CNN trained on shapes, with its config where Hydra puts it, and a folder of new
    shape images to predict. Its random flip and dropout must be off in every export."""
    root = tmp_path_factory.mktemp("export")
    cfg = compose_config(
        "experiment=cnn_shapes",
        "dataset.samples_per_class=100",
        "backbone.input_size=[32,32]",
        "backbone.filters=[16,32]",
        "head.units=64",
        "regularizer=[augment]",
        "regularizer.augment.rotation=0",
        "regularizer.augment.translation=0",
        "regularizer.augment.zoom=0",
        "trainer.epochs=6",
        "trainer.verbose=0",
    )
    train(cfg, root / "run")
    (root / "run" / ".hydra").mkdir()
    OmegaConf.save(cfg, root / "run" / ".hydra" / "config.yaml")
    write_shapes_tree(
        root / "images", num_classes=3, samples_per_class=20, image_size=(32, 32), seed=7
    )
    return root


@pytest.fixture(scope="module")
def exports(run):
    """Every export of the run: in this process, but int8 from the command line (its dataset
    plugins import TensorFlow: the console must stay clean all the same)."""
    results = {
        name: call(export.main, run / "run", "--format", fmt, *extra)
        for name, fmt, *extra in [
            ("savedmodel", "savedmodel"),
            ("float32", "tflite"),
            ("float16", "tflite", "--quantize", "float16"),
        ]
    }
    results["int8"] = run_cli(
        str(run / "run"),
        "--format",
        "tflite",
        "--quantize",
        "int8",
        cwd=run,
        module="framework.export",
    )
    return results


@pytest.fixture(scope="module")
def images(run):
    """The new images, read the way framework.predict does, and the run's Keras model outputs."""
    import keras

    files = sorted((run / "images").rglob("*.png"))
    keras_predictor = Predictor(keras.saving.load_model(run / "run" / "model.keras"), CLASSES)
    x = np.concatenate(list(keras_predictor.images(files).as_numpy_iterator()))
    return x, keras_predictor.model.predict(x, verbose=0)


def copy_run(run, tmp_path, *extra):
    """A copy of the run's files that framework.export reads (and ``extra`` ones, e.g. an export),
    for a test that changes or damages them: the module's run stays as the other tests expect."""
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("model.keras", "metrics.json", *extra):
        shutil.copy(run / "run" / name, copy / name)
    shutil.copytree(run / "run" / ".hydra", copy / ".hydra")
    return copy


def assert_one_line(result, fragment):
    assert result.returncode == 2 and result.stdout == "", result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


def call(main, *args):
    """Runs a command's main() in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(map(str, args)))
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def tflite_outputs(path, x):
    """The outputs of a .tflite file for float32 images, in batches of 32 and a smaller last one,
    run as framework.predict runs it (on LiteRT where ai-edge-litert is installed)."""
    import tensorflow as tf

    return TFLitePredictor.from_file(path).outputs(tf.data.Dataset.from_tensor_slices(x).batch(32))


def without_litert(monkeypatch):
    """Makes ai-edge-litert unimportable in this process until the test ends, as where it is not
    installed."""
    for name in {"ai_edge_litert", *(n for n in sys.modules if n.startswith("ai_edge_litert."))}:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.slow
def test_every_export_reports_what_it_wrote(run, exports):
    export_dir = run / "run" / "export"
    for name, stem in [
        ("savedmodel", "savedmodel"),
        ("float32", "model"),
        ("float16", "model_float16"),
        ("int8", "model_int8"),
    ]:
        result = exports[name]
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no TensorFlow or converter noise, even from a fresh process
        model = export_dir / (stem if name == "savedmodel" else f"{stem}.tflite")
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 2
        assert lines[0].startswith(f"Wrote: {model} (")
        assert lines[0].endswith("KB)") or lines[0].endswith("MB)")
        info = json.loads((export_dir / f"{stem}.json").read_text())
        assert info["classes"] == CLASSES and info["interpolation"] == "bilinear"
        assert info["quantize"] == (name if name in ("float16", "int8") else None)
    # Nothing half-written left behind.
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".")]
    sizes = {
        q: (export_dir / f"model{s}.tflite").stat().st_size
        for q, s in [("float32", ""), ("float16", "_float16"), ("int8", "_int8")]
    }
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_savedmodel_serving_signature_matches_keras(run, exports, images):
    import tensorflow as tf

    x, expected = images
    serve = tf.saved_model.load(str(run / "run" / "export" / "savedmodel")).signatures[
        "serving_default"
    ]
    (output,) = serve(tf.constant(x)).values()
    np.testing.assert_allclose(output.numpy(), expected, atol=1e-5)


def test_tflite_float32_matches_keras(run, exports, images):
    x, expected = images
    outputs = tflite_outputs(run / "run" / "export" / "model.tflite", x)
    assert outputs.shape == expected.shape == (60, 3)
    np.testing.assert_allclose(outputs, expected, atol=1e-4)


def test_tflite_float16_agrees_loosely(run, exports, images):
    x, expected = images
    outputs = tflite_outputs(run / "run" / "export" / "model_float16.tflite", x)
    np.testing.assert_allclose(outputs, expected, atol=1e-2)
    assert (outputs.argmax(-1) == expected.argmax(-1)).mean() >= 0.95


def test_tflite_int8_is_quantized_runs_and_mostly_agrees(run, exports, images):
    x, expected = images
    path = run / "run" / "export" / "model_int8.tflite"
    tensors = TFLitePredictor.from_file(path).interpreter.get_tensor_details()
    assert np.int8 in {t["dtype"] for t in tensors}
    outputs = tflite_outputs(path, x)
    assert outputs.shape == expected.shape
    np.testing.assert_allclose(outputs.sum(-1), 1, atol=0.02)  # still a softmax
    assert (outputs.argmax(-1) == expected.argmax(-1)).mean() >= 0.8


def test_tflite_runs_on_litert_when_installed(run, exports):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    predictor = TFLitePredictor.from_file(run / "run" / "export" / "model.tflite")
    assert predictor.runtime == "litert"
    assert isinstance(predictor.interpreter, litert.Interpreter)


def test_without_litert_or_tensorflow_a_tflite_file_is_a_one_line_error(run, exports, monkeypatch):
    from framework.errors import UserError
    from framework.runtime import backend

    without_litert(monkeypatch)
    monkeypatch.setattr(backend, "tensorflow_available", lambda: False)
    with pytest.raises(
        UserError,
        match=r"^running a .tflite file without ai-edge-litert \(pip "
        r"install ai-edge-litert\) needs TensorFlow, which is "
        r"not installed here .*; pip install tensorflow$",
    ):
        TFLitePredictor.from_file(run / "run" / "export" / "model.tflite")


@pytest.mark.parametrize("model", ["model.tflite", "model_int8.tflite"])
def test_tensorflow_fallback_gives_the_same_outputs(run, exports, images, model, monkeypatch):
    x, expected = images
    path = run / "run" / "export" / model
    outputs = tflite_outputs(path, x)
    without_litert(monkeypatch)
    fallback = TFLitePredictor.from_file(path)
    assert fallback.runtime == "tensorflow"
    assert type(fallback.interpreter).__module__.startswith("tensorflow.")
    np.testing.assert_allclose(tflite_outputs(path, x), outputs, atol=1e-6)


@pytest.mark.parametrize("model", ["model.tflite", "model_int8.tflite"])
def test_predict_with_a_tflite_file_gives_the_run_dirs_classes(run, exports, model, tmp_path):
    folder = run / "images"
    by_run = call(predict.main, run / "run", folder, "--output", tmp_path / "run.csv")
    by_tflite = call(
        predict.main, run / "run" / "export" / model, folder, "--output", tmp_path / "tflite.csv"
    )
    assert by_run.returncode == by_tflite.returncode == 0, by_tflite.stderr
    classes = [
        [line.split(",")[1] for line in (tmp_path / name).read_text().splitlines()[1:]]
        for name in ("run.csv", "tflite.csv")
    ]
    assert len(classes[1]) == 60 and len(set(classes[0])) > 1
    agreement = np.mean([a == b for a, b in zip(*classes)])
    assert agreement >= (1 if model == "model.tflite" else 0.8)
    image = sorted(folder.rglob("*.png"))[0]
    one = call(predict.main, run / "run" / "export" / model, image, "--top", "3")
    assert one.returncode == 0 and one.stdout.startswith("Prediction: ")
    assert len(one.stdout.strip().splitlines()) == 4


def test_a_tflite_file_travels_with_its_json(run, exports, images, tmp_path):
    x, expected = images
    result = call(
        export.main,
        run / "run",
        "--format",
        "tflite",
        "--output",
        tmp_path / "deploy" / "shapes.tflite",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "deploy" / "shapes.json").is_file()
    np.testing.assert_allclose(
        tflite_outputs(tmp_path / "deploy" / "shapes.tflite", x), expected, atol=1e-4
    )
    (tmp_path / "deploy" / "shapes.json").unlink()
    lone = call(predict.main, tmp_path / "deploy" / "shapes.tflite", run / "images")
    assert lone.returncode == 2 and "needs its class names in shapes.json" in lone.stderr


@pytest.mark.parametrize("runtime", ["litert", "tensorflow"])
@pytest.mark.parametrize("case", ["missing", "truncated", "garbage"])
def test_predict_with_a_bad_tflite_file_is_a_one_line_error(
    run, exports, case, runtime, tmp_path, monkeypatch
):
    if runtime == "tensorflow":
        without_litert(monkeypatch)
    model = tmp_path / "model.tflite"
    source = run / "run" / "export" / "model.tflite"
    if case == "truncated":  # TensorFlow's interpreter (LiteRT's before 2.x) alone crashes on it
        model.write_bytes(source.read_bytes()[:5000])
    elif case == "garbage":
        model.write_bytes(b"\x00" * 64 + b"TFL3")
    if case != "missing":
        model.with_suffix(".json").write_text(source.with_suffix(".json").read_text())
    result = call(predict.main, model, run / "images")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: no such file"
        if case == "missing"
        else f"error: {model} cannot be read as a TFLite model: "
    )


def test_overwrite_replaces_an_export(run, exports, tmp_path):
    copy = copy_run(run, tmp_path)
    saved = copy / "export" / "savedmodel"
    shutil.copytree(run / "run" / "export" / "savedmodel", saved)
    (saved / "stale.txt").write_text("from an older export")
    result = call(export.main, copy, "--format", "savedmodel", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not (saved / "stale.txt").exists() and (saved / "saved_model.pb").is_file()
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "case",
    ["not_a_run", "quantize_savedmodel", "exists", "bad_format", "no_config", "not_tflite_output"],
)
def test_bad_input_is_a_one_line_error(run, exports, case, tmp_path):
    run_dir = run / "run"
    args = {
        "not_a_run": [run / "images", "--format", "tflite"],
        "quantize_savedmodel": [run_dir, "--format", "savedmodel", "--quantize", "int8"],
        "exists": [run_dir, "--format", "tflite", "--quantize", "float16"],
        "bad_format": [run_dir, "--format", "onnx"],
        "no_config": [tmp_path / "copy", "--format", "tflite", "--quantize", "int8"],
        "not_tflite_output": [run_dir, "--format", "tflite", "--output", tmp_path / "model.bin"],
    }[case]
    if case == "no_config":  # a finished run without .hydra/: int8 cannot rebuild its data
        (tmp_path / "copy").mkdir()
        for name in ("model.keras", "metrics.json"):
            (tmp_path / "copy" / name).write_bytes((run_dir / name).read_bytes())
    existing = run_dir / "export" / "model_float16.tflite"
    before = existing.stat().st_mtime_ns
    result = call(export.main, *args)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert {
        "not_a_run": "is not a finished run",
        "quantize_savedmodel": "--quantize applies to --format tflite only",
        "exists": "model_float16.tflite exists; choose another --output or pass --overwrite",
        "bad_format": "unknown --format 'onnx'; accepted: savedmodel, tflite",
        "no_config": ".hydra/config.yaml is missing",
        "not_tflite_output": "must end in .tflite",
    }[case] in lines[0]
    assert existing.stat().st_mtime_ns == before


def test_errors_exit_2_from_the_command_line(run):
    result = run_cli(
        str(run / "run"),
        "--format",
        "savedmodel",
        "--quantize",
        "float16",
        cwd=run,
        module="framework.export",
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: --quantize applies to --format tflite only. Received: "
        "--format savedmodel --quantize float16\n"
    )


def test_a_bad_option_is_one_line_and_help_is_unchanged(run):
    assert_one_line(
        call(export.main, run / "run", "--format", "tflite", "--bogus"),
        "unrecognized arguments: --bogus",
    )
    assert_one_line(
        call(export.main, run / "run"), "the following arguments are required: --format"
    )
    shown = call(export.main, "--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: python -m framework.export")
    assert "--unsafe" in shown.stdout


def test_a_read_only_run_dir_is_refused_before_the_work(run, tmp_path):
    copy = copy_run(run, tmp_path)
    if os.geteuid() == 0:  # root writes into any folder: a file where export/ goes instead
        (copy / "export").write_text("not a folder")
        fragment = f"{copy / 'export'} is a file, not a folder"
    else:
        copy.chmod(0o555)
        fragment = f"the folder {copy} is read-only for you"
    before = sorted(p.name for p in copy.iterdir())
    try:
        result = call(export.main, copy, "--format", "tflite")
    finally:
        copy.chmod(0o755)
    assert_one_line(result, f"cannot write the export {copy / 'export' / 'model.tflite'}: ")
    assert fragment in result.stderr and "with --output" in result.stderr
    assert sorted(p.name for p in copy.iterdir()) == before  # nothing half-written left behind


def test_a_damaged_model_is_a_one_line_error(run, tmp_path):
    copy = copy_run(run, tmp_path)
    model = copy / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    result = call(export.main, copy, "--format", "savedmodel")
    assert_one_line(
        result,
        f"model.keras in {copy} is damaged (not a readable Keras file); "
        "re-run training into a new directory",
    )
    assert not (copy / "export").exists()


def test_a_model_with_python_code_is_exported_only_if_unsafe(run, tmp_path):
    import keras

    copy = copy_run(run, tmp_path)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(lambda t: t / 255.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    with warnings.catch_warnings():  # Keras may warn that the lambda is unsafe: it is
        warnings.simplefilter("ignore")
        model.save(copy / "model.keras")
    refused = call(export.main, copy, "--format", "savedmodel")
    assert_one_line(refused, f"{copy / 'model.keras'} holds Python code (a Lambda layer)")
    assert "pass --unsafe" in refused.stderr and not (copy / "export").exists()
    allowed = call(export.main, copy, "--format", "savedmodel", "--unsafe")
    assert allowed.returncode == 0, allowed.stderr
    assert (copy / "export" / "savedmodel" / "saved_model.pb").is_file()


def test_a_csv_run_exports_without_talk_of_images(tmp_path):
    rows = [
        f"{k % 7 + (5 if kind == 'b' else 0)},{('x', 'y')[k % 2]},{kind}"
        for k in range(20)
        for kind in "ab"
    ]
    (tmp_path / "rows.csv").write_text("size,mark,kind\n" + "\n".join(rows) + "\n")
    cfg = compose_config(
        "dataset=csv",
        f"dataset.path={tmp_path / 'rows.csv'}",
        "dataset.target=kind",
        "trainer.epochs=1",
        "trainer.verbose=0",
    )
    train(cfg, tmp_path / "run")
    result = call(export.main, tmp_path / "run", "--format", "savedmodel")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "run" / "export" / "savedmodel.json").read_text())
    assert info["classes"] == ["a", "b"] and "interpolation" not in info  # rows are not resized
    # A run that does not classify is refused in export's terms, not predict's about images.
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    metrics["data"] = {"task": "regression", "targets": ["size"]}
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    refused = call(export.main, tmp_path / "run", "--format", "tflite")
    assert_one_line(
        refused,
        "run is a regression run; framework.export exports runs that "
        "classify (the .json beside the model names their classes)",
    )
    assert "image" not in refused.stderr
    assert not (tmp_path / "run" / "export" / "model.tflite").exists()
