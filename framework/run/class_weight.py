"""``trainer.class_weight`` resolved for a run: the weight of each class in the training loss,
which Keras's ``fit(class_weight=...)`` applies to each training example by its label (NumPy
arrays, cached features and ``tf.data`` pipelines alike, on every backend)."""

import numpy as np

from framework.errors import UserError
from framework.parts.tasks import Task, check_class_weight
from framework.run.evaluation import is_one_hot, split_arrays

BALANCED = "balanced"


def class_weights(setting, task: Task, data, source: str) -> dict[str, float] | None:
    """The weight of each class, as ``trainer.class_weight`` sets it.

    Args:
        setting: ``trainer.class_weight``, plain: None, ``"balanced"`` or
            ``{class name: weight}``.
        task: the run's task; it must weigh classes (``Task.weighs_classes``).
        data: the run's data; ``balanced`` counts the labels of its training split.
        source: the dataset, for messages, e.g. ``"dataset 'iris'"``.

    Returns:
        ``{class name: weight}`` of every class, in label order (classes a map leaves out weigh
        1); None where the setting is null.

    Raises:
        UserError: the task weighs no classes, a class the data does not have is named, or
            ``balanced`` finds a class without training examples.
    """
    if setting is None:
        return None
    check_class_weight(task, setting)
    names = [str(name) for name in data.class_names]
    if setting == BALANCED:
        # scikit-learn's "balanced": n_samples / (n_classes * the class's count).
        counts = _training_counts(data, len(names))
        missing = [name for name, count in zip(names, counts) if count == 0]
        if missing:
            raise UserError(
                f"trainer.class_weight=balanced needs every class in the training split; "
                f"{source} has no {missing[0]!r} there"
            )
        return {
            name: float(counts.sum() / (len(names) * count)) for name, count in zip(names, counts)
        }
    weights = {str(name): float(weight) for name, weight in setting.items()}
    unknown = [name for name in weights if name not in names]
    if unknown:
        raise UserError(
            f"trainer.class_weight names class {unknown[0]!r}, which {source} does not have; "
            f"accepted: {', '.join(names)}"
        )
    return {name: weights.get(name, 1.0) for name in names}


def _training_counts(data, classes: int) -> np.ndarray:
    """The training examples of each class (read from the split's fixed-order twin, where it
    reshuffles: its order is not disturbed)."""
    split = data.train_in_order if data.train_in_order is not None else data.train
    y = np.asarray(split_arrays(split)[1])
    labels = y.argmax(axis=-1) if is_one_hot(y.shape) else y.reshape(len(y)).round().astype(int)
    return np.bincount(labels, minlength=classes)
