"""The ``digits`` dataset: scikit-learn's bundled 8x8 handwritten digits, served as images.

1797 real images of 10 digits, upsampled to the backbone's input size, with 3 channels and
values 0..255 like any photo, so image backbones take them unchanged.
"""

from dataclasses import dataclass

from framework.api import IMAGES, Data, hookimpl, setting
from framework_plugins.datasets import image_data

# The digits' pixel values run 0..16.
DIGITS_MAX = 16.0


@dataclass
class DigitsConfig(image_data.ImageDataConfig):
    # [height, width] the 8x8 digits are upsampled to: the backbone's input_size (32x32 for a
    # backbone without one).
    target_size: list[int] | None = image_data.BACKBONE_INPUT_SIZE
    # Resize method: bilinear, nearest, bicubic, area, ...
    interpolation: str = setting("bilinear", choices=image_data.INTERPOLATIONS)
    # Fraction held out for validation (stratified, seeded by `seed`).
    validation_split: float = setting(0.2, at_least=0, below=1)
    # Fraction held out for the final test (stratified, seeded by `seed`).
    test_split: float = setting(0.2, at_least=0, below=1)


def build_digits(cfg, ctx) -> Data:
    """Handwritten digits 0-9 (scikit-learn, 1797 images of 8x8) upsampled to the input size."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    size = image_data.image_size(cfg.target_size, ctx, (32, 32), "target_size")
    image_data.check_held_out(cfg.validation_split, cfg.test_split)
    digits = load_digits()
    # Three identical channels at 0..255, as a photo backbone expects.
    x = np.repeat(digits.images[..., None] * (255.0 / DIGITS_MAX), 3, axis=-1).astype(np.float32)
    y = digits.target
    held_out = cfg.validation_split + cfg.test_split
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=held_out, random_state=cfg.seed, stratify=y
    )
    splits = {"train": (x_train, y_train)}
    if cfg.test_split:
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest,
            y_rest,
            test_size=cfg.test_split / held_out,
            random_state=cfg.seed,
            stratify=y_rest,
        )
        splits.update(validation=(x_val, y_val), test=(x_test, y_test))
    else:
        splits["validation"] = (x_rest, y_rest)
    class_names = [str(d) for d in digits.target_names]
    return image_data.in_memory_data(
        splits,
        class_names,
        size,
        cfg,
        ctx,
        fingerprint="bundled with scikit-learn",
        resize=size,
        interpolation=cfg.interpolation,
    )


@hookimpl
def register_datasets(register):
    register("digits", build_digits, DigitsConfig(), gives=IMAGES, task="classification")
