"""The optimizers a run can train with: one table of names, Keras classes and defaults.

The config's choices (``optimizer.name``, a stage's ``optimizer``), the ``optimizer`` config
group (``optimizer=sgd``) and the Keras optimizer a stage compiles with all come from
``OPTIMIZERS``. Keras is imported only when an optimizer is made.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Optimizer:
    """An optimizer of the table.

    Args:
        name: its name in the config (``optimizer=<name>``).
        keras_class: the class's name in ``keras.optimizers``.
        learning_rate: what a null ``optimizer.learning_rate`` means.
        momentum: what a null ``optimizer.momentum`` means (recorded; used where taken).
        takes_momentum: whether the Keras class has a ``momentum`` argument.
    """

    name: str
    keras_class: str
    learning_rate: float
    momentum: float = 0.0
    takes_momentum: bool = False


OPTIMIZERS = {
    optimizer.name: optimizer
    for optimizer in (
        Optimizer("adam", "Adam", 1e-3),
        Optimizer("adamw", "AdamW", 1e-3),
        Optimizer("rmsprop", "RMSprop", 1e-3, momentum=0.0, takes_momentum=True),
        Optimizer("sgd", "SGD", 1e-2, momentum=0.9, takes_momentum=True),
    )
}


def optimizer_settings(
    name: str, learning_rate: float | None = None, momentum: float | None = None
) -> dict:
    """The learning rate and momentum an optimizer runs with: the given ones, else its defaults.

    The name is one of ``OPTIMIZERS``, checked with the config's ranges.
    """
    defaults = OPTIMIZERS[name]
    return {
        "name": name,
        "learning_rate": defaults.learning_rate if learning_rate is None else learning_rate,
        "momentum": defaults.momentum if momentum is None else momentum,
    }


def make_optimizer(name: str, learning_rate: float | None = None, momentum: float | None = None):
    """A fresh Keras optimizer by name (one of ``OPTIMIZERS``); settings left None take the
    optimizer's defaults."""
    import keras

    settings = optimizer_settings(name, learning_rate, momentum)
    optimizer = OPTIMIZERS[name]
    kwargs = {"momentum": settings["momentum"]} if optimizer.takes_momentum else {}
    return getattr(keras.optimizers, optimizer.keras_class)(
        learning_rate=settings["learning_rate"], **kwargs
    )
