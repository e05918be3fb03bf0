"""The ``augment`` regularizer: random image transformations inside the model.

Keras preprocessing layers placed before the backbone; they transform images in training only
and pass them through unchanged at evaluation and prediction. They work on the raw 0..255
pixels the image datasets serve.
"""

from dataclasses import dataclass

from framework.api import IMAGES, Regularization, hookimpl, setting

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical", "none")
FILL_MODES = ("reflect", "wrap", "constant", "nearest")


@dataclass
class AugmentConfig:
    """Each factor (rotation, translation, zoom, shear, contrast) turns its layer off at 0."""

    # RandomFlip mode: horizontal, vertical, horizontal_and_vertical, or none.
    flip: str = setting("horizontal", choices=FLIP_MODES)
    # RandomRotation: fraction of a full turn either way (0.1 = up to 36 degrees).
    rotation: float = setting(0.1, at_least=0, at_most=1)
    # RandomTranslation: fraction of the height and of the width either way.
    translation: float = setting(0.1, at_least=0, at_most=1)
    # RandomZoom: fraction of the size either way (in and out).
    zoom: float = setting(0.1, at_least=0, below=1)
    # RandomShear: shear intensity along x and y, 0..1.
    shear: float = setting(0.0, at_least=0, at_most=1)
    # RandomContrast: contrast changes by a random factor in [1 - contrast, 1 + contrast].
    contrast: float = setting(0.0, at_least=0, at_most=1)
    # How rotation, translation, zoom and shear fill the pixels they uncover.
    fill_mode: str = setting("reflect", choices=FILL_MODES)


def build_augment(cfg) -> Regularization:
    """Random flip, rotation, translation, zoom, shear and contrast, in training only."""
    import keras

    fill = cfg.fill_mode
    layers = []
    if cfg.flip != "none":
        layers.append(keras.layers.RandomFlip(cfg.flip, name="random_flip"))
    if cfg.rotation:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill, name="random_rotation"))
    if cfg.translation:
        layers.append(
            keras.layers.RandomTranslation(
                cfg.translation, cfg.translation, fill, name="random_translation"
            )
        )
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode=fill, name="random_zoom"))
    if cfg.shear:
        layers.append(
            keras.layers.RandomShear(cfg.shear, cfg.shear, fill_mode=fill, name="random_shear")
        )
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, name="random_contrast"))
    if not layers:
        return Regularization()
    if keras.config.backend() == "jax":
        # Keras marks RandomTranslation and RandomZoom as not compilable by XLA, which is true
        # of TensorFlow's image transform op; on JAX they are jax.numpy and compile. Left so,
        # a model with them would train op by op on JAX ("auto" resolves jit_compile to
        # false): a small CNN's epoch took 4x as long on 2 CPU cores.
        for layer in layers:
            layer.supports_jit = True
    pipeline = keras.Sequential(layers, name="augment")
    return Regularization(on_input=pipeline)


@hookimpl
def register_regularizers(register):
    register("augment", build_augment, AugmentConfig(), takes=IMAGES)
