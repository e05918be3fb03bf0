"""What the core hands to parts' builders, and what a dataset builder hands back.

Light to import: Keras is imported inside the methods that use it.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework.errors import UserError

BINARY = "binary"
MULTICLASS = "multiclass"


@dataclass
class Data:
    """A dataset split three ways, with integer class labels ``0..len(class_names)-1``, or
    targets encoded for another task (``framework.api.encode_targets``).

    Args:
        class_names: names of the classes, in label order (two classes make a binary task); for
            targets encoded for another task, the names of the target columns, in column order.
        train: ``(x, y)`` NumPy arrays or a batched ``tf.data.Dataset`` of ``(x, y)``. Images
            may be uint8 (a quarter of the bytes to move): the model casts them to float32.
        validation: same form as ``train``; used for validation during fit.
        test: same form, or None to evaluate on ``validation``.
        input_shape: the shape of one example, without the batch axis.
        info: extra facts for the run's report (sizes, source path...).
        train_in_order: the training split unshuffled, when ``train`` reshuffles every epoch
            (a ``tf.data`` pipeline); the core extracts cached features from it. A pipeline
            that reshuffles with ``framework.api.shuffle_each_epoch`` serves each epoch in the
            same order in a run continued from its checkpoint; one shuffled with
            ``reshuffle_each_iteration=True`` starts again from its first epoch's order.
        fingerprint: what identifies the data beyond the dataset's config, e.g. a hash of file
            names, sizes and modification times; None if unknown, which turns feature caching
            off for ``tf.data`` splits (NumPy splits are hashed by the core).
        shuffle: whether fit reshuffles NumPy training arrays every epoch (a ``tf.data``
            pipeline shuffles itself).
        targets_for: the task the targets are encoded for (``Targets.task``); None for class
            labels.
    """

    class_names: list[str]
    train: Any
    validation: Any
    test: Any
    input_shape: tuple[int, ...]
    info: dict[str, Any] = field(default_factory=dict)
    train_in_order: Any = None
    fingerprint: str | None = None
    shuffle: bool = True
    targets_for: str | None = None

    @property
    def task(self) -> str:
        """``binary`` or ``multiclass`` for class labels, else the task the targets are for."""
        if self.targets_for is not None:
            return self.targets_for
        return BINARY if len(self.class_names) == 2 else MULTICLASS

    def pooled(self) -> tuple:
        """Train and validation as one ``(x, y)`` pair, train's rows first: what a protocol's
        ``Round.validation`` indexes.

        Raises:
            UserError: a split is a ``tf.data`` pipeline, which cannot be re-cut.
        """
        import numpy as np

        if not self.in_arrays:
            raise UserError(
                "a protocol that re-cuts train and validation (protocol=kfold, or a refit) "
                "needs them as arrays, or every stage training on cached features of a frozen "
                "backbone; this dataset gives tf.data pipelines: use protocol=seeds or "
                "protocol=holdout, or a head-only stage (trainer.stages) with "
                "trainer.feature_cache.enabled=true"
            )
        return pooled(self.train, self.validation, np)

    @property
    def in_arrays(self) -> bool:
        """Whether train and validation (where there is one: a refit has none) are ``(x, y)``
        arrays, not ``tf.data`` pipelines."""
        return isinstance(self.train, tuple) and isinstance(self.validation, (tuple, type(None)))

    def pooled_targets(self):
        """The targets of train and validation, train's first (a pipeline's in the order of
        ``train_in_order``, as its features are extracted): what ``Round.validation`` indexes."""
        import numpy as np

        def targets(split):
            if isinstance(split, tuple):
                return np.asarray(split[1])
            return np.concatenate([np.asarray(y) for _, y in split])

        train = self.train_in_order if self.train_in_order is not None else self.train
        return np.concatenate([targets(train), targets(self.validation)])

    def recut(self, validation_rows) -> "Data":
        """The data with train and validation cut again: the rows ``validation_rows`` of
        ``pooled()`` validate, the others train; test unchanged."""
        train, validation = recut(self.train, self.validation, validation_rows)
        return dataclasses.replace(self, train=train, validation=validation, train_in_order=None)


def pooled(train: tuple, validation: tuple, np) -> tuple:
    """``(x, y)`` of train and validation together, train's rows first."""
    return tuple(np.concatenate([a, b]) for a, b in zip(train, validation, strict=True))


def recut(train: tuple, validation: tuple, validation_rows) -> tuple[tuple, tuple]:
    """The one place where splits are cut again for a round of a protocol (``Round``): the
    data's own, or a frozen backbone's features of them (indexed the same way).

    Args:
        train: ``(x, y)`` arrays.
        validation: ``(x, y)`` arrays.
        validation_rows: the rows of train+validation (train's first) that validate.

    Returns:
        The new ``(train, validation)``, each ``(x, y)``; rows keep their order.
    """
    import numpy as np

    x, y = pooled(train, validation, np)
    validates = np.zeros(len(y), dtype=bool)
    validates[np.asarray(validation_rows)] = True
    return (x[~validates], y[~validates]), (x[validates], y[validates])


def output_classes(units: int) -> int:
    """How many classes a classifier's output units stand for: one sigmoid unit (a binary
    classifier's) stands for two."""
    return 2 if units == 1 else units


def class_probabilities(outputs):
    """One probability per class from a classifier's outputs (``output_classes``): one sigmoid
    unit is the probability of the second class.

    Args:
        outputs: a ``(samples, units)`` array.

    Returns:
        A ``(samples, classes)`` NumPy array of ``outputs``' dtype.
    """
    import numpy as np

    probs = np.asarray(outputs)
    if output_classes(probs.shape[-1]) != probs.shape[-1]:
        probs = np.concatenate([1 - probs, probs], axis=-1)
    return probs


@dataclass
class DataContext:
    """Passed to dataset builders.

    Args:
        seed: the run's seed.
        batch_size: the trainer's batch size (for datasets that batch).
        input_size: the backbone's preferred ``(height, width)`` for images, or None.
        task: the task the run asks for (``task=``), or ``auto``: for a dataset that encodes raw
            target columns with ``framework.api.encode_targets``.
    """

    seed: int
    batch_size: int
    input_size: tuple[int, int] | None = None
    task: str = "auto"


@dataclass
class Regularization:
    """What a regularizer does to the model; any field may be left unset.

    Args:
        kernel: a ``keras.regularizers.Regularizer`` for the kernel of every Dense layer built
            through ``ModelContext.dense``.
        after_hidden: a function ``x -> x`` applied after each hidden Dense layer.
        on_input: a function ``x -> x`` applied to the model's input, before the backbone
            (active in training only where its layers are, e.g. augmentation).
    """

    kernel: Any = None
    after_hidden: Callable | None = None
    on_input: Callable | None = None


@dataclass
class ModelContext:
    """Passed to backbone and head builders.

    Args:
        task: ``"binary"`` or ``"multiclass"``, or the task the targets are for (``Data.task``).
        num_classes: the dataset's class count (its target count, for other tasks).
        regularizations: the run's regularizers, in config order.
    """

    task: str
    num_classes: int
    regularizations: list[Regularization] = field(default_factory=list)

    def kernel_regularizer(self):
        """The combined kernel regularizer of the run's regularizers, or None."""
        import keras

        kernels = [r.kernel for r in self.regularizations if r.kernel is not None]
        if len(kernels) <= 1:
            return kernels[0] if kernels else None
        l1 = l2 = 0.0
        for k in kernels:
            cfg = k.get_config()
            if not set(cfg) <= {"l1", "l2"}:
                raise UserError(
                    f"cannot combine the kernel regularizer {type(k).__name__} {cfg} with "
                    "another: only L1/L2 penalties add up; select one regularizer that sets "
                    "kernel, or only l1, l2 and l1_l2"
                )
            l1 += cfg.get("l1", 0.0)
            l2 += cfg.get("l2", 0.0)
        return keras.regularizers.L1L2(l1=l1, l2=l2)

    def activation(self, name):
        """Returns ``name`` if Keras knows the activation.

        Raises:
            UserError: an unknown activation name.
        """
        import keras

        try:
            keras.activations.get(name)
        except ValueError:
            raise UserError(
                f"unknown activation {name!r}; accepted: any keras.activations name, "
                "e.g. relu, tanh, sigmoid, elu, gelu, selu, softplus, swish, linear"
            ) from None
        return name

    def dense(self, units: int, activation=None, name: str | None = None, dtype=None):
        """A Dense layer carrying the run's kernel regularizer (``dtype``: its dtype policy, None
        for the global one)."""
        import keras

        return keras.layers.Dense(
            units,
            activation=self.activation(activation),
            kernel_regularizer=self.kernel_regularizer(),
            name=name,
            dtype=dtype,
        )

    def hidden(self, x, units: int, activation="relu", name: str | None = None):
        """A hidden Dense layer on ``x``, followed by the regularizers' ``after_hidden`` steps."""
        x = self.dense(units, activation, name=name)(x)
        for r in self.regularizations:
            if r.after_hidden is not None:
                x = r.after_hidden(x)
        return x


@dataclass
class RunContext:
    """Passed to callback builders.

    Args:
        run_dir: the run's output directory; callbacks write inside it.
        stage: the name of the training stage the callbacks are built for.
    """

    run_dir: Path
    stage: str = "train"
