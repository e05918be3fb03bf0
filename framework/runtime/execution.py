"""How a run executes on its devices, through Keras's own switches: the dtype policy
(``trainer.precision``), XLA (``trainer.jit_compile``), steps per execution, and data parallelism
over several devices (``trainer.distribution``).

Keras is imported inside the functions: the config imports this module's names.
"""

import contextlib

from framework.errors import UserError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("data_parallel",)


def set_precision(precision: str):
    """Sets Keras's global dtype policy for the layers built next (the run's model)."""
    import keras

    keras.config.set_dtype_policy(precision)


def output_dtype(precision: str) -> str | None:
    """The output layer's dtype: float32 under a mixed policy (softmax and the loss stay
    numerically stable), None (the policy's) otherwise."""
    return "float32" if precision != "float32" else None


def compile_options(trainer) -> dict:
    """The ``model.compile`` arguments a trainer config sets: ``jit_compile`` and
    ``steps_per_execution``."""
    return {"jit_compile": trainer.jit_compile, "steps_per_execution": trainer.steps_per_execution}


@contextlib.contextmanager
def distributed(distribution: str | None):
    """Builds and trains what runs inside over the devices ``distribution`` names.

    ``data_parallel``: the model is replicated on every device and each batch (the global
    batch, ``trainer.batch_size``) is split between them: ``keras.distribution.DataParallel``
    on JAX, ``tf.distribute.MirroredStrategy`` on TensorFlow. None: Keras's default device.

    Yields:
        A dict describing it for metrics.json: ``{"name", "devices"}`` (filled in by
        ``describe_distribution`` once the model exists), or None without a distribution.
    """
    import keras

    if distribution is None:
        if keras.config.backend() == "jax":
            keras.distribution.set_distribution(None)  # an earlier run's, in this process
        yield None
        return
    if keras.config.backend() == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield {"name": distribution, "devices": devices}
        finally:
            keras.distribution.set_distribution(None)
        return
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        yield {"name": distribution, "devices": list(strategy.extended.worker_devices)}


def single_device_note(distribution: dict | None) -> str | None:
    """A note where data parallelism found one device (no GPU, or one): nothing is replicated.

    Args:
        distribution: what ``distributed`` yields.

    Returns:
        The note, or None (no distribution, or several devices).
    """
    if distribution is None or len(distribution["devices"]) != 1:
        return None
    # TensorFlow names a device "/job:localhost/replica:0/task:0/device:CPU:0", JAX "cpu:0".
    device = str(distribution["devices"][0]).rpartition("device:")[2]
    gpu = "" if "gpu" in device.lower() else "; no GPU is visible"
    return (
        f"trainer.distribution={distribution['name']} found 1 device ({device}{gpu}): the "
        "model is not replicated and trains as it would without the setting"
    )


def split_evenly(data, batch_size: int, devices: int):
    """Makes every batch of a JAX data-parallel run split evenly over its devices.

    JAX shards each batch over the devices and needs equal shards: the batch size must be a
    multiple of the device count, and each NumPy split loses its last ``len % devices`` examples
    (fewer than the devices; a note says how many). TensorFlow's strategy handles uneven batches.

    Returns:
        Notes on what was left out, one per split that lost examples.

    Raises:
        UserError: a batch size that is not a multiple of the device count.
    """
    if batch_size % devices:
        raise UserError(
            f"trainer.batch_size={batch_size} does not split over {devices} devices "
            f"(trainer.distribution=data_parallel); accepted: a multiple of {devices}"
        )
    notes = []
    for split in ("train", "validation", "test"):
        arrays = getattr(data, split)
        if not isinstance(arrays, tuple) or len(arrays[0]) % devices == 0:
            continue
        n = len(arrays[0])
        keep = n - n % devices
        setattr(data, split, tuple(a[:keep] for a in arrays))
        notes.append(
            f"{n - keep} of {n} {split} examples left out, so that every batch splits "
            f"over the {devices} devices"
        )
    return notes


def replicas(model) -> int:
    """On how many devices the model's variables live (its replicas under data parallelism)."""
    import keras

    variable = model.weights[0]
    if keras.config.backend() == "jax":
        return len(variable.value.sharding.device_set)
    strategy = getattr(variable.value, "_distribute_strategy", None)
    return strategy.num_replicas_in_sync if strategy is not None else 1
