"""Dense networks: the ``mlp`` backbone and the ``dense`` head."""

from dataclasses import dataclass

from framework.api import FEATURES, hookimpl, setting


@dataclass
class MlpConfig:
    # One hidden Dense layer per entry, e.g. [8, 4] or [16, 8, 4].
    units: list[int] = setting(default_factory=lambda: [8, 4], at_least=1)
    # Any Keras activation name: relu, tanh, elu, gelu, sigmoid...
    activation: str = "relu"


@dataclass
class DenseHeadConfig:
    # Hidden Dense layers between the backbone and the output layer; empty: none.
    units: list[int] = setting(default_factory=list, at_least=1)
    activation: str = "relu"


def build_mlp(cfg, input_shape, ctx):
    """A stack of Dense layers (multilayer perceptron) for tabular features."""
    import keras

    inputs = keras.Input(shape=input_shape)
    x = inputs
    for i, units in enumerate(cfg.units):
        x = ctx.hidden(x, units, cfg.activation, name=f"dense_{i + 1}")
    return keras.Model(inputs, x, name="mlp")


def build_dense_head(cfg, features, ctx):
    """Optional hidden Dense layers before the output layer."""
    x = features
    for i, units in enumerate(cfg.units):
        x = ctx.hidden(x, units, cfg.activation, name=f"head_dense_{i + 1}")
    return x


@hookimpl
def register_backbones(register):
    register("mlp", build_mlp, MlpConfig(), takes=FEATURES, gives=FEATURES)


@hookimpl
def register_heads(register):
    register("dense", build_dense_head, DenseHeadConfig(), takes=FEATURES)
