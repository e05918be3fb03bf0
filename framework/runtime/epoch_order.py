"""The order the training split is served in, epoch by epoch: a function of the run's seed and
the epoch's number in the run, so that a run continued from its checkpoint at epoch k serves
epoch k as the uninterrupted run did.

Two shufflers serve a training split. A tf.data pipeline that shuffles itself keeps its
reshuffles in a seed generator of its own, which a fresh process starts again from the first
epoch's order: ``shuffle_each_epoch`` keys the pipeline's shuffle by the epoch instead. Keras's
``fit(shuffle=True)`` of NumPy arrays draws each epoch's permutation from NumPy's global
generator on JAX (on TensorFlow, from an op that draws the same permutation in every epoch of
a fit), which nothing else draws from during a fit: ``start_epoch`` seeds it. The run calls
``start_epoch`` as each epoch begins.
"""

_epoch = None  # the tf.Variable the pipelines read, made by the first of them


def start_epoch(seed: int, epoch: int):
    """Sets the order of the epoch about to be served.

    Args:
        seed: the run's seed.
        epoch: the epoch's number in the run, from 0, over all its stages.
    """
    import numpy as np

    np.random.seed([seed, epoch])
    if _epoch is not None:
        _epoch.assign(epoch)


def shuffle_each_epoch(dataset, buffer_size: int, seed: int):
    """A tf.data pipeline shuffled anew for each epoch, in an order set by ``seed`` and the
    epoch being served (``start_epoch``).

    ``dataset.shuffle(buffer_size, seed, reshuffle_each_iteration=True)`` sets each epoch's
    order by the iterations before it in this process, so a run continued from its checkpoint
    in a new process would serve its epochs in the first epochs' orders.

    Args:
        dataset: the ``tf.data.Dataset`` to shuffle.
        buffer_size: the shuffle buffer's size (the dataset's length shuffles it whole).
        seed: the shuffle's seed.

    Returns:
        The shuffled ``tf.data.Dataset``, of ``dataset``'s length.
    """
    import tensorflow as tf

    global _epoch
    if _epoch is None:
        _epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    epoch = _epoch

    def epoch_order(_):
        graph_seed = tf.compat.v1.get_default_graph().seed  # this function's own graph's
        if graph_seed is not None and graph_seed % (2**31 - 1) == 0:
            # tf.data compares (graph seed, op seed) with (0, 0) in Python, which a tensor op
            # seed cannot answer: a run's seed=0 gives this function's graph a seed of its own.
            tf.random.set_seed(1)
        # Read as each epoch's iterator starts: one seed per (seed, epoch).
        key = tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
        epoch_seed = tf.random.stateless_uniform([], key, minval=None, maxval=None, dtype=tf.int64)
        return dataset.shuffle(buffer_size, seed=epoch_seed, reshuffle_each_iteration=False)

    shuffled = tf.data.Dataset.from_tensors(0).flat_map(epoch_order)
    length = int(dataset.cardinality())
    if length < 0:  # unknown or infinite
        return shuffled
    # Keras counts an epoch's batches (its progress bar, the epoch's end) from the length.
    return shuffled.apply(tf.data.experimental.assert_cardinality(length))
