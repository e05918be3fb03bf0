"""The ``shapes`` dataset: generated, seeded images of shapes (circle, square, triangle, ...).

Each image holds one shape of random position, size, rotation and colour on a random background
with noise. Every image comes from its own seed (``seed``, shape, index), so a config gives the
same images whether they are served from memory or written to disk with ``write_shapes_tree``::

    python -m framework_plugins.shapes OUT_DIR --num-classes 3 --samples-per-class 100

writes ``OUT_DIR/{train,validation,test}/<shape>/<shape>_00000.png ...``, a class-folder tree
that the ``image_folder`` dataset reads back with the same class names and counts.
"""

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from framework.api import IMAGES, Data, UserError, hookimpl, one_line_usage, setting
from framework_plugins.datasets import image_data

# The first num_classes of these are drawn; class names (and labels) are then sorted, as the
# folder names of a written tree are.
SHAPES = (
    "circle",
    "square",
    "triangle",
    "cross",
    "star",
    "bar",
    "ring",
    "semicircle",
    "hexagon",
    "diamond",
)
MAX_ROTATION = 15  # degrees either way: a square never looks like a diamond (45 degrees)
MIN_CONTRAST = 80  # mean absolute difference of shape and background colours, 0..255


@dataclass
class ShapesConfig(image_data.ImageDataConfig):
    # Between 2 and 10 classes: circle, square, triangle, cross, star, bar, ring, ...
    num_classes: int = setting(3, at_least=2, at_most=len(SHAPES))
    # Images of each class, before the split (with 1000, simple_cnn learns 3 classes to 98%+).
    samples_per_class: int = setting(1000, at_least=1)
    # [height, width] of the images: the backbone's input_size (64x64 for a backbone without
    # one).
    image_size: list[int] | None = image_data.BACKBONE_INPUT_SIZE
    # Standard deviation of the pixel noise, as a fraction of 255.
    noise: float = setting(0.08, at_least=0)
    # Fraction of each class held out for validation.
    validation_split: float = setting(0.2, at_least=0, below=1)
    # Fraction of each class held out for the final test.
    test_split: float = setting(0.2, at_least=0, below=1)


def shape_image(shape: str, size: tuple[int, int], rng, noise: float):
    """Draws one image.

    Args:
        shape: one of ``SHAPES``.
        size: ``(height, width)``.
        rng: a ``numpy.random.Generator``, the image's only source of randomness.
        noise: standard deviation of the pixel noise, as a fraction of 255.

    Returns:
        A ``(height, width, 3)`` uint8 array.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    height, width = size
    background = rng.integers(0, 256, 3)
    color = rng.integers(0, 256, 3)
    while np.abs(color - background).mean() < MIN_CONTRAST:
        color = rng.integers(0, 256, 3)
    radius = rng.uniform(0.25, 0.45) * min(height, width)
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    angle = math.radians(rng.uniform(-MAX_ROTATION, MAX_ROTATION))

    image = Image.new("RGB", (width, height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(image)
    fill = tuple(int(c) for c in color)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, round(radius / 3)))
    else:
        points = [
            (
                cx + radius * (x * math.cos(angle) - y * math.sin(angle)),
                cy - radius * (x * math.sin(angle) + y * math.cos(angle)),
            )
            for x, y in _outline(shape)
        ]
        draw.polygon(points, fill=fill)
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * (noise * 255)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _outline(shape: str) -> list[tuple[float, float]]:
    """The shape's vertices within the unit circle, y pointing up."""

    def regular(n, start=90.0, r=1.0):
        return [
            (
                r * math.cos(math.radians(start + 360 * i / n)),
                r * math.sin(math.radians(start + 360 * i / n)),
            )
            for i in range(n)
        ]

    if shape == "square":
        return regular(4, start=45)
    if shape == "diamond":
        return regular(4, start=0)
    if shape == "triangle":
        return regular(3)
    if shape == "hexagon":
        return regular(6, start=0)
    if shape == "star":
        outer, inner = regular(5), regular(5, start=90 + 36, r=0.45)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a, b = 0.3, 0.9
        return [
            (a, b),
            (a, a),
            (b, a),
            (b, -a),
            (a, -a),
            (a, -b),
            (-a, -b),
            (-a, -a),
            (-b, -a),
            (-b, a),
            (-a, a),
            (-a, b),
        ]
    if shape == "bar":
        return [(1, 0.3), (-1, 0.3), (-1, -0.3), (1, -0.3)]
    if shape == "semicircle":
        # The flat side down, shifted so the half disc sits around the centre.
        return [(math.cos(math.pi * i / 16), math.sin(math.pi * i / 16) - 0.4) for i in range(17)]
    raise ValueError(f"unknown shape {shape!r}")


def iter_shapes(
    num_classes: int = 3,
    samples_per_class: int = 1000,
    image_size=(64, 64),
    seed: int = 42,
    noise: float = 0.08,
    validation_split: float = 0.2,
    test_split: float = 0.2,
):
    """Generates a shapes dataset one image at a time.

    Args:
        num_classes: how many shapes, 2 to ``len(SHAPES)``.
        samples_per_class: images of each class, before the split.
        image_size: ``(height, width)`` of the images.
        seed: the dataset's seed.
        noise: standard deviation of the pixel noise, as a fraction of 255.
        validation_split: fraction of each class held out for validation.
        test_split: fraction of each class held out for test.

    Yields:
        ``(split, class_name, index, image)`` by split, then class name, then index; ``image``
        is a ``(height, width, 3)`` uint8 array.

    Raises:
        UserError: a setting out of range.
    """
    import numpy as np

    _check(num_classes, samples_per_class, image_size, noise, validation_split, test_split)
    counts = image_data.split_counts(samples_per_class, validation_split, test_split)
    names = sorted(SHAPES[:num_classes])
    start = 0
    for split, count in zip(("train", "validation", "test"), counts, strict=True):
        for name in names:
            for index in range(start, start + count):
                # One seed per image: an image does not depend on how many others are drawn.
                rng = np.random.default_rng([seed, SHAPES.index(name), index])
                yield split, name, index, shape_image(name, tuple(image_size), rng, noise)
        start += count


def generate_shapes(
    num_classes: int = 3,
    samples_per_class: int = 1000,
    image_size=(64, 64),
    seed: int = 42,
    noise: float = 0.08,
    validation_split: float = 0.2,
    test_split: float = 0.2,
):
    """Generates a shapes dataset in memory (arguments as for ``iter_shapes``).

    Returns:
        ``(class_names, splits)``: the sorted class names, and ``{split: (images, labels)}`` with
        uint8 images ``(N, height, width, 3)`` and integer labels, for each non-empty split.
    """
    import numpy as np

    names = sorted(SHAPES[:num_classes])
    images, labels = {}, {}
    for split, name, _, image in iter_shapes(
        num_classes, samples_per_class, image_size, seed, noise, validation_split, test_split
    ):
        images.setdefault(split, []).append(image)
        labels.setdefault(split, []).append(names.index(name))
    splits = {split: (np.stack(images[split]), np.array(labels[split])) for split in images}
    return names, splits


def write_shapes_tree(
    root,
    num_classes: int = 3,
    samples_per_class: int = 1000,
    image_size=(64, 64),
    seed: int = 42,
    noise: float = 0.08,
    validation_split: float = 0.2,
    test_split: float = 0.2,
    image_format: str = "png",
) -> dict[str, dict[str, int]]:
    """Writes a shapes dataset as a class-folder tree ``root/<split>/<class>/<class>_NNNNN.<ext>``.

    Arguments as for ``iter_shapes``, plus:

    Args:
        root: the folder to write into (created if needed).
        image_format: ``png`` (lossless: the same pixels as in memory) or ``jpg``.

    Returns:
        ``{split: {class_name: count}}``.
    """
    from PIL import Image

    if image_format not in ("png", "jpg"):
        raise UserError(f"image_format must be png or jpg. Received: image_format={image_format!r}")
    root = Path(root)
    counts: dict[str, dict[str, int]] = {}
    for split, name, index, image in iter_shapes(
        num_classes, samples_per_class, image_size, seed, noise, validation_split, test_split
    ):
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{name}_{index:05d}.{image_format}")
        counts.setdefault(split, {}).setdefault(name, 0)
        counts[split][name] += 1
    return counts


def _check(num_classes, samples_per_class, image_size, noise, validation_split, test_split):
    if not 2 <= num_classes <= len(SHAPES):
        raise UserError(
            f"num_classes must be between 2 and {len(SHAPES)}. Received: num_classes={num_classes}"
        )
    if len(image_size) != 2 or min(image_size) < 8:
        raise UserError(
            f"image_size must be [height, width], each at least 8. Received: "
            f"image_size={list(image_size)}"
        )
    if noise < 0:
        raise UserError(f"noise must be at least 0. Received: noise={noise}")
    image_data.check_fractions(validation_split, test_split)
    n_train, n_val, _ = image_data.split_counts(samples_per_class, validation_split, test_split)
    if n_train < 1 or n_val < 1:
        raise UserError(
            "samples_per_class leaves no image for train or validation; raise it. Received: "
            f"samples_per_class={samples_per_class}"
        )


def build_shapes(cfg, ctx) -> Data:
    """Generated images of shapes (circles, squares, triangles...), seeded, any size and count."""
    size = image_data.image_size(cfg.image_size, ctx, (64, 64), "image_size")
    class_names, splits = generate_shapes(
        cfg.num_classes,
        cfg.samples_per_class,
        size,
        cfg.seed,
        cfg.noise,
        cfg.validation_split,
        cfg.test_split,
    )
    return image_data.in_memory_data(
        splits, class_names, size, cfg, ctx, fingerprint="generated from the config"
    )


@hookimpl
def register_datasets(register):
    register("shapes", build_shapes, ShapesConfig(), gives=IMAGES, task="classification")


def main(argv=None):
    """``python -m framework_plugins.shapes OUT_DIR [options]``: writes a shapes tree."""
    parser = one_line_usage(
        argparse.ArgumentParser(
            prog="python -m framework_plugins.shapes",
            description="Write a generated shapes dataset as train/validation/test class folders.",
        )
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--samples-per-class", type=int, default=1000)
    parser.add_argument(
        "--image-size",
        type=int,
        nargs="+",
        default=[64],
        help="one side, or height and width (default: 64)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--noise", type=float, default=0.08)
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--test-split", type=float, default=0.2)
    parser.add_argument("--format", choices=("png", "jpg"), default="png")
    args = parser.parse_args(argv)
    size = args.image_size * 2 if len(args.image_size) == 1 else args.image_size
    counts = write_shapes_tree(
        args.out_dir,
        args.num_classes,
        args.samples_per_class,
        size,
        args.seed,
        args.noise,
        args.validation_split,
        args.test_split,
        args.format,
    )
    for split, by_class in counts.items():
        print(
            f"{split}: {sum(by_class.values())} images "
            f"({', '.join(f'{n} {c}' for c, n in by_class.items())})"
        )
    print(f"written to {args.out_dir}")
