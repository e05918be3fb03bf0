"""Backbones from ``keras.applications`` for transfer learning: VGG16/19, ResNet50(V2),
InceptionV3, Xception, MobileNetV2, DenseNet121 and EfficientNet B0-B7.

Each backbone is a small wrapper model::

    Input (raw 0..255 RGB) -> the family's own preprocess_input, as Keras layers
                           -> the application without its top, named "base", training=False

so a saved model takes raw images and needs nothing else to predict, and the core's
``trainable: {last: N}`` reaches the application's layers (``framework.run.model.base_layers``
descends into the one nested model). ``weights`` is ``imagenet`` (downloaded by Keras into its
cache, ``~/.keras/models`` or ``$KERAS_HOME/models``), null (random initialization) or the path of
a weights file, e.g. one written with ``save_weights`` from the application model. A backbone
with pretrained weights is built frozen (``frozen``), as transfer learning starts: a run without
``trainer.stages`` trains the head on its features.
"""

import http.client
import warnings
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from framework.api import FEATURE_MAPS, IMAGES, UserError, hookimpl, setting

# keras.applications' preprocess_input modes, done by layers inside the model.
CAFFE_MEAN_BGR = [103.939, 116.779, 123.68]
TORCH_MEAN = [0.485, 0.456, 0.406]
TORCH_STD = [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class Family:
    """One ``keras.applications`` model.

    Args:
        constructor: its function in ``keras.applications``, e.g. ``"VGG16"``.
        preprocessing: its ``preprocess_input`` mode: ``"caffe"`` (RGB to BGR, minus the ImageNet
            means), ``"tf"`` (to -1..1), ``"torch"`` (to 0..1, then standardized per channel), or
            None (the model rescales its input itself: EfficientNet).
        input_size: the side of the images its ImageNet weights were trained on.
        min_size: the smallest side it accepts without its top.
    """

    constructor: str
    preprocessing: str | None
    input_size: int
    min_size: int


EFFICIENTNET_SIZES = {
    "b0": 224,
    "b1": 240,
    "b2": 260,
    "b3": 300,
    "b4": 380,
    "b5": 456,
    "b6": 528,
    "b7": 600,
}
FAMILIES = {
    "vgg16": Family("VGG16", "caffe", 224, 32),
    "vgg19": Family("VGG19", "caffe", 224, 32),
    "resnet50": Family("ResNet50", "caffe", 224, 32),
    "resnet50v2": Family("ResNet50V2", "tf", 224, 32),
    "inceptionv3": Family("InceptionV3", "tf", 299, 75),
    "xception": Family("Xception", "tf", 299, 71),
    "mobilenetv2": Family("MobileNetV2", "tf", 224, 32),
    "densenet121": Family("DenseNet121", "torch", 224, 32),
    **{
        f"efficientnet{size}": Family(f"EfficientNet{size.upper()}", None, side, 32)
        for size, side in EFFICIENTNET_SIZES.items()
    },
}


@dataclass
class ApplicationConfig:
    # [height, width] the dataset resizes images to; the default is the size the ImageNet
    # weights were trained on.
    input_size: list[int] = setting(default_factory=lambda: [224, 224], at_least=1)
    # imagenet (downloaded once into Keras's cache), null (random initialization), or the path
    # of a weights file of the application without its top (e.g. written by save_weights).
    weights: str | None = "imagenet"
    # Built frozen (base_model.trainable = False), so a run without trainer.stages trains only
    # the head: null freezes pretrained weights (imagenet or a file) and not random ones.
    frozen: bool | None = None


@dataclass
class EfficientNetConfig(ApplicationConfig):
    # Default: the input size of the chosen size (b0 224, b1 240, ... b7 600).
    input_size: list[int] = "${efficientnet_input_size:${.size}}"
    # b0 .. b7.
    size: str = setting("b0", choices=EFFICIENTNET_SIZES)


def efficientnet_input_size(size: str) -> list[int]:
    """The input size an EfficientNet size's ImageNet weights were trained on, as [h, w]."""
    if size not in EFFICIENTNET_SIZES:
        raise UserError(
            f"backbone.size must be one of {', '.join(EFFICIENTNET_SIZES)}. Received: size={size!r}"
        )
    return [EFFICIENTNET_SIZES[size]] * 2


# Resolved when the config is, so --cfg job --resolve shows the size a run uses.
OmegaConf.register_new_resolver("efficientnet_input_size", efficientnet_input_size, replace=True)


def build_application(cfg, input_shape, ctx):
    """A ``keras.applications`` model without its top, with its preprocessing inside.

    Args:
        cfg: the backbone config: its ``name`` picks the family (and ``size`` for
            ``efficientnet``), ``weights`` the initialization.
        input_shape: ``(height, width, 3)`` of the raw 0..255 RGB images.
        ctx: the model context (unused: the application has no Dense layers to regularize).

    Returns:
        A ``keras.Model`` named after the family, around the application model named ``base``;
        not trainable when frozen (by default when its weights are pretrained).

    Raises:
        UserError: an unknown EfficientNet size, images that are not RGB or smaller than the
            family's minimum, a weights file that is missing or does not fit, or a failed
            download of the ImageNet weights.
    """
    import keras

    family_name = _family_name(cfg)
    family = FAMILIES[family_name]
    _check_input_shape(family_name, family, input_shape)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = preprocess(inputs, family.preprocessing)
    base = _application(family_name, family, tuple(input_shape), cfg.weights)
    # training=False as the Keras transfer-learning guide prescribes. Keras 3 replaces it with
    # the outer call's flag during fit (keras-team/keras#20285), so BatchNormalization stays in
    # inference mode only while its layers are not trainable: the core's set_trainable keeps
    # them so when it unfreezes the last layers of the base, or all of a pretrained one.
    outputs = base(x, training=False)
    model = keras.Model(inputs, outputs, name=family_name)
    frozen = cfg.get("frozen")
    model.trainable = not (cfg.weights is not None if frozen is None else frozen)
    return model


def preprocess(x, mode: str | None):
    """Applies ``keras.applications``' ``preprocess_input`` of a mode with serializable layers.

    Args:
        x: raw 0..255 RGB images, channels last.
        mode: ``"caffe"``, ``"tf"``, ``"torch"`` or None (no preprocessing).

    Returns:
        The preprocessed tensor.
    """
    import keras

    if mode == "caffe":
        # A Keras op (saved and loaded like a layer, no Lambda) rather than a permuting Dense
        # layer: it has no weights, so unfreezing the backbone cannot make them trainable.
        x = keras.ops.flip(x, axis=-1)  # RGB -> BGR
        return keras.layers.Normalization(
            mean=CAFFE_MEAN_BGR, variance=[1.0, 1.0, 1.0], name="caffe_mean"
        )(x)
    if mode == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(x)
    if mode == "torch":
        x = keras.layers.Rescaling(1 / 255, name="to_0_1")(x)
        return keras.layers.Normalization(
            mean=TORCH_MEAN, variance=[s**2 for s in TORCH_STD], name="imagenet_standardize"
        )(x)
    if mode is None:
        return x
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def _family_name(cfg) -> str:
    if cfg.name != "efficientnet":
        return cfg.name
    if cfg.size not in EFFICIENTNET_SIZES:
        raise UserError(
            f"backbone.size must be one of {', '.join(EFFICIENTNET_SIZES)}. "
            f"Received: size={cfg.size!r}"
        )
    return f"efficientnet{cfg.size}"


def _check_input_shape(name: str, family: Family, input_shape):
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise UserError(
            f"backbone {name} needs RGB images of shape (height, width, 3); for an image folder "
            f"set dataset.color_mode=rgb. Received: input shape {tuple(input_shape)}"
        )
    height, width = input_shape[:2]
    if min(height, width) < family.min_size:
        raise UserError(
            f"backbone {name} needs images of at least {family.min_size}x{family.min_size}. "
            f"Received: input size {height}x{width}"
        )


def _application(name: str, family: Family, input_shape, weights):
    """The application model, initialized as ``weights`` says."""
    import keras

    constructor = getattr(keras.applications, family.constructor)
    kwargs = dict(include_top=False, input_shape=input_shape, pooling=None, name="base")
    if weights is None:
        return constructor(weights=None, **kwargs)
    if weights == "imagenet":
        try:
            with warnings.catch_warnings():
                # MobileNetV2 at a size it has no weights for loads the 224 ones and warns;
                # without the top they fit every size.
                warnings.filterwarnings(
                    "ignore", message="`input_shape` is undefined or non-square"
                )
                return constructor(weights="imagenet", **kwargs)
        except Exception as e:
            if not _is_download_error(e):
                raise
            raise UserError(
                f"the download of the ImageNet weights for {name} failed ({_reason(e)}); "
                "set backbone.weights=null for random initialization, or "
                "backbone.weights=/path/to/weights.h5 for a local file"
            ) from None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(
            "backbone.weights must be imagenet, null or the path of a weights file. "
            f"Received: weights={weights!r} (no such file)"
        )
    # A file that does not fit also sets off a warning per skipped layer: only the error counts.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            base = constructor(weights=str(path), **kwargs)
        except (ValueError, OSError) as e:
            raise UserError(
                f"the weights file does not fit {name} without its top: {_reason(e)}. "
                f"Received: weights={weights!r}"
            ) from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return base


def _is_download_error(error: Exception) -> bool:
    # keras.utils.get_file turns a failed fetch into a plain Exception; sockets raise OSError.
    return type(error) is Exception or isinstance(error, (OSError, http.client.HTTPException))


def _reason(error: Exception) -> str:
    """The first line of an error's message (Keras's go on for pages), less a closing sentence
    that only introduces the next lines."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = lines[0]
    if line.endswith(":"):
        line = line.rsplit(". ", 1)[0]
    return line.rstrip(".:")


@hookimpl
def register_backbones(register):
    for name, family in FAMILIES.items():
        if name.startswith("efficientnet") and name != "efficientnetb0":
            continue  # the other sizes: efficientnet with backbone.size
        inside = (
            f"{family.preprocessing} preprocessing inside"
            if family.preprocessing
            else "it rescales them itself"
        )
        side, smallest = family.input_size, family.min_size
        register(
            name,
            build_application,
            ApplicationConfig(input_size=[side, side]),
            f"{family.constructor} from keras.applications on raw 0..255 RGB ({inside}); "
            f"{side}x{side}, at least {smallest}x{smallest}",
            takes=IMAGES,
            gives=FEATURE_MAPS,
        )
    register(
        "efficientnet",
        build_application,
        EfficientNetConfig(),
        "EfficientNet B0-B7 from keras.applications by backbone.size (it rescales 0..255 itself)",
        takes=IMAGES,
        gives=FEATURE_MAPS,
    )
