"""The image plugins: shapes, digits and image_folder datasets, simple_cnn, its heads, augment."""

import os
import warnings

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from framework.api import DataContext, UserError
from framework.deploy.run_files import load_run_model
from framework.run.model import build_model
from framework.run.train import train
from framework_plugins.datasets.digits import DigitsConfig, build_digits
from framework_plugins.datasets.image_data import resized_images
from framework_plugins.datasets.image_folder import ImageFolderConfig, build_image_folder
from framework_plugins.datasets.shapes import (
    ShapesConfig,
    build_shapes,
    generate_shapes,
    write_shapes_tree,
)
from framework_plugins.regularizers.augment import AugmentConfig, build_augment

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends

SIZE = (32, 32)
CTX = DataContext(seed=0, batch_size=8, input_size=SIZE)
# A small shapes set: 10 images per class, 6 / 2 / 2 for train / validation / test.
SMALL = {"num_classes": 3, "samples_per_class": 10, "image_size": SIZE, "seed": 7}


def arrays(split):
    """All images and labels of a split, in order: a batched tf.data pipeline, or the NumPy
    arrays in-memory datasets serve on another backend than TensorFlow."""
    if isinstance(split, tuple):
        return split
    batches = list(split.as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def folder_data(path, **settings):
    cfg = OmegaConf.structured(ImageFolderConfig(path=str(path), shuffle=False, **settings))
    return build_image_folder(cfg, CTX)


def make_folder(root, counts: dict[str, int]):
    """Class folders under ``root`` with ``counts[name]`` small PNG images each."""
    from PIL import Image

    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / name / f"{i}.png")


def test_shapes_are_determined_by_their_seed():
    names, first = generate_shapes(**SMALL)
    _, again = generate_shapes(**SMALL)
    _, other = generate_shapes(**{**SMALL, "seed": 8})
    assert names == ["circle", "square", "triangle"]
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(first[split][0], again[split][0])
        np.testing.assert_array_equal(first[split][1], again[split][1])
    assert not np.array_equal(first["train"][0], other["train"][0])
    images, labels = first["train"]
    assert images.shape == (18, *SIZE, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [6, 6, 6]


def test_a_written_tree_reads_back_like_the_generator_with_a_corrupt_file_skipped(tmp_path, capsys):
    counts = write_shapes_tree(tmp_path, **SMALL)
    (tmp_path / "train" / "circle" / "broken.jpg").write_bytes(b"not a jpeg at all")
    disk = folder_data(tmp_path)
    warnings = capsys.readouterr().err.strip().splitlines()
    memory = build_shapes(
        OmegaConf.structured(
            ShapesConfig(**{k: v for k, v in SMALL.items() if k != "image_size"}, shuffle=False)
        ),
        CTX,
    )

    assert disk.class_names == memory.class_names == sorted(counts["train"])
    assert disk.info["class_counts"] == memory.info["class_counts"] == counts
    assert disk.info["skipped"] == 1
    assert disk.info["skipped_files"] == ["train/circle/broken.jpg"]
    assert len(warnings) == 1 and "skipped 1" in warnings[0] and "broken.jpg" in warnings[0]
    for split in ("train", "validation", "test"):
        (x_disk, y_disk), (x_mem, y_mem) = (
            arrays(getattr(disk, split)),
            arrays(getattr(memory, split)),
        )
        assert x_disk.dtype == np.float32 and x_disk.max() > 1  # raw 0..255: no rescale
        np.testing.assert_array_equal(x_disk, x_mem)  # PNG is lossless
        np.testing.assert_array_equal(y_disk, y_mem)


def test_one_folder_is_split_by_validation_split(tmp_path):
    make_folder(tmp_path, {"cats": 8, "dogs": 4})
    cfg = OmegaConf.structured(
        ImageFolderConfig(
            path=str(tmp_path), shuffle=False, validation_split=0.25, target_size=[16, 16]
        )
    )
    # A backbone without an input_size: the dataset's target_size decides.
    data = build_image_folder(cfg, DataContext(seed=0, batch_size=8))
    assert data.class_names == ["cats", "dogs"]
    assert data.info["class_counts"] == {
        "train": {"cats": 6, "dogs": 3},
        "validation": {"cats": 2, "dogs": 1},
    }
    assert data.test is None and data.input_shape == (16, 16, 3)


def test_categorical_labels_are_one_hot_and_binary_needs_two_classes(tmp_path):
    make_folder(tmp_path / "train", {"a": 2, "b": 2, "c": 2})
    make_folder(tmp_path / "validation", {"a": 1, "b": 1, "c": 1})
    _, labels = arrays(folder_data(tmp_path, class_mode="categorical").validation)
    np.testing.assert_array_equal(labels, np.eye(3))
    with pytest.raises(UserError, match="binary needs exactly 2 classes"):
        folder_data(tmp_path, class_mode="binary")


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "image folder not found"),
        ({"validation": {"a": 1, "b": 1}}, "no train/ folder"),
        ({"train": {"a": 2, "b": 0}, "validation": {"a": 1, "b": 1}}, "has no readable images"),
        ({"train": {"a": 2}, "validation": {"a": 1}}, "1 class folder \\(a\\); a classifier needs"),
        ({"train": {"a": 2, "b": 2}}, "no validation/ folder"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, layout, message):
    root = tmp_path / "data"
    for split, counts in layout.items():
        make_folder(root / split, counts)
    with pytest.raises(UserError, match=message) as error:
        folder_data(root)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "blocked, message",
    [
        ("data", "is a file, not a folder of class folders"),
        ("cache", "dataset.cache='.*cache' cannot be made a folder of cache files"),
    ],
)
def test_a_file_where_a_folder_belongs_is_named_as_such(tmp_path, blocked, message):
    if blocked == "cache":
        make_folder(tmp_path / "data" / "train", {"a": 1, "b": 1})
        make_folder(tmp_path / "data" / "validation", {"a": 1, "b": 1})
    (tmp_path / blocked).write_text("")
    with pytest.raises(UserError, match=message):
        folder_data(tmp_path / "data", cache=str(tmp_path / "cache"))


def test_a_disk_cache_serves_edited_images_and_keeps_the_training_order_apart(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    for split in ("train", "validation"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(3):  # BMP: an edit keeps the file's size
                Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / split / name / f"{i}.bmp")
    settings = {"path": str(root), "cache": str(tmp_path / "cache")}
    data = build_image_folder(OmegaConf.structured(ImageFolderConfig(**settings)), CTX)
    arrays(data.train)  # writes the shuffled split's cache first
    _, in_order = arrays(data.train_in_order)
    assert in_order.tolist() == [0, 0, 0, 1, 1, 1]
    arrays(data.validation)
    edited = root / "validation" / "a" / "0.bmp"
    before = edited.stat()
    Image.new("RGB", (8, 8), (255, 255, 255)).save(edited)
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert edited.stat().st_size == before.st_size
    again = build_image_folder(OmegaConf.structured(ImageFolderConfig(**settings)), CTX)
    images, _ = arrays(again.validation)
    assert images[0].min() == 255  # the new pixels, not the cached ones


def test_digits_are_upsampled_rgb_images_split_by_class():
    data = build_digits(OmegaConf.structured(DigitsConfig(shuffle=False)), CTX)
    x, y = arrays(data.validation)
    assert data.class_names == [str(d) for d in range(10)]
    assert x.shape[1:] == (*SIZE, 3) and data.input_shape == (*SIZE, 3)
    assert x.min() >= 0 and x.max() > 200  # 0..16 scaled to 0..255
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert sum(data.info[s] for s in ("train", "validation", "test")) == 1797
    assert min(data.info["class_counts"]["validation"].values()) >= 30  # stratified


def test_uint8_images_are_served_as_uint8_and_the_model_casts_them_itself(compose):
    # A quarter of the bytes to gather for each batch and to copy to the device; resized
    # images (digits, upsampled) are float32.
    shapes = build_shapes(OmegaConf.structured(ShapesConfig(**SMALL)), CTX)
    x, _ = arrays(shapes.train)
    assert x.dtype == np.uint8
    digits = build_digits(OmegaConf.structured(DigitsConfig(shuffle=False)), CTX)
    assert arrays(digits.validation)[0].dtype == np.float32
    cfg = compose(
        "dataset=shapes",
        "backbone=simple_cnn",
        "backbone.input_size=[32,32]",
        "backbone.filters=[8,16]",
        "regularizer=[augment]",
    )
    model = build_model(cfg, shapes).model
    # Exactly what float32 copies give: the model's first step converts them.
    np.testing.assert_array_equal(
        model.predict(x, batch_size=8, verbose=0),
        model.predict(x.astype(np.float32), batch_size=8, verbose=0),
    )


def test_in_memory_images_are_resized_by_keras_or_refused_in_one_line():
    # How backends other than TensorFlow serve in-memory images (no tf.data).
    uint8 = np.full((3, 8, 8, 3), 200, np.uint8)
    assert resized_images(uint8).dtype == np.uint8  # no resize: kept as they are
    assert resized_images(uint8.astype(np.float64)).dtype == np.float32
    resized = resized_images(uint8, (16, 16), chunk=2)
    assert resized.shape == (3, 16, 16, 3) and resized.dtype == np.float32
    np.testing.assert_allclose(resized, 200, atol=1e-3)  # a flat image stays flat
    with pytest.raises(
        UserError,
        match=r"^dataset.interpolation=area is not available on the "
        r"\w+ backend; accepted: bilinear, nearest, bicubic, lanczos3, lanczos5$",
    ):
        resized_images(uint8, (16, 16), "area")


def test_augment_changes_images_in_training_only():
    augment = build_augment(
        OmegaConf.structured(
            AugmentConfig(
                flip="horizontal_and_vertical",
                rotation=0.2,
                translation=0.2,
                zoom=0.2,
                shear=0.2,
                contrast=0.2,
            )
        )
    )
    images = np.random.default_rng(0).uniform(0, 255, (4, *SIZE, 3)).astype("float32")
    layers = [layer.name for layer in augment.on_input.layers]
    assert len(layers) == 6 and "random_shear" in layers
    np.testing.assert_array_equal(augment.on_input(images, training=False), images)
    assert not np.allclose(augment.on_input(images, training=True), images)
    off = AugmentConfig(flip="none", rotation=0, translation=0, zoom=0)
    assert build_augment(OmegaConf.structured(off)).on_input is None


def test_a_model_with_augmentation_compiles_with_xla_on_jax():
    augment = build_augment(OmegaConf.structured(AugmentConfig(shear=0.1, contrast=0.1)))
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            augment.on_input,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile(loss="mse")  # jit_compile="auto"
    if keras.config.backend() == "jax":
        # Else the train step runs op by op.
        assert model.jit_compile is True
    else:  # Keras's own flags: TensorFlow's image transform op has no XLA kernel
        assert not augment.on_input.get_layer("random_zoom").supports_jit
        assert model.jit_compile is False
    model.fit(np.full((4, 16, 16, 3), 128.0, "float32"), np.zeros((4, 2)), epochs=1, verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["flatten_dense", "gap_dense"])
def test_a_cnn_trains_on_shapes_with_augmentation(compose, tmp_path, head):
    cfg = compose(
        "dataset=shapes",
        "dataset.samples_per_class=10",
        "backbone=simple_cnn",
        "backbone.input_size=[32,32]",
        "backbone.filters=[8,16]",
        f"head={head}",
        "regularizer=[augment]",
        "trainer.epochs=1",
        "trainer.verbose=0",
    )
    metrics = train(cfg, tmp_path)
    assert metrics["data"]["classes"] == ["circle", "square", "triangle"]
    assert metrics["test"]["samples"] == 6
    with warnings.catch_warnings():  # as framework.predict loads it: without a word from Keras
        warnings.simplefilter("error")
        model = load_run_model(tmp_path)
    assert model.input_shape == (None, 32, 32, 3)
    assert {"augment", "simple_cnn"} <= {layer.name for layer in model.layers}


def test_a_cnn_trains_on_one_hot_labels_from_a_folder(compose, tmp_path):
    write_shapes_tree(tmp_path / "data", **SMALL)
    cfg = compose(
        "dataset=image_folder",
        f"dataset.path={tmp_path / 'data'}",
        "dataset.class_mode=categorical",
        "backbone=simple_cnn",
        "backbone.input_size=[32,32]",
        "backbone.filters=[8]",
        "head=gap_dense",
        "head.units=8",
        "trainer.epochs=1",
        "trainer.verbose=0",
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["data"]["class_counts"]["train"] == {"circle": 6, "square": 6, "triangle": 6}
    assert metrics["evaluated_on"] == "test"


def test_simple_cnn_refuses_images_too_small(compose, tmp_path):
    cfg = compose(
        "dataset=digits",
        "dataset.target_size=null",
        "backbone=simple_cnn",
        "backbone.input_size=[16,16]",
        "head=flatten_dense",
        "trainer.verbose=0",
    )
    with pytest.raises(UserError, match="needs images of at least 22x22"):
        train(cfg, tmp_path)


@pytest.mark.parametrize(
    "overrides, size",
    [
        ([], [32, 32]),  # simple_cnn's own default
        (["backbone.input_size=[40,40]"], [40, 40]),
        (["backbone=mobilenetv2", "head=gap_dense"], [224, 224]),
        (["backbone=efficientnet", "backbone.size=b3", "head=gap_dense"], [300, 300]),
        (["dataset=shapes", "backbone.input_size=[24,24]"], [24, 24]),
    ],
)
def test_the_image_size_shown_is_the_size_served(compose, overrides, size):
    from framework.run.train import load_data

    cfg = compose(*overrides, "dataset.validation_split=0.2")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    key = "image_size" if cfg.dataset.name == "shapes" else "target_size"
    assert resolved["backbone"]["input_size"] == resolved["dataset"][key] == size
    if cfg.dataset.name == "digits" and size[0] <= 64:  # building 224x224 digits is slow
        assert load_data(cfg).input_shape == (*size, 3)


def test_efficientnet_has_no_internal_table_among_its_settings(compose):
    assert set(compose("backbone=efficientnet", "head=gap_dense").backbone) == {
        "name",
        "input_size",
        "weights",
        "frozen",
        "size",
    }


def test_a_dataset_size_apart_from_the_backbone_is_refused(compose):
    from framework.run.train import load_data

    cfg = compose("dataset.target_size=[16,16]")
    with pytest.raises(
        UserError,
        match=r"dataset.target_size=\[16, 16\] differs from "
        r"backbone.input_size=\[32, 32\]",
    ):
        load_data(cfg)


def test_a_finished_runs_data_is_rebuilt_at_the_size_it_was_trained(compose):
    from framework.run.train import load_data

    # A run from before one source of truth: its dataset kept a size of its own.
    cfg = compose("dataset.target_size=[16,16]", "backbone.input_size=[150,150]")
    assert load_data(cfg, follow_backbone=False).input_shape == (16, 16, 3)


@pytest.mark.slow
@pytest.mark.parametrize("global_seed", [0, 42])
def test_each_epochs_order_is_set_by_the_seed_and_the_epoch_whatever_the_global_seed(global_seed):
    # A run's seed=0 once crashed every shuffled image pipeline: tf.data compared its tensor
    # seed with 0 in Python ("Using a symbolic tf.Tensor as a Python bool").
    import subprocess
    import sys

    script = f"""
import tensorflow as tf
from framework.runtime.epoch_order import shuffle_each_epoch, start_epoch
tf.random.set_seed({global_seed})
ds = shuffle_each_epoch(tf.data.Dataset.range(64), 64, 7)
orders = []
for epoch in (0, 1, 0):
    start_epoch(7, epoch)
    orders.append([int(i) for i in ds])
print(orders[0] == orders[2] != orders[1], sorted(orders[1]) == list(range(64)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"]
