"""Regularizers: dropout after hidden layers, and L1 / L2 / L1+L2 penalties on Dense kernels."""

from dataclasses import dataclass

from framework.api import Regularization, hookimpl, setting


@dataclass
class DropoutConfig:
    # Fraction of a hidden layer's outputs dropped at each training step.
    rate: float = setting(0.3, at_least=0, below=1)


@dataclass
class FactorConfig:
    # Weight of the penalty on every Dense kernel, added to the loss.
    factor: float = setting(0.01, at_least=0)


@dataclass
class L1L2Config:
    # Weight of the L1 penalty (sum of absolute kernel values).
    l1: float = setting(0.01, at_least=0)
    # Weight of the L2 penalty (sum of squared kernel values).
    l2: float = setting(0.01, at_least=0)


def build_dropout(cfg) -> Regularization:
    """Dropout(rate) after every hidden Dense layer."""
    import keras

    return Regularization(after_hidden=lambda x: keras.layers.Dropout(cfg.rate)(x))


def build_l1(cfg) -> Regularization:
    """L1 penalty (factor * sum |w|) on every Dense kernel."""
    import keras

    return Regularization(kernel=keras.regularizers.L1(cfg.factor))


def build_l2(cfg) -> Regularization:
    """L2 penalty (factor * sum w^2) on every Dense kernel."""
    import keras

    return Regularization(kernel=keras.regularizers.L2(cfg.factor))


def build_l1_l2(cfg) -> Regularization:
    """L1 and L2 penalties together on every Dense kernel."""
    import keras

    return Regularization(kernel=keras.regularizers.L1L2(l1=cfg.l1, l2=cfg.l2))


@hookimpl
def register_regularizers(register):
    register("dropout", build_dropout, DropoutConfig())
    register("l1", build_l1, FactorConfig())
    register("l2", build_l2, FactorConfig())
    register("l1_l2", build_l1_l2, L1L2Config())
