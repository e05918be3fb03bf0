"""``python -m framework.predict MODEL PATH [--top N]``: classify images with a trained model.

MODEL is a finished run's directory or a ``.tflite`` file written by ``framework.export`` (its
class names are read from the ``.json`` file next to it). PATH is one image (prints the
prediction) or a folder (every image below it; writes a CSV of path, class and confidence, and
prints a summary). A model holds its own preprocessing, so images are only decoded and resized
here, exactly as in training.
"""

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

from framework.backend import native_stderr_captured
from framework.cli import one_line, plain_text, report_errors
from framework.errors import UserError
from framework.images import IMAGE_EXTENSIONS, is_image_file, is_readable
from framework.rundir import write_csv_atomic

BATCH_SIZE = 32


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m framework.predict", description=plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path,
                        help="a finished run's directory, or a .tflite file from framework.export")
    parser.add_argument("path", type=Path, help="an image file or a folder of images")
    parser.add_argument("--top", type=int, default=1, metavar="N", help="show the N best classes")
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"),
                        help="the CSV written for a folder (default: predictions.csv)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args(argv)
    with report_errors():
        if args.top < 1:
            raise UserError(f"--top must be at least 1. Received: --top={args.top}")
        predictor = load_predictor(args.model)
        if args.path.is_dir():
            predict_folder(predictor, args.path, args.output, args.overwrite)
        else:
            predict_image(predictor, args.path, args.top)


def load_predictor(model: Path) -> "ImagePredictor":
    """A predictor for a run directory or an exported ``.tflite`` file.

    Args:
        model: a finished run's directory, or a ``.tflite`` file with its ``.json`` beside it.

    Returns:
        A ``Predictor`` or a ``TFLitePredictor``.

    Raises:
        UserError: not a finished run, or a ``.tflite`` file that is missing or unreadable.
    """
    if model.suffix == ".tflite":
        return TFLitePredictor.from_file(model)
    return Predictor.from_run_dir(model)


def read_run(run_dir: Path) -> tuple[list[str], str]:
    """The class names and the resize method of a finished run.

    Args:
        run_dir: the run's directory.

    Returns:
        ``(class_names, interpolation)``.

    Raises:
        UserError: the directory does not hold a finished run.
    """
    metrics_path, model_path = run_dir / "metrics.json", run_dir / "model.keras"
    if not metrics_path.is_file() or not model_path.is_file():
        raise UserError(f"{run_dir} is not a finished run (it needs model.keras and metrics.json)")
    class_names = json.loads(metrics_path.read_text())["data"]["classes"]
    from omegaconf import OmegaConf

    config_path = run_dir / ".hydra" / "config.yaml"
    dataset = OmegaConf.load(config_path).dataset if config_path.is_file() else {}
    return class_names, dataset.get("interpolation", "bilinear")


class ImagePredictor:
    """What every model needs to read images: class names, input size, channels, resize method.

    Subclasses give ``outputs``, the model's raw outputs for a batched dataset of images.

    Args:
        class_names: the class names in label order.
        input_shape: the model's input shape, batch axis included.
        interpolation: the resize method used in training.
    """

    def __init__(self, class_names, input_shape, interpolation="bilinear"):
        self.class_names = list(class_names)
        # Keras marks the batch axis None, TFLite -1.
        shape = tuple(None if d is None or d < 0 else int(d) for d in input_shape)
        if len(shape) != 4:
            raise UserError(f"this model takes inputs of shape {shape[1:]}, not images; "
                            "framework.predict classifies images")
        self.size, self.channels = shape[1:3], shape[3]
        self.interpolation = interpolation

    def outputs(self, images):
        """The model's outputs for a ``tf.data.Dataset`` of float32 image batches."""
        raise NotImplementedError

    def images(self, paths):
        """A ``tf.data.Dataset`` of float32 image batches, the files read as in training."""
        import tensorflow as tf

        from framework.images import load_image

        ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
        return ds.map(lambda p: tf.cast(load_image(p, self.size, self.channels,
                                                   self.interpolation), tf.float32),
                      num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH_SIZE)

    def probabilities(self, paths):
        """Class probabilities, ``(len(paths), classes)``, for image files."""
        import numpy as np

        probs = self.outputs(self.images(paths))
        if probs.shape[-1] == 1:  # binary: the probability of the second class
            probs = np.concatenate([1 - probs, probs], axis=-1)
        return probs


class Predictor(ImagePredictor):
    """A run's Keras model, ready to classify images.

    Args:
        model: the Keras model.
        class_names: the class names in label order.
        interpolation: the resize method used in training.
    """

    def __init__(self, model, class_names, interpolation="bilinear"):
        super().__init__(class_names, model.input_shape, interpolation)
        self.model = model

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> "Predictor":
        """Loads ``model.keras`` and the class names of a finished run."""
        class_names, interpolation = read_run(run_dir)
        from framework.backend import import_tensorflow

        import_tensorflow()
        import keras

        model = keras.saving.load_model(run_dir / "model.keras")
        return cls(model, class_names, interpolation)

    def outputs(self, images):
        return self.model.predict(images, verbose=0)


class TFLitePredictor(ImagePredictor):
    """An exported ``.tflite`` model run by the TFLite interpreter.

    Args:
        interpreter: a ``tf.lite.Interpreter`` with float32 input and output.
        class_names: the class names in label order.
        interpolation: the resize method used in training.
    """

    def __init__(self, interpreter, class_names, interpolation="bilinear"):
        self.input = interpreter.get_input_details()[0]
        self.output = interpreter.get_output_details()[0]
        super().__init__(class_names, self.input["shape_signature"], interpolation)
        self.interpreter = interpreter

    @classmethod
    def from_file(cls, path: Path) -> "TFLitePredictor":
        """Loads a ``.tflite`` file and the class names in the ``.json`` file beside it."""
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        info_path = path.with_suffix(".json")
        if not info_path.is_file():
            raise UserError(f"{path} needs its class names in {info_path.name} beside it, as "
                            "python -m framework.export writes them")
        try:
            info = json.loads(info_path.read_text())
            class_names = list(info["classes"])
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{info_path} holds no class names (a \"classes\" list), as "
                            "python -m framework.export writes them") from None
        from framework.backend import import_tensorflow

        tf = import_tensorflow()
        from tensorflow.lite.tools import flatbuffer_utils

        try:
            # Parsed in Python first: the interpreter crashes (segfault) on a truncated file.
            flatbuffer_utils.read_model(str(path))
            # The interpreter's deprecation notice and native INFO lines are noise here.
            with warnings.catch_warnings(), native_stderr_captured():
                warnings.simplefilter("ignore")
                interpreter = tf.lite.Interpreter(model_path=str(path))
        except Exception as e:  # whatever the parser or the interpreter fails on, the file is bad
            raise UserError(f"{path} cannot be read as a TFLite model: {one_line(e)}") from None
        predictor = cls(interpreter, class_names, info.get("interpolation", "bilinear"))
        outputs, classes = predictor.output["shape_signature"][-1], len(predictor.class_names)
        if outputs != classes and (outputs, classes) != (1, 2):  # (1, 2): one sigmoid unit
            raise UserError(f"{path} has {outputs} outputs but {info_path.name} names {classes} "
                            "classes")
        for key, details in (("input", predictor.input), ("output", predictor.output)):
            dtype = details["dtype"].__name__
            if dtype != "float32":
                raise UserError(f"{path} has a {dtype} {key}; framework.predict runs models with "
                                "float32 input and output, as framework.export writes them")
        return predictor

    def outputs(self, images):
        import numpy as np

        interpreter, batch, results = self.interpreter, None, []
        for x in images.as_numpy_iterator():
            if len(x) != batch:  # the last batch is smaller: resize the input for it
                batch = len(x)
                interpreter.resize_tensor_input(self.input["index"], x.shape)
                with native_stderr_captured():
                    interpreter.allocate_tensors()
            interpreter.set_tensor(self.input["index"], x)
            interpreter.invoke()
            results.append(interpreter.get_tensor(self.output["index"]).copy())
        return np.concatenate(results)


def predict_image(predictor: ImagePredictor, path: Path, top: int):
    """Prints the prediction for one image (and the ``top`` best classes when top > 1)."""
    check_image(path)
    probs = predictor.probabilities([path])[0]
    order = probs.argsort()[::-1]
    print(f"Prediction: {predictor.class_names[order[0]]} (confidence: {probs[order[0]]:.1%})")
    if top > 1:
        width = max(len(name) for name in predictor.class_names)
        for rank, i in enumerate(order[:top], start=1):
            print(f"  {rank}. {predictor.class_names[i]:<{width}}  {probs[i]:.1%}")


def check_image(path: Path):
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if not is_image_file(path):
        raise UserError(
            f"{path} is not an image; accepted: {', '.join(IMAGE_EXTENSIONS)} files or a folder"
        )
    if not is_readable(path):
        raise UserError(f"{path} cannot be read as an image (corrupt or truncated)")


def predict_folder(predictor: ImagePredictor, folder: Path, output: Path, overwrite: bool):
    """Classifies every image below ``folder``; writes ``output`` and prints a summary."""
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; choose another --output or pass --overwrite")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    readable = [p for p in files if is_readable(p)]
    skipped = sorted(set(files) - set(readable))
    if skipped:
        shown = ", ".join(str(p.relative_to(folder)) for p in skipped[:5])
        print(f"warning: skipped {len(skipped)} unreadable image(s): {shown}", file=sys.stderr)
    if not readable:
        raise UserError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    probs = predictor.probabilities(readable)
    names = predictor.class_names
    predicted = [names[i] for i in probs.argmax(axis=-1)]
    # Images in folders named after the classes (a validation layout) carry their true class.
    truth = [p.parent.name if p.parent.name in names else None for p in readable]
    labelled = all(t is not None for t in truth)
    write_csv_atomic(
        output,
        ["path", "class", "confidence"] + (["true_class"] if labelled else []),
        ([path.relative_to(folder), cls, f"{p:.6f}"] + ([t] if labelled else [])
         for path, cls, p, t in zip(readable, predicted, probs.max(axis=-1), truth)),
    )
    counts = Counter(predicted)
    print(f"Predicted {len(readable)} images in {folder}")
    print("By class:  " + ", ".join(f"{name} {counts[name]}" for name in names))
    if labelled:
        correct = sum(p == t for p, t in zip(predicted, truth))
        print(f"Accuracy:  {correct / len(readable):.4f} against the folder names "
              f"({correct}/{len(readable)})")
    print(f"Wrote:     {output}")


if __name__ == "__main__":
    main()
