"""A finished run exported for deployment: a SavedModel, or a TFLite file (float32, float16 or
int8 calibrated on training inputs), with the class names beside it; a new export appears whole
or not at all."""

import json
import os
import tempfile
from pathlib import Path

from framework.cli.messages import one_line
from framework.deploy.predictions import writable_folder_check
from framework.deploy.run_files import load_run_model, read_run
from framework.errors import UserError
from framework.runtime.backend import native_stderr_captured

FORMATS = ("savedmodel", "tflite")


QUANTIZATIONS = ("float16", "int8")


# Training inputs that int8 quantization runs through the model to choose activation ranges.
CALIBRATION_IMAGES = 100


def export(
    run_dir,
    fmt: str,
    quantize: str | None = None,
    output=None,
    overwrite: bool = False,
    unsafe: bool = False,
) -> list[Path]:
    """Exports a finished run's model as a SavedModel or a TFLite file.

    Args:
        run_dir: the run's directory (with ``model.keras`` and ``metrics.json``).
        fmt: ``"savedmodel"`` or ``"tflite"``.
        quantize: None, or for tflite ``"float16"`` or ``"int8"``.
        output: the SavedModel folder or ``.tflite`` file to write; None: in ``RUN_DIR/export/``.
        overwrite: replace an existing export at ``output``.
        unsafe: load a model.keras that holds Python code (see ``predict.load_run_model``).

    Returns:
        The paths written: the model, then the ``.json`` with its class names.

    Raises:
        UserError: a bad option, not a finished run, a damaged or unsafe model.keras, an
            existing export, a folder that cannot be written, or (int8) training data that
            cannot be rebuilt from the run's config.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; accepted: {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"unknown --quantize {quantize!r}; accepted: {', '.join(QUANTIZATIONS)}")
    if quantize is not None and fmt != "tflite":
        raise UserError(
            f"--quantize applies to --format tflite only. Received: --format {fmt} "
            f"--quantize {quantize}"
        )
    run_dir = Path(run_dir)
    class_names, interpolation = read_run(run_dir, exporting=True)
    output = Path(output) if output is not None else default_output(run_dir, fmt, quantize)
    if fmt == "tflite" and output.suffix != ".tflite":
        raise UserError(f"--output of a tflite export must end in .tflite. Received: {output}")
    info_path = output.with_suffix(".json")  # where framework.predict looks for the class names
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; choose another --output or pass --overwrite")
    # Before the work: a read-only run directory fails now, not after the conversion.
    writable_folder_check(
        output.parent, f"the export {output}", "choose a folder you can write to with --output"
    )
    from framework.runtime.backend import require_tensorflow, use_backend

    # SavedModel and TFLite are TensorFlow's formats: the export runs on TensorFlow whatever
    # KERAS_BACKEND says (model.keras is the same file on every backend).
    use_backend("tensorflow")
    require_tensorflow("exporting to SavedModel and TFLite")  # before the plugins, quietly

    # Before the model is loaded: a run whose data cannot be rebuilt fails fast.
    calibration = calibration_images(run_dir) if quantize == "int8" else None

    model = load_run_model(run_dir, unsafe)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        # Built beside the target (the same file system), then renamed into place; the
        # temporary folder goes however the export ends.
        with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as tmp:
            tmp = Path(tmp)
            built = tmp / "savedmodel"
            write_saved_model(model, built)
            if fmt == "tflite":
                # From the SavedModel: from_keras_model would export one itself, in training
                # mode.
                tflite = tmp / "model.tflite"
                tflite.write_bytes(to_tflite(built, quantize, calibration))
                built = tflite
            info = {
                "classes": class_names,
                "format": fmt,
                "quantize": quantize,
                "run_dir": str(run_dir.resolve()),
            }
            if len(model.input_shape) == 4:  # images: how to resize them (rows have no size)
                info["interpolation"] = interpolation
            (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
            # The model last: its presence marks a complete export.
            _move_into_place(tmp / "info.json", info_path, tmp / "replaced.json")
            _move_into_place(built, output, tmp / "replaced")
    except OSError as e:  # checked before, but e.g. a full disk shows only now
        raise UserError(f"cannot write the export {output}: {e.strerror or one_line(e)}") from None
    return [output, info_path]


def default_output(run_dir: Path, fmt: str, quantize: str | None) -> Path:
    """``RUN_DIR/export/`` + ``savedmodel``, ``model.tflite`` or ``model_<quantize>.tflite``."""
    if fmt == "savedmodel":
        name = "savedmodel"
    else:
        name = f"model_{quantize}.tflite" if quantize else "model.tflite"
    return run_dir / "export" / name


def write_saved_model(model, path: Path):
    """Writes a model's inference function as a SavedModel (``serve`` and ``serving_default``).

    Not ``model.export``: it traces the model without ``training=False``, and Keras's random
    preprocessing layers default to training mode, which then switches on augmentation and
    dropout in the exported graph (random outputs, and ops TFLite lacks).

    Args:
        model: a single-input Keras model.
        path: the folder to write.
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec(model.input_shape, model.inputs[0].dtype, name=model.inputs[0].name)
    archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def to_tflite(saved_model: Path, quantize: str | None, calibration=None) -> bytes:
    """Converts a SavedModel to a TFLite flatbuffer.

    Args:
        saved_model: the SavedModel folder.
        quantize: None (float32), ``"float16"`` or ``"int8"``.
        calibration: for int8, float32 inputs as ``calibration_images`` gives them.

    Returns:
        The ``.tflite`` file's bytes.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        # Integer kernels for every op (an op without one fails the conversion instead of
        # staying float); input and output stay float32, so the model takes the same raw images.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with native_stderr_captured():  # the converter's native progress lines
        return converter.convert()


def calibration_images(run_dir: Path, count: int = CALIBRATION_IMAGES):
    """Up to ``count`` training inputs of a run, rebuilt from its config through the registries.

    Args:
        run_dir: the run's directory, with ``.hydra/config.yaml``.
        count: how many inputs.

    Returns:
        A float32 array of up to ``count`` inputs: raw 0..255 images, or a tabular run's rows.

    Raises:
        UserError: no config, or a dataset that cannot be built (e.g. its folder is gone).
    """
    import numpy as np
    from omegaconf import OmegaConf

    from framework.parts.loading import load_plugins
    from framework.run.train import load_data

    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise UserError(
            f"int8 quantization calibrates on the run's training data, rebuilt from "
            f"its config, and {config_path} is missing"
        )
    cfg = OmegaConf.load(config_path)
    load_plugins()
    try:
        # The size the model was built for (runs before one source of truth kept two).
        train = load_data(cfg, follow_backbone=False).train
    except UserError as e:
        raise UserError(f"int8 calibration needs the run's training data: {e}") from None
    if isinstance(train, tuple):
        images = np.asarray(train[0])
        # Arrays may be sorted by class: a random draw sees every class.
        picked = np.random.default_rng(cfg.seed).choice(
            len(images), min(count, len(images)), replace=False
        )
        images = images[np.sort(picked)]
    else:
        batches, seen = [], 0
        for batch in train.as_numpy_iterator():  # shuffled as in training
            batches.append(batch[0])
            seen += len(batch[0])
            if seen >= count:
                break
        images = np.concatenate(batches)[:count]
    return images.astype(np.float32)


def _move_into_place(src: Path, dst: Path, aside: Path):
    if dst.is_dir() or (src.is_dir() and dst.exists()):
        os.replace(dst, aside)  # a rename cannot replace a folder: move the old one aside first
        try:
            os.replace(src, dst)
        except OSError:
            os.replace(aside, dst)  # the old one back: the temporary folder is about to go
            raise
    else:
        os.replace(src, dst)


def disk_size(path: Path) -> int:
    """Bytes in a file, or in every file below a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def human_size(size: int) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
