"""Evaluation of a trained model on one split: its outputs with their labels, and for class labels
the loss, accuracy and per-class scores."""

import numpy as np
from sklearn.metrics import classification_report


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


def _classes(probs):
    """Class indices from probabilities (one sigmoid unit: the probability of class 1)."""
    if probs.shape[-1] == 1:
        return (probs.reshape(-1) > 0.5).astype(int)
    return probs.argmax(axis=-1)


def evaluate(model, split, class_names, batch_size):
    """Scores a classifier on a split.

    Returns:
        A dict: ``loss``, ``accuracy``, ``samples``, ``per_class`` (precision, recall, f1,
        support by class name) and ``macro`` (precision, recall, f1).
    """
    probs, y = predict_split(model, split, batch_size)
    # The loss and accuracy follow from the predictions: the compiled loss plus the weight
    # regularizers' penalties, as model.evaluate counts them (not add_loss() terms of a call).
    loss = model.compute_loss(y=y, y_pred=probs, training=False)
    y_true = y.argmax(axis=-1) if is_one_hot(np.shape(y)) else y.reshape(len(y)).astype(int)
    y_pred = _classes(probs)
    accuracy = np.mean(y_pred == y_true)
    report = classification_report(
        y_true,
        y_pred,
        labels=list(range(len(class_names))),
        target_names=list(class_names),
        output_dict=True,
        zero_division=0,
    )
    per_class = {
        name: {
            "precision": report[name]["precision"],
            "recall": report[name]["recall"],
            "f1": report[name]["f1-score"],
            "support": int(report[name]["support"]),
        }
        for name in class_names
    }
    macro = report["macro avg"]
    return {
        "loss": float(loss),
        "accuracy": float(accuracy),
        "samples": int(len(y_true)),
        "per_class": per_class,
        "macro": {
            "precision": macro["precision"],
            "recall": macro["recall"],
            "f1": macro["f1-score"],
        },
        "y_true": y_true,
        "y_pred": y_pred,
    }


def take_examples(x, indices, limit: int = 16):
    """The inputs at ``indices`` (the first ``limit``) from an array or a batched dataset."""
    wanted = sorted(indices)[:limit]
    if not wanted:
        return np.zeros((0,))
    if isinstance(x, np.ndarray):
        return x[wanted]
    found, start = [], 0
    for batch in x:
        batch = np.asarray(batch)
        found += [batch[i - start] for i in wanted if start <= i < start + len(batch)]
        start += len(batch)
        if start > wanted[-1]:
            break
    return np.stack(found)
