"""Convolutional networks for images: the ``simple_cnn`` backbone and the ``flatten_dense`` and
``gap_dense`` heads."""

from dataclasses import dataclass

from framework.api import FEATURE_MAPS, FEATURES, IMAGES, UserError, hookimpl, setting


@dataclass
class SimpleCnnConfig:
    # [height, width] of the images the model takes; image datasets resize to it. The
    # curriculum's cats-vs-dogs CNN uses 150x150 (experiment cnn_binary); 32x32 suits digits.
    input_size: list[int] = setting(default_factory=lambda: [32, 32], at_least=1)
    # One Conv2D + MaxPooling2D block per entry.
    filters: list[int] = setting(default_factory=lambda: [32, 64, 128], at_least=1)
    kernel_size: int = setting(3, at_least=1)
    activation: str = "relu"


@dataclass
class FlattenDenseConfig:
    units: int = setting(512, at_least=1)
    activation: str = "relu"
    dropout: float = setting(0.5, at_least=0, below=1)


@dataclass
class GapDenseConfig:
    # A hidden Dense layer after the pooling; 0 or null: none.
    units: int | None = setting(None, at_least=0)
    activation: str = "relu"
    dropout: float = setting(0.2, at_least=0, below=1)


def build_simple_cnn(cfg, input_shape, ctx):
    """The classic small CNN: Conv2D + MaxPooling2D blocks (32, 64, 128 filters) on 0..255 input."""
    import keras

    height, width = input_shape[:2]
    smallest = min_input_size(len(cfg.filters), cfg.kernel_size)
    if min(height, width) < smallest:
        raise UserError(
            f"simple_cnn with {len(cfg.filters)} blocks of {cfg.kernel_size}x{cfg.kernel_size} "
            f"convolutions needs images of at least {smallest}x{smallest}. Received: "
            f"input size {height}x{width}"
        )
    inputs = keras.Input(shape=input_shape)
    # The model rescales its own input, so datasets serve raw 0..255 pixels (preprocess once).
    x = keras.layers.Rescaling(1.0 / 255, name="rescaling")(inputs)
    for i, filters in enumerate(cfg.filters, start=1):
        x = keras.layers.Conv2D(
            filters, cfg.kernel_size, activation=ctx.activation(cfg.activation), name=f"conv_{i}"
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    return keras.Model(inputs, x, name="simple_cnn")


def min_input_size(blocks: int, kernel_size: int) -> int:
    """The smallest image side that leaves at least one pixel after the conv and pool blocks."""
    side = 1
    for _ in range(blocks):
        side = 2 * side + kernel_size - 1  # undo a 2x2 pool, then a 'valid' convolution
    return side


def build_flatten_dense(cfg, features, ctx):
    """Flatten, a hidden Dense layer (512 units) and Dropout(0.5): the classic CNN head."""
    import keras

    x = keras.layers.Flatten(name="flatten")(features)
    x = ctx.hidden(x, cfg.units, cfg.activation, name="head_dense")
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    return x


def build_gap_dense(cfg, features, ctx):
    """GlobalAveragePooling2D, an optional hidden Dense layer, and Dropout."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    if cfg.units:
        x = ctx.hidden(x, cfg.units, cfg.activation, name="head_dense")
    if cfg.dropout:
        x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    return x


@hookimpl
def register_backbones(register):
    register("simple_cnn", build_simple_cnn, SimpleCnnConfig(), takes=IMAGES, gives=FEATURE_MAPS)


@hookimpl
def register_heads(register):
    register(
        "flatten_dense", build_flatten_dense, FlattenDenseConfig(), takes=(FEATURE_MAPS, FEATURES)
    )
    register("gap_dense", build_gap_dense, GapDenseConfig(), takes=FEATURE_MAPS)
