"""Importing TensorFlow without its start-up noise."""

import os
import sys
import tempfile


def import_tensorflow():
    """Imports TensorFlow with its native start-up logs (CUDA probes, absl) kept off the console.

    TF_CPP_MIN_LOG_LEVEL does not reach the logs written before absl is initialised, so stderr
    is sent to a temporary file during the import; the file is replayed if the import fails.
    Set FRAMEWORK_TF_LOGS=1 to see everything.
    """
    if "tensorflow" in sys.modules or os.environ.get("FRAMEWORK_TF_LOGS"):
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # the CUDA probe logs on first use
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    # Retracing notices from evaluating splits of other sizes: noise for our users.
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow
