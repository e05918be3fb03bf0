"""Predictors of images: a run's Keras model, or a ``.tflite`` file from ``framework.export``, each
decoding and resizing images exactly as training did."""

import json
import warnings
from pathlib import Path

from framework.cli.messages import one_line
from framework.deploy.run_files import load_run_model, read_run
from framework.errors import UserError
from framework.parts.contexts import class_probabilities, output_classes
from framework.runtime.backend import native_stderr_captured

BATCH_SIZE = 32


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
