"""``python -m framework.predict MODEL PATH [--top N]``: predict with a trained model.

MODEL is a finished run's directory or a ``.tflite`` file written by ``framework.export`` (its
class names are read from the ``.json`` file next to it). PATH is one image (prints the
prediction) or a folder (every image below it; writes a CSV of path, class and confidence, and
prints a summary). A model holds its own preprocessing, so images are only decoded and resized
here, exactly as in training. For a run on a CSV file (dataset=csv), PATH is a CSV file of new
rows with the same feature columns: they are encoded and scaled as the run's training data was,
each prediction is printed in the task's own terms (a class, a number in the target's units,
labels), and the rows are written with their predictions.

A model.keras is loaded in Keras's safe mode: one that holds Python code (a Lambda layer), which
would run as it loads, is refused unless --unsafe is given.
"""

import argparse
import json
import sys
import warnings
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from framework.cli.messages import one_line, one_line_usage, plain_text, report_errors
from framework.cli.process_exit import run_and_exit
from framework.deploy.images import IMAGE_EXTENSIONS, is_image_file, is_readable
from framework.errors import UserError, damaged
from framework.parts.contexts import class_probabilities, output_classes
from framework.run.record import RunRecord, read_record
from framework.run.rundir import METRICS, cannot_write, write_csv_atomic
from framework.runtime.backend import native_stderr_captured

BATCH_SIZE = 32
# Predictions of a CSV file's rows printed, at most; all are written.
ROWS_SHOWN = 10


UNSAFE_HELP = (
    "load a model.keras that holds Python code (a Lambda layer), which runs as it "
    "loads: only for a file you trust (without it, such a model is refused)"
)


def main(argv=None):
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework.predict",
            description=plain_text(__doc__),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    parser.add_argument(
        "model",
        type=Path,
        help="a finished run's directory, or a .tflite file from framework.export",
    )
    parser.add_argument(
        "path", type=Path, help="an image file, a folder of images, or a CSV file of rows"
    )
    parser.add_argument("--top", type=int, default=1, metavar="N", help="show the N best classes")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("predictions.csv"),
        help="the CSV written for a folder or rows (default: predictions.csv)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--unsafe", action="store_true", help=UNSAFE_HELP)
    args = parser.parse_args(argv)
    with report_errors():
        if args.top < 1:
            raise UserError(f"--top must be at least 1. Received: --top={args.top}")
        # What can be checked before the model is loaded and run is checked first.
        if args.path.suffix.lower() == ".csv":
            check_rows_file(args.path, args.output, args.overwrite)
            predict_rows(args.model, args.path, args.output, args.overwrite, args.unsafe)
            return
        if args.path.is_dir():
            check_output(args.output, args.overwrite)
        else:
            check_image(args.path)
        predictor = load_predictor(args.model, args.unsafe)
        if args.path.is_dir():
            predict_folder(predictor, args.path, args.output, args.overwrite)
        else:
            predict_image(predictor, args.path, args.top)


def load_predictor(model: Path, unsafe: bool = False) -> "ImagePredictor":
    """A predictor for a run directory or an exported ``.tflite`` file.

    Args:
        model: a finished run's directory, or a ``.tflite`` file with its ``.json`` beside it.
        unsafe: load a ``model.keras`` that holds Python code (see ``load_run_model``).

    Returns:
        A ``Predictor`` or a ``TFLitePredictor``.

    Raises:
        UserError: not a finished run, a damaged or unsafe run, or a ``.tflite`` file that is
            missing or unreadable.
    """
    if model.suffix == ".tflite":
        return TFLitePredictor.from_file(model)
    return Predictor.from_run_dir(model, unsafe)


def read_run(run_dir: Path, exporting: bool = False) -> tuple[list[str], str]:
    """The class names and the resize method of a finished run.

    Args:
        run_dir: the run's directory.
        exporting: for framework.export (which also exports a classifier of feature rows):
            its refusal of a run that does not classify speaks of exports, not images.

    Returns:
        ``(class_names, interpolation)``.

    Raises:
        UserError: the directory does not hold a finished run of a classifier, or its
            metrics.json or .hydra/config.yaml is damaged.
    """
    data = finished_record(run_dir).data
    if "classes" not in data and "task" in data:
        if exporting:
            raise UserError(
                f"{run_dir} is a {data['task']} run; framework.export "
                "exports runs that classify (the .json beside the model names "
                "their classes)"
            )
        raise UserError(
            f"{run_dir} is a {data['task']} run; images are for runs "
            "that classify them (framework.predict takes a CSV file of rows for a "
            "run on a CSV file)"
        )
    try:
        class_names = [str(name) for name in data["classes"]]
    except (KeyError, TypeError):
        raise damaged(run_dir, METRICS, "it names no data.classes") from None
    import yaml
    from omegaconf import DictConfig, OmegaConf

    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        return class_names, "bilinear"
    try:
        config = OmegaConf.load(config_path)
    except (yaml.YAMLError, ValueError):
        raise damaged(run_dir, ".hydra/config.yaml", "not valid YAML") from None
    except OSError as e:
        raise UserError(f"cannot read {config_path}: {e.strerror}") from None
    if not isinstance(config, DictConfig):
        raise damaged(run_dir, ".hydra/config.yaml", "not a mapping of settings")
    dataset = config.get("dataset")
    interpolation = dataset.get("interpolation") if isinstance(dataset, DictConfig) else None
    return class_names, interpolation or "bilinear"


def finished_record(run_dir: Path) -> RunRecord:
    """A finished run's record.

    Raises:
        UserError: the directory does not hold a finished run, or its metrics.json is damaged.
    """
    record = read_record(run_dir) if (run_dir / "model.keras").is_file() else None
    if record is None:
        raise UserError(f"{run_dir} is not a finished run (it needs model.keras and {METRICS})")
    return record


def load_run_model(run_dir: Path, unsafe: bool = False):
    """A finished run's ``model.keras``, loaded in Keras's safe mode unless ``unsafe``.

    Safe mode refuses Python code stored in the file (a Lambda layer's function), which would
    run as the file loads.

    Args:
        run_dir: the run's directory.
        unsafe: load such code all the same (``safe_mode=False``): only for a trusted file.

    Returns:
        The Keras model.

    Raises:
        UserError: model.keras is damaged (e.g. truncated), or holds Python code and not unsafe.
    """
    path = run_dir / "model.keras"
    try:  # Keras calls a file that is no zip archive (a truncated one) "File not found"
        with zipfile.ZipFile(path) as archive:
            complete = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        complete = False
    if not complete:
        raise damaged(run_dir, "model.keras", "not a readable Keras file")
    from framework.runtime.backend import import_backend

    keras = import_backend()
    try:
        # Predicting and exporting need no optimizer or loss; nor the training's compile
        # settings, which a model may not keep once reloaded (jit_compile=True on JAX for a
        # model with augmentation layers: Keras warns and drops it).
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:  # damaged inside the archive
        raise damaged(run_dir, "model.keras", f"not a readable Keras file: {one_line(e)}") from None
    except ValueError as e:
        if "safe_mode=False" not in str(e):
            raise
        raise UserError(
            f"{path} holds Python code (a Lambda layer) that would run as it loads, so "
            "safe mode refuses it; pass --unsafe to load it anyway, only if you trust "
            "where the file came from"
        ) from None


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
            raise UserError(
                f"this model takes inputs of shape {shape[1:]}, not images; "
                "framework.predict classifies images"
            )
        self.size, self.channels = shape[1:3], shape[3]
        self.interpolation = interpolation

    def outputs(self, images):
        """The model's outputs for a ``tf.data.Dataset`` of float32 image batches."""
        raise NotImplementedError

    def images(self, paths):
        """A ``tf.data.Dataset`` of float32 image batches, the files read as in training."""
        from framework.deploy.images import load_image
        from framework.runtime.backend import require_tensorflow

        # Its start-up logs kept off the console: a LiteRT model may be the first to need it.
        tf = require_tensorflow("reading images for a prediction (a tf.data pipeline)")

        ds = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
        return ds.map(
            lambda p: tf.cast(
                load_image(p, self.size, self.channels, self.interpolation), tf.float32
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).batch(BATCH_SIZE)

    def probabilities(self, paths):
        """Class probabilities, ``(len(paths), classes)``, for image files."""
        return class_probabilities(self.outputs(self.images(paths)))


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
    def from_run_dir(cls, run_dir: Path, unsafe: bool = False) -> "Predictor":
        """Loads ``model.keras`` and the class names of a finished run (see ``load_run_model``
        for ``unsafe``)."""
        class_names, interpolation = read_run(run_dir)
        return cls(load_run_model(run_dir, unsafe), class_names, interpolation)

    def outputs(self, images):
        return self.model.predict(images, verbose=0)


class TFLitePredictor(ImagePredictor):
    """An exported ``.tflite`` model run by a TFLite interpreter.

    Args:
        interpreter: an interpreter with float32 input and output: LiteRT's
            (``ai_edge_litert.interpreter.Interpreter``) or TensorFlow's (``tf.lite.Interpreter``).
        class_names: the class names in label order.
        interpolation: the resize method used in training.
        runtime: which interpreter it is, ``"litert"`` or ``"tensorflow"``.
    """

    def __init__(self, interpreter, class_names, interpolation="bilinear", runtime="litert"):
        self.input = interpreter.get_input_details()[0]
        self.output = interpreter.get_output_details()[0]
        super().__init__(class_names, self.input["shape_signature"], interpolation)
        self.interpreter, self.runtime = interpreter, runtime

    @classmethod
    def from_file(cls, path: Path) -> "TFLitePredictor":
        """Loads a ``.tflite`` file and the class names in the ``.json`` file beside it."""
        if not path.is_file():
            raise UserError(f"no such file: {path}")
        info_path = path.with_suffix(".json")
        if not info_path.is_file():
            raise UserError(
                f"{path} needs its class names in {info_path.name} beside it, as "
                "python -m framework.export writes them"
            )
        try:
            info = json.loads(info_path.read_text())
            class_names = list(info["classes"])
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f'{info_path} holds no class names (a "classes" list), as '
                "python -m framework.export writes them"
            ) from None
        interpreter, runtime = _tflite_interpreter(path)
        predictor = cls(interpreter, class_names, info.get("interpolation", "bilinear"), runtime)
        outputs, classes = predictor.output["shape_signature"][-1], len(predictor.class_names)
        if output_classes(outputs) != classes:
            raise UserError(
                f"{path} has {outputs} outputs but {info_path.name} names {classes} classes"
            )
        for key, details in (("input", predictor.input), ("output", predictor.output)):
            dtype = details["dtype"].__name__
            if dtype != "float32":
                raise UserError(
                    f"{path} has a {dtype} {key}; framework.predict runs models with "
                    "float32 input and output, as framework.export writes them"
                )
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


def _tflite_interpreter(path: Path):
    """The interpreter for a ``.tflite`` file and its runtime: LiteRT's (``"litert"``), or
    TensorFlow's (``"tensorflow"``) where ai-edge-litert is not installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.interpreter import Interpreter

        runtime = "litert"
    except ImportError:  # neither: one line that says what to install
        from framework.runtime.backend import require_tensorflow

        tf = require_tensorflow(
            "running a .tflite file without ai-edge-litert (pip install ai-edge-litert)"
        )
        Interpreter, runtime = tf.lite.Interpreter, "tensorflow"
        from tensorflow.lite.python import schema_py_generated as schema
    try:
        model = path.read_bytes()
        # Parsed in Python first: TensorFlow's interpreter, and LiteRT's before 2.x, crash
        # (segfault) on a truncated file.
        schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
        # TensorFlow's deprecation notice and the native INFO lines are noise here.
        with warnings.catch_warnings(), native_stderr_captured():
            warnings.simplefilter("ignore")
            return Interpreter(model_content=model), runtime
    except Exception as e:  # whatever the parser or the interpreter fails on, the file is bad
        raise UserError(f"{path} cannot be read as a TFLite model: {one_line(e)}") from None


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


def check_rows_file(path: Path, output: Path, overwrite: bool):
    """Raises UserError unless ``path`` is a file and ``output`` can be written apart from it."""
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if output.resolve() == path.resolve():
        raise UserError(f"--output {output} is the file of rows itself; choose another --output")
    check_output(output, overwrite)


def predict_rows(run_dir: Path, path: Path, output: Path, overwrite: bool, unsafe: bool):
    """Predicts every row of a CSV file with a run trained on a CSV file; prints the first
    predictions and writes ``output``: the rows with the task's prediction columns."""
    from framework.deploy.rows import read_rows
    from framework.parts.loading import load_plugins
    from framework.parts.registry import datasets
    from framework.parts.tasks import task_of_run

    if run_dir.suffix == ".tflite":
        raise UserError(
            f"{run_dir}: a .tflite model predicts images; give the run's directory "
            "to predict rows of a CSV file"
        )
    record = finished_record(run_dir)
    load_plugins()
    name = record.data.get("name")
    if name not in datasets or datasets.get(name).rows is None:
        readers = " or ".join(f"dataset={p.name}" for p in datasets if p.rows is not None)
        raise UserError(
            f"{run_dir} was not trained on a CSV file ({readers}), so it records "
            "no columns to read new rows with"
        )
    header, rows = read_rows(path)
    x = datasets.get(name).read_rows(record.data, header, rows, path.name)
    task = task_of_run(record.as_dict())
    outputs = load_run_model(run_dir, unsafe).predict(x, batch_size=BATCH_SIZE, verbose=0)
    predicted = task.predictions(outputs, record.data)
    for i in range(min(len(rows), ROWS_SHOWN)):
        text = task.prediction_text({name: values[i] for name, values in predicted.items()})
        print(f"Prediction: {text}" if len(rows) == 1 else f"Row {i + 1}: {text}")
    if len(rows) > ROWS_SHOWN:
        print(f"... ({len(rows) - ROWS_SHOWN} more in {output})")
    columns = [f"predicted_{name}" if name in header else name for name in predicted]
    try:
        write_csv_atomic(
            output,
            [*header, *columns],
            ([*row, *(values[i] for values in predicted.values())] for i, row in enumerate(rows)),
        )
    except OSError as e:
        raise UserError(f"cannot write --output {output}: {e.strerror}") from None
    print(f"Predicted {len(rows)} row(s) of {path}")
    print(f"Wrote:     {output}")


def check_image(path: Path):
    if not path.exists():
        raise UserError(f"no such file or folder: {path}")
    if not is_image_file(path):
        raise UserError(
            f"{path} is not an image; accepted: {', '.join(IMAGE_EXTENSIONS)} files or a folder"
        )
    if not is_readable(path):
        raise UserError(f"{path} cannot be read as an image (corrupt or truncated)")


def check_output(output: Path, overwrite: bool):
    """Raises UserError unless ``output`` can be written as a new file (or, with ``overwrite``,
    replace an existing one)."""
    if output.is_dir():
        raise UserError(
            f"--output {output} is a folder; give a file name, e.g. "
            f"--output {output / 'predictions.csv'}"
        )
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; choose another --output or pass --overwrite")
    writable_folder_check(
        output.parent, f"--output {output}", "choose another --output", create=False
    )


def writable_folder_check(folder: Path, target: str, remedy: str, create: bool = True):
    """Raises UserError unless files can be created in ``folder``, or with ``create``, in the
    nearest folder above it that exists (where the missing ones would be created).

    Args:
        folder: where a file is to be written.
        target: what is to be written, for the message (e.g. ``"--output x.csv"``).
        remedy: what the user can do, for the message.
        create: whether the missing folders will be created.
    """
    existing = folder
    while create and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.exists():
        raise UserError(
            f"cannot write {target}: there is no folder {existing}; create it or {remedy}"
        )
    if not existing.is_dir():
        raise UserError(f"cannot write {target}: {existing} is a file, not a folder; {remedy}")
    why = cannot_write(existing)
    if why:
        raise UserError(
            f"cannot write {target}: the folder {existing} is read-only for you; {remedy}"
        )


def predict_folder(predictor: ImagePredictor, folder: Path, output: Path, overwrite: bool):
    """Classifies every image below ``folder``; writes ``output`` and prints a summary."""
    check_output(output, overwrite)
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
    try:
        write_csv_atomic(
            output,
            ["path", "class", "confidence"] + (["true_class"] if labelled else []),
            (
                [path.relative_to(folder), cls, f"{p:.6f}"] + ([t] if labelled else [])
                for path, cls, p, t in zip(readable, predicted, probs.max(axis=-1), truth)
            ),
        )
    except OSError as e:  # checked before, but e.g. a full disk shows only now
        raise UserError(f"cannot write --output {output}: {e.strerror}") from None
    counts = Counter(predicted)
    print(f"Predicted {len(readable)} images in {folder}")
    print("By class:  " + ", ".join(f"{name} {counts[name]}" for name in names))
    if labelled:
        correct = sum(p == t for p, t in zip(predicted, truth))
        print(
            f"Accuracy:  {correct / len(readable):.4f} against the folder names "
            f"({correct}/{len(readable)})"
        )
    print(f"Wrote:     {output}")


if __name__ == "__main__":
    run_and_exit(main)
