"""An example third-party plugin: the ``resmlp`` backbone, residual blocks of Dense layers.

Installed with pip, it is selected like any built-in: ``python -m framework backbone=resmlp``.
"""

from dataclasses import dataclass

from framework.api import FEATURES, hookimpl, setting


@dataclass
class ResMlpConfig:
    # Width of every block.
    width: int = setting(32, at_least=1)
    # Number of residual blocks.
    blocks: int = setting(2, at_least=1)
    activation: str = "relu"


def build_resmlp(cfg, input_shape, ctx):
    """Residual MLP: a projection, then blocks of x + Dense(Dense(x)) with layer normalization."""
    import keras

    inputs = keras.Input(shape=input_shape)
    x = ctx.dense(cfg.width, cfg.activation, name="project")(inputs)
    for i in range(cfg.blocks):
        y = ctx.hidden(x, cfg.width, cfg.activation, name=f"block{i + 1}_a")
        y = ctx.dense(cfg.width, name=f"block{i + 1}_b")(y)
        x = keras.layers.LayerNormalization(name=f"block{i + 1}_norm")(keras.layers.Add()([x, y]))
        x = keras.layers.Activation(cfg.activation)(x)
    return keras.Model(inputs, x, name="resmlp")


@hookimpl
def register_backbones(register):
    register("resmlp", build_resmlp, ResMlpConfig(), takes=FEATURES, gives=FEATURES)
