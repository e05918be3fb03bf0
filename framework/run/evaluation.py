"""A trained model's outputs on one split, with their labels, for a task to score."""

import numpy as np


def split_arrays(split):
    """``(inputs, labels)`` of a split given as ``(x, y)`` arrays or a ``tf.data`` dataset."""
    if isinstance(split, tuple):
        return split
    x = split.map(lambda x, y: x)
    y = np.concatenate([np.asarray(batch) for batch in split.map(lambda x, y: y)])
    return x, y


def predict_with_labels(model, dataset):
    """``(outputs, labels)`` of a ``tf.data`` dataset of ``(x, y)`` batches, in one pass, so that
    they stay paired even if the dataset reshuffles on each pass."""
    import keras

    if keras.config.backend() != "tensorflow":  # JAX takes NumPy batches, not TF tensors
        dataset = dataset.as_numpy_iterator()
    batches = [(np.asarray(model.predict_on_batch(x)), np.asarray(y)) for x, y in dataset]
    return (np.concatenate([out for out, _ in batches]), np.concatenate([y for _, y in batches]))


def predict_split(model, split, batch_size: int):
    """``(outputs, labels)`` of a model on a split given as ``(x, y)`` arrays or a ``tf.data``
    dataset of ``(x, y)`` batches, as NumPy arrays."""
    if isinstance(split, tuple):
        x, y = split
        return model.predict(x, batch_size=batch_size, verbose=0), y
    return predict_with_labels(model, split)


def is_one_hot(label_shape) -> bool:
    """Whether labels of this shape are one-hot rows, not class indices (a single column of
    binary labels holds indices)."""
    return len(label_shape) > 1 and label_shape[-1] is not None and label_shape[-1] > 1
