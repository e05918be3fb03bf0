"""``python -m framework.predict RUN_DIR PATH [--top N]``: classify images with a run's model.

PATH is one image (prints the prediction) or a folder (every image below it; writes a CSV of
path, class and confidence, and prints a summary). The run's saved model holds its own
preprocessing, so images are only decoded and resized here, exactly as in training.
"""

import argparse
import csv
import json
import os
import sys
from collections import Counter
from pathlib import Path

from framework.cli import report_errors
from framework.errors import UserError
from framework.images import IMAGE_EXTENSIONS, is_image_file, is_readable

BATCH_SIZE = 32


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m framework.predict", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument("path", type=Path, help="an image file or a folder of images")
    parser.add_argument("--top", type=int, default=1, metavar="N", help="show the N best classes")
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"),
                        help="the CSV written for a folder (default: predictions.csv)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args(argv)
    with report_errors():
        if args.top < 1:
            raise UserError(f"--top must be at least 1. Received: --top={args.top}")
        predictor = Predictor.from_run_dir(args.run_dir)
        if args.path.is_dir():
            predict_folder(predictor, args.path, args.output, args.overwrite)
        else:
            predict_image(predictor, args.path, args.top)


class Predictor:
    """A run's model with what it needs to read images: class names, size, channels, resize.

    Args:
        model: the Keras model.
        class_names: the class names in label order.
        interpolation: the resize method used in training.
    """

    def __init__(self, model, class_names, interpolation="bilinear"):
        self.model = model
        self.class_names = list(class_names)
        shape = model.input_shape
        if len(shape) != 4:
            raise UserError(
                f"this run's model takes inputs of shape {shape[1:]}, not images; "
                "framework.predict classifies images"
            )
        self.size, self.channels = (shape[1], shape[2]), shape[3]
        self.interpolation = interpolation

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> "Predictor":
        """Loads ``model.keras`` and the class names of a finished run."""
        metrics_path, model_path = run_dir / "metrics.json", run_dir / "model.keras"
        if not metrics_path.is_file() or not model_path.is_file():
            raise UserError(
                f"{run_dir} is not a finished run (it needs model.keras and metrics.json)"
            )
        class_names = json.loads(metrics_path.read_text())["data"]["classes"]
        from omegaconf import OmegaConf

        config_path = run_dir / ".hydra" / "config.yaml"
        dataset = OmegaConf.load(config_path).dataset if config_path.is_file() else {}
        from framework.backend import import_tensorflow

        import_tensorflow()
        import keras

        model = keras.saving.load_model(model_path)
        return cls(model, class_names, dataset.get("interpolation", "bilinear"))

    def probabilities(self, paths):
        """Class probabilities, ``(len(paths), classes)``, for image files."""
        import numpy as np
        import tensorflow as tf

        from framework.images import load_image

        ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
        ds = ds.map(lambda p: tf.cast(load_image(p, self.size, self.channels, self.interpolation),
                                      tf.float32),
                    num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH_SIZE)
        probs = self.model.predict(ds, verbose=0)
        if probs.shape[-1] == 1:  # binary: the probability of the second class
            probs = np.concatenate([1 - probs, probs], axis=-1)
        return probs


def predict_image(predictor: Predictor, path: Path, top: int):
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


def predict_folder(predictor: Predictor, folder: Path, output: Path, overwrite: bool):
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
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "class", "confidence"] + (["true_class"] if labelled else []))
        for path, cls, p, t in zip(readable, predicted, probs.max(axis=-1), truth):
            writer.writerow([path.relative_to(folder), cls, f"{p:.6f}"] + ([t] if labelled else []))
    os.replace(tmp, output)
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
