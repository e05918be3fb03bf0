"""Shared pieces of the image datasets: their common settings, the tf.data pipelines, and NumPy
arrays in their place on backends other than TensorFlow.

Every image dataset serves batches of ``(images, labels)``: images float32 in the raw 0..255
range (the model rescales them itself, so preprocessing happens exactly once), labels integer
class indices or, with ``class_mode: categorical``, one-hot rows.

TensorFlow is imported inside the functions, so loading the plugins stays cheap.
"""

from dataclasses import dataclass

from framework.api import (
    Data,
    UserError,
    load_image,
    require_tensorflow,
    setting,
    shuffle_each_epoch,
)

# The default of an image dataset's size: the backbone's input_size (the one source of truth),
# null for a backbone without one.
BACKBONE_INPUT_SIZE = "${oc.select:backbone.input_size,null}"

CLASS_MODES = ("binary", "categorical", "sparse")
INTERPOLATIONS = (
    "bilinear",
    "nearest",
    "bicubic",
    "area",
    "lanczos3",
    "lanczos5",
    "gaussian",
    "mitchellcubic",
)
# Those of keras.ops.image.resize, on every backend: in-memory images off TensorFlow.
KERAS_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5")
# Shuffle buffer for images already decoded (a cache): a full buffer would double the memory.
DECODED_SHUFFLE_BUFFER = 1000


@dataclass
class ImageDataConfig:
    """Settings every image dataset has. There is no ``rescale``: the backbone rescales 0..255
    itself, and rescaling twice stalls training."""

    # Images per batch; null: trainer.batch_size.
    batch_size: int | None = setting(None, at_least=1)
    # Labels, in flow_from_directory's words. null or sparse: integer class indices (a binary
    # task for 2 classes); binary: 0/1, exactly 2 classes; categorical: one-hot rows (a softmax
    # output, even for 2).
    class_mode: str | None = setting(None, choices=CLASS_MODES)
    # Shuffle the training split every epoch; validation and test always keep their order.
    shuffle: bool = True
    # Seed of the data (the split, and the shapes drawn), apart from the run's seed.
    seed: int = setting(42, at_least=0, at_most=2**32 - 1)


def image_size(value, ctx, default: tuple[int, int], key: str) -> tuple[int, int]:
    """The ``(height, width)`` to serve: the config's value, else the backbone's, else a default.

    Raises:
        UserError: the value is not two positive integers, or differs from the backbone's
            ``input_size`` (the model is built for that one).
    """
    size = value if value is not None else ctx.input_size or default
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise UserError(
            f"dataset.{key} must be [height, width] in pixels. Received: {key}={list(size)}"
        )
    if ctx.input_size and size != tuple(ctx.input_size):
        raise UserError(
            f"dataset.{key}={list(size)} differs from backbone.input_size="
            f"{list(ctx.input_size)}, the size the model is built for; set backbone.input_size "
            f"(dataset.{key} follows it)"
        )
    return size


def batch_size(cfg, ctx) -> int:
    """The config's batch size, else the trainer's."""
    return cfg.batch_size if cfg.batch_size is not None else ctx.batch_size


def one_hot_labels(class_mode, num_classes: int) -> bool:
    """Whether ``class_mode`` asks for one-hot labels; checks it against the class count.

    Raises:
        UserError: ``binary`` without exactly 2 classes.
    """
    if class_mode == "binary" and num_classes != 2:
        raise UserError(
            f"class_mode binary needs exactly 2 classes; use categorical or sparse. Received: "
            f"class_mode='binary' with {num_classes} classes"
        )
    return class_mode == "categorical"


def check_fractions(validation_split: float, test_split: float):
    """Checks that the validation and test fractions leave images to train on."""
    for key, value in (("validation_split", validation_split), ("test_split", test_split)):
        if not 0 <= value < 1:
            raise UserError(f"dataset.{key} must be in [0, 1). Received: {key}={value}")
    check_held_out(validation_split, test_split)


def check_held_out(validation_split: float, test_split: float):
    """Checks that the validation and test fractions (each in [0, 1)) leave images to train on."""
    if validation_split + test_split >= 1:
        raise UserError(
            "dataset.validation_split + test_split must be below 1. Received: "
            f"validation_split={validation_split}, test_split={test_split}"
        )


def split_counts(n: int, validation_split: float, test_split: float) -> tuple[int, int, int]:
    """``(train, validation, test)`` counts for ``n`` items of one class."""
    n_val = round(n * validation_split)
    n_test = round(n * test_split)
    return n - n_val - n_test, n_val, n_test


def split_counts_info(labels: dict, class_names: list[str]) -> dict:
    """Image counts for the run's report: ``{split: n, "class_counts": {split: {class: n}}}``.

    Args:
        labels: the integer labels of each split, by split name.
        class_names: the class names, in label order.
    """
    import numpy as np

    counts = {
        split: dict(zip(class_names, np.bincount(y, minlength=len(class_names)).tolist()))
        for split, y in labels.items()
    }
    return {**{split: len(y) for split, y in labels.items()}, "class_counts": counts}


def in_memory_data(
    splits: dict,
    class_names: list[str],
    size: tuple[int, int],
    cfg,
    ctx,
    *,
    fingerprint: str,
    resize=None,
    interpolation="bilinear",
) -> Data:
    """The ``Data`` of image arrays already in memory, one batched pipeline per split.

    Args:
        splits: ``{split: (images, labels)}`` with ``train`` and ``validation`` (``test`` optional).
        class_names: the class names, in label order.
        size: ``(height, width)`` served.
        cfg: the dataset's config (``class_mode``, ``batch_size``, ``shuffle``).
        ctx: the ``DataContext``.
        fingerprint: what identifies the images beyond the config (see ``Data``).
        resize: ``(height, width)`` to resize to, or None when the arrays have the size.
        interpolation: the resize method.

    Returns:
        The dataset, with a fixed-order twin of the shuffled training split.
    """
    one_hot = one_hot_labels(cfg.class_mode, len(class_names))
    batch = batch_size(cfg, ctx)
    labels = {split: y for split, (_, y) in splits.items()}
    info = {**split_counts_info(labels, class_names), "image_size": list(size)}
    import keras

    if keras.config.backend() != "tensorflow":
        # No tf.data without TensorFlow: NumPy arrays, resized once, which fit batches (and
        # shuffles) itself, and Keras copies to the device a few batches ahead.
        def arrays(split):
            images, y = splits[split]
            return resized_images(images, resize, interpolation), label_array(
                y, len(class_names), one_hot
            )

        return Data(
            class_names=class_names,
            train=arrays("train"),
            validation=arrays("validation"),
            test=arrays("test") if "test" in splits else None,
            input_shape=(*size, 3),
            info=info,
            fingerprint=fingerprint,
            shuffle=cfg.shuffle,
        )

    def pipeline(split, shuffle):
        images, labels = splits[split]
        return array_dataset(
            images,
            labels,
            batch=batch,
            num_classes=len(class_names),
            one_hot=one_hot,
            shuffle=shuffle,
            seed=ctx.seed,
            resize=resize,
            interpolation=interpolation,
        )

    return Data(
        class_names=class_names,
        train=pipeline("train", cfg.shuffle),
        validation=pipeline("validation", False),
        test=pipeline("test", False) if "test" in splits else None,
        input_shape=(*size, 3),
        info=info,
        train_in_order=pipeline("train", False) if cfg.shuffle else None,
        fingerprint=fingerprint,
    )


def resized_images(images, resize=None, interpolation="bilinear", chunk: int = 256):
    """In-memory images resized with Keras's ops (any backend), ``chunk`` at a time, as float32.

    uint8 images that need no resize stay uint8: a quarter of the memory, of each batch's
    gathering and of its copy to the device; the model casts them to float32 as its first step,
    on the device (a functional model converts its inputs to its ``Input``'s dtype).

    Raises:
        UserError: an interpolation this backend's resize lacks.
    """
    import keras
    import numpy as np

    images = np.asarray(images)
    if resize is None:
        return images if images.dtype == np.uint8 else images.astype(np.float32, copy=False)
    if interpolation not in KERAS_INTERPOLATIONS:
        raise UserError(
            f"dataset.interpolation={interpolation} is not available on the "
            f"{keras.config.backend()} backend; accepted: "
            f"{', '.join(KERAS_INTERPOLATIONS)}"
        )
    x = images.astype(np.float32, copy=False)
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(
                keras.ops.image.resize(x[i : i + chunk], tuple(resize), interpolation=interpolation)
            )
            for i in range(0, len(x), chunk)
        ]
    ).astype(np.float32)


def label_array(labels, num_classes: int, one_hot: bool):
    """Integer labels, or their one-hot float32 rows."""
    import numpy as np

    labels = np.asarray(labels, dtype=np.int64)
    return np.eye(num_classes, dtype=np.float32)[labels] if one_hot else labels


def array_dataset(
    images,
    labels,
    *,
    batch: int,
    num_classes: int,
    one_hot: bool,
    shuffle: bool = False,
    seed: int = 0,
    resize=None,
    interpolation="bilinear",
):
    """A batched tf.data pipeline over in-memory images.

    Args:
        images: ``(N, height, width, channels)`` array, values in 0..255.
        labels: ``(N,)`` integer class indices.
        batch: images per batch.
        num_classes: the class count (for one-hot labels).
        one_hot: serve one-hot label rows instead of indices.
        shuffle: reshuffle every epoch (the training split), in an order set by ``seed`` and
            the epoch (``shuffle_each_epoch``: a resumed run serves the same).
        seed: the shuffle's seed.
        resize: ``(height, width)`` to resize each batch to, or None to keep the size.
        interpolation: the resize method (a ``tf.image.resize`` method name).

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)`` batches: float32 images, or uint8 ones
        where ``images`` are uint8 and not resized (the model casts them, as for
        ``resized_images``).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = shuffle_each_epoch(ds, len(labels), seed)
    ds = ds.batch(batch)

    def prepare(x, y):
        if resize is not None:
            x = tf.image.resize(tf.cast(x, tf.float32), resize, method=interpolation)
        elif x.dtype != tf.uint8:
            x = tf.cast(x, tf.float32)
        return x, tf.one_hot(y, num_classes) if one_hot else y

    # Whole batches are converted and resized at once: cheaper than one image at a time.
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def file_dataset(
    paths,
    labels,
    *,
    size: tuple[int, int],
    channels: int,
    interpolation: str,
    batch: int,
    num_classes: int,
    one_hot: bool,
    shuffle: bool = False,
    seed: int = 0,
    cache=None,
):
    """A batched tf.data pipeline that decodes and resizes image files in parallel.

    Args:
        paths: image file paths (jpeg, png, bmp or gif).
        labels: their integer class indices.
        size: ``(height, width)`` every image is resized to.
        channels: 3 (RGB) or 1 (grayscale).
        interpolation: the resize method (a ``tf.image.resize`` method name).
        batch: images per batch.
        num_classes: the class count (for one-hot labels).
        one_hot: serve one-hot label rows instead of indices.
        shuffle: reshuffle every epoch (the training split), in an order set by ``seed`` and
            the epoch (``shuffle_each_epoch``: a resumed run serves the same).
        seed: the shuffle's seed.
        cache: None, ``"memory"``, or a file path prefix for an on-disk cache of decoded images.

    Returns:
        A ``tf.data.Dataset`` of ``(float32 images, labels)`` batches.
    """
    import numpy as np

    tf = require_tensorflow("reading image files (a tf.data pipeline)")
    paths, labels = np.asarray([str(p) for p in paths]), np.asarray(labels, dtype=np.int64)
    if shuffle and cache is not None:
        # The cache keeps one order; mix the classes (listed folder by folder) before it, so the
        # bounded shuffle after it does not see one class at a time.
        order = np.random.default_rng(seed).permutation(len(paths))
        paths, labels = paths[order], labels[order]
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle and cache is None:
        ds = shuffle_each_epoch(ds, len(paths), seed)
    ds = ds.map(
        lambda path, label: (load_image(path, size, channels, interpolation), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if cache is not None:
        ds = ds.cache("" if cache == "memory" else str(cache))
        if shuffle:
            ds = shuffle_each_epoch(ds, DECODED_SHUFFLE_BUFFER, seed)

    def to_float(x, y):
        return tf.cast(x, tf.float32), tf.one_hot(y, num_classes) if one_hot else y

    ds = ds.batch(batch).map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
