"""The Keras backend a run uses, and importing it (TensorFlow, JAX) without its console noise."""

import contextlib
import logging
import os
import sys
import tempfile

from framework.errors import UserError

# The Keras backends the core runs on; PyTorch is refused rather than half-supported.
BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"


def backend_name(requested: str | None = None) -> str:
    """The backend a run uses: ``requested`` (``trainer.backend``), else ``KERAS_BACKEND``, else
    TensorFlow.

    Raises:
        UserError: a backend the core does not run on.
    """
    name = requested or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if name not in BACKENDS:
        source = "trainer.backend" if requested else "KERAS_BACKEND"
        raise UserError(f"{source}={name} is not supported; accepted: {', '.join(BACKENDS)}")
    return name


def use_backend(requested: str | None = None) -> str:
    """Selects the run's backend for Keras (``KERAS_BACKEND``), before Keras is imported.

    Returns:
        The backend's name.

    Raises:
        UserError: an unsupported backend, or one other than the backend Keras was already
            imported with in this process (Keras runs one backend per process).
    """
    name = backend_name(requested)
    if "keras" in sys.modules:
        import keras

        if keras.config.backend() != name:
            raise UserError(
                f"trainer.backend={name} but Keras already runs on {keras.config.backend()} in "
                "this process; a process runs one backend (set KERAS_BACKEND before it starts)"
            )
    os.environ["KERAS_BACKEND"] = name
    return name


def import_backend():
    """Imports the selected backend quietly (TensorFlow's or JAX's start-up logs), then Keras."""
    if backend_name() == "tensorflow":
        import_tensorflow()
        import keras

        return keras
    # "Unable to initialize backend 'tpu'" and the like: JAX probing absent platforms.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
    import keras

    _tensorflow_only_once_imported()
    return keras


def _tensorflow_only_once_imported():
    """Keeps Keras from importing TensorFlow on another backend just to look for its types.

    Keras asks ``tf.available`` (importing TensorFlow, seconds, if installed) when it seeds
    (``set_random_seed``) and saves a model, to recognise TensorFlow objects. None can exist
    before TensorFlow is imported, so it counts as available from then on: when a tf.data
    pipeline (image folders) or an export imports it.
    """
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow

    class ImportedOnly(type(lazy)):
        @property
        def available(self):
            return "tensorflow" in sys.modules

    if type(lazy).__name__ != "ImportedOnly":
        lazy.__class__ = ImportedOnly


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported (the features that need it use it on any backend)."""
    import importlib.util

    return "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is not None


def require_tensorflow(feature: str):
    """Imports TensorFlow for a feature that needs it whatever the backend.

    Returns:
        The ``tensorflow`` module.

    Raises:
        UserError: TensorFlow is not installed (one line naming the feature).
    """
    if not tensorflow_available():
        raise UserError(
            f"{feature} needs TensorFlow, which is not installed here "
            f"(Keras backend: {backend_name()}); pip install tensorflow"
        )
    return import_tensorflow()


@contextlib.contextmanager
def native_stderr_captured():
    """Sends what native code writes to stderr (fd 2) to a temporary file.

    Yields:
        The file, to read back where the output is wanted after all (e.g. on a failure).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Imports TensorFlow with its native start-up logs (CUDA probes, absl) kept off the console.

    TF_CPP_MIN_LOG_LEVEL does not reach the logs written before absl is initialised, so they are
    captured during the import and replayed if it fails. Set FRAMEWORK_TF_LOGS=1 to see them.
    """
    if "tensorflow" in sys.modules or os.environ.get("FRAMEWORK_TF_LOGS"):
        import tensorflow

        return tensorflow
    failure = None
    with native_stderr_captured() as log:
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # the CUDA probe logs on first use
        except BaseException as e:
            log.seek(0)
            captured, failure = log.read().decode(errors="replace"), e
    if failure is not None:
        sys.stderr.write(captured)
        raise failure
    # Retracing notices from evaluating splits of other sizes: noise for our users.
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow
