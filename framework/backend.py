"""Importing TensorFlow, and running native code, without its noise on the console."""

import contextlib
import os
import sys
import tempfile


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
