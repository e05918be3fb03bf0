"""The keras.applications backbones: preprocessing, build-train-save-reload, freezing, input
sizes, weights files and the offline error. No test touches the network: weights are null or
files the tests write."""

import keras
import numpy as np
import pytest

import framework.run.train as train_module
from framework.api import Data, ModelContext, UserError
from framework.parts.registry import backbones
from framework.run.model import base_layers, build_model, set_trainable
from framework.run.train import train
from framework_plugins.models.applications import FAMILIES, build_application, preprocess

APPLICATIONS = [part.name for part in backbones if part.builder is build_application]
# The keras.applications module whose preprocess_input each family's layers must reproduce.
KERAS_MODULES = {
    "vgg16": "vgg16",
    "vgg19": "vgg19",
    "resnet50": "resnet50",
    "resnet50v2": "resnet_v2",
    "inceptionv3": "inception_v3",
    "xception": "xception",
    "mobilenetv2": "mobilenet_v2",
    "densenet121": "densenet",
    "efficientnetb0": "efficientnet",
}
CTX = ModelContext("multiclass", 3)
# 9 / 3 / 3 images in batches of 3: every batch has one shape, so each function traces once.
FEW_SHAPES = (
    "dataset=shapes",
    "dataset.samples_per_class=5",
    "dataset.batch_size=3",
    "head=gap_dense",
    "backbone.weights=null",
    "trainer.verbose=0",
)


def family(name) -> str:
    """The family a registered name builds by default (``efficientnet`` is B0)."""
    return "efficientnetb0" if name == "efficientnet" else name


def build(compose, name, size, *overrides, channels=3):
    """The backbone ``name`` for ``size x size`` images, from its composed config."""
    cfg = compose(f"backbone={name}", *overrides).backbone
    return backbones.get(name).build(cfg, (size, size, channels), CTX)


def test_every_registered_application_is_checked_here():
    assert set(APPLICATIONS) == {*KERAS_MODULES, "efficientnet"}


@pytest.mark.parametrize("name", sorted(KERAS_MODULES))
def test_preprocessing_layers_match_keras_preprocess_input(name):
    inputs = keras.Input((16, 16, 3))
    layers = keras.Model(inputs, preprocess(inputs, FAMILIES[name].preprocessing))
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    module = getattr(keras.applications, KERAS_MODULES[name])
    expected = module.preprocess_input(images.copy())  # it works in place on arrays
    np.testing.assert_allclose(layers.predict(images, verbose=0), expected, atol=1e-3)


# efficientnet builds B0 by default, as efficientnetb0 does: one test covers both names. What
# differs between families is their builder and their layers; training them through the core is
# the same for all (the tests below train MobileNetV2: head-only on cached features, then
# fine-tuning), so each family is built by the core's build_model, saved by its _save_model
# (uncompiled here) and reloaded, not trained.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({family(name) for name in APPLICATIONS}))
def test_builds_saves_and_reloads_with_identical_predictions(name, compose, tmp_path):
    size = FAMILIES[name].min_size
    cfg = compose(*FEW_SHAPES, f"backbone={name}", f"backbone.input_size=[{size},{size}]")
    data = Data(
        class_names=["a", "b", "c"],
        train=None,
        validation=None,
        test=None,
        input_shape=(size, size, 3),
    )
    model = build_model(cfg, data).model
    assert model.get_layer(name).get_layer("base")  # the application, named for freezing
    train_module._save_model(model, tmp_path)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    images = np.random.default_rng(1).uniform(0, 255, (3, size, size, 3)).astype("float32")
    # Eager calls: tracing a predict function of each model would take longer than the rest.
    np.testing.assert_array_equal(
        model(images, training=False).numpy(), loaded(images, training=False).numpy()
    )


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """MobileNetV2 trained head first, then its last 4 layers at 1e-5.

    Returns:
        ``(base, before, after)``: the application model, and ``{variable path: value}`` of all
        its variables as built and after training.
    """
    from conftest import compose_config

    tmp_path = tmp_path_factory.mktemp("fine_tune")
    captured = {}
    original = train_module.set_trainable

    def keep_backbone(backbone, *args):
        if "before" not in captured:
            captured["base"] = base = backbone.get_layer("base")
            captured["before"] = {v.path: v.numpy().copy() for v in base.variables}
        original(backbone, *args)

    cfg = compose_config(
        *FEW_SHAPES,
        "backbone=mobilenetv2",
        "backbone.input_size=[32,32]",
        "trainer.stages=[{name: head, epochs: 1, trainable: head}, "
        "{name: finetune, epochs: 1, trainable: {last: 4}, learning_rate: 1e-5}]",
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)  # where a feature cache, if the core keeps one, goes
        monkeypatch.setattr(train_module, "set_trainable", keep_backbone)
        train(cfg, tmp_path / "run")
    base = captured["base"]
    return base, captured["before"], {v.path: v.numpy() for v in base.variables}


@pytest.mark.slow
def test_fine_tuning_the_last_layers_trains_those_and_keeps_the_rest(fine_tuned):
    base, before, after = fine_tuned
    layers = base_layers(base)
    first = len(layers) - 4
    batch_norm = [isinstance(layer, keras.layers.BatchNormalization) for layer in layers]
    # BatchNormalization layers stay frozen, in inference mode (see the next test).
    assert [(layer.name, layer.trainable) for layer in layers] == [
        (layer.name, i >= first and not batch_norm[i]) for i, layer in enumerate(layers)
    ]
    assert any(batch_norm[first:])  # the last 4 layers do hold some
    last_conv = base.get_layer("Conv_1").kernel.path
    assert not np.array_equal(before[last_conv], after[last_conv])
    for layer in layers[:first]:
        for v in layer.weights:
            np.testing.assert_array_equal(before[v.path], after[v.path], err_msg=v.path)


def test_batch_normalization_stays_in_inference_mode_while_fine_tuning(fine_tuned):
    base, before, after = fine_tuned
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for v in (layer.moving_mean, layer.moving_variance):
                np.testing.assert_array_equal(before[v.path], after[v.path], err_msg=v.path)


@pytest.fixture
def weights_file(compose, tmp_path):
    """Weights of MobileNetV2 without its top, as a user's pretrained weights would be."""
    path = tmp_path / "pretrained.weights.h5"
    build(compose, "mobilenetv2", 32, "backbone.weights=null").get_layer("base").save_weights(path)
    return path


@pytest.mark.slow
def test_pretrained_weights_build_a_frozen_backbone(compose, weights_file):
    pretrained = f"backbone.weights='{weights_file}'"
    assert not build(compose, "mobilenetv2", 32, pretrained).trainable
    assert build(compose, "mobilenetv2", 32, "backbone.weights=null").trainable
    assert not build(
        compose, "mobilenetv2", 32, "backbone.weights=null", "backbone.frozen=true"
    ).trainable
    assert build(compose, "mobilenetv2", 32, pretrained, "backbone.frozen=false").trainable


@pytest.mark.slow
def test_without_stages_only_the_head_trains_on_a_pretrained_backbone(
    compose, tmp_path, monkeypatch, kept_model, weights_file
):
    monkeypatch.chdir(tmp_path)
    cfg = compose(
        *FEW_SHAPES,
        "backbone=mobilenetv2",
        "backbone.input_size=[32,32]",
        f"backbone.weights='{weights_file}'",
        "trainer.epochs=1",
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["stages"][0]["trainable"] == "head"
    assert metrics["stages"][0]["cached_features"]
    trained = kept_model["model"].get_layer("mobilenetv2").get_layer("base")
    pretrained = build(compose, "mobilenetv2", 32, f"backbone.weights='{weights_file}'")
    for a, b in zip(pretrained.get_layer("base").weights, trained.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_all_trainable_keeps_batch_normalization_frozen_only_in_a_backbone_built_frozen(compose):
    backbone = build(compose, "mobilenetv2", 32, "backbone.weights=null")
    batch_norm = [
        layer
        for layer in backbone.get_layer("base").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    set_trainable(backbone, "all", pretrained=False)  # from scratch: BatchNormalization learns
    assert batch_norm and all(layer.trainable for layer in batch_norm)
    set_trainable(backbone, "all", pretrained=True)
    assert not any(layer.trainable for layer in batch_norm)
    assert backbone.get_layer("base").get_layer("Conv_1").trainable


def test_fine_tuning_a_pretrained_backbone_whole_keeps_its_moving_statistics():
    # A small stand-in: a random MobileNetV2 in inference mode passes on almost no signal.
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    backbone.trainable = False  # as a plugin builds a pretrained backbone
    set_trainable(backbone, "all", pretrained=True)
    model = keras.Sequential([backbone, keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    before = {v.path: v.numpy().copy() for v in backbone.weights}
    images = np.random.default_rng(0).normal(5, 3, (8, 8, 8, 3)).astype("float32")
    model.fit(images, np.ones((8, 1)), epochs=2, verbose=0)
    assert not np.array_equal(before["conv/kernel"], backbone.get_layer("conv").kernel.numpy())
    for v in backbone.get_layer("bn").weights:
        np.testing.assert_array_equal(before[v.path], v.numpy(), err_msg=v.path)


@pytest.mark.parametrize("name, size", [("vgg16", 31), ("inceptionv3", 74), ("xception", 70)])
def test_images_below_the_minimum_size_are_refused_in_one_line(name, size, compose):
    minimum = FAMILIES[name].min_size
    with pytest.raises(UserError) as error:
        build(compose, name, size)
    message = str(error.value)
    assert "\n" not in message
    assert name in message and f"{minimum}x{minimum}" in message and f"{size}x{size}" in message


def test_images_must_have_three_channels(compose):
    with pytest.raises(UserError, match="RGB") as error:
        build(compose, "mobilenetv2", 32, channels=1)
    assert "(32, 32, 1)" in str(error.value)


def test_efficientnet_input_size_follows_its_size(compose):
    assert list(compose("backbone=efficientnet").backbone.input_size) == [224, 224]
    assert list(compose("backbone=efficientnet", "backbone.size=b3").backbone.input_size) == [
        300,
        300,
    ]
    with pytest.raises(UserError, match="b0, b1"):
        build(compose, "efficientnet", 32, "backbone.size=b9", "backbone.input_size=[32,32]")


@pytest.mark.slow
def test_a_weights_file_round_trip_gives_the_same_weights(compose, tmp_path):
    path = tmp_path / "base.weights.h5"
    saved = build(compose, "mobilenetv2", 32, "backbone.weights=null").get_layer("base")
    saved.save_weights(path)
    # The weights of the application without its top fit every input size.
    loaded = build(compose, "mobilenetv2", 48, f"backbone.weights='{path}'").get_layer("base")
    for a, b in zip(saved.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_weights_file_of_another_architecture_is_refused_in_one_line(compose, tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    build(compose, "vgg16", 32, "backbone.weights=null").get_layer("base").save_weights(path)
    with pytest.raises(UserError, match="does not fit mobilenetv2") as error:
        build(compose, "mobilenetv2", 32, f"backbone.weights='{path}'")
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="no such file"):
        build(compose, "mobilenetv2", 32, f"backbone.weights='{tmp_path / 'missing.h5'}'")


@pytest.mark.slow
def test_offline_imagenet_download_fails_in_one_line_naming_the_alternatives(cli, tmp_path):
    unreachable = "http://127.0.0.1:9"  # nothing listens on the discard port
    env = {"KERAS_HOME": str(tmp_path / "keras_home"), "NO_PROXY": "", "no_proxy": ""}
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[var] = unreachable
    result = cli("backbone=mobilenetv2", "head=gap_dense", "trainer.epochs=1", env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "download of the ImageNet weights for mobilenetv2 failed" in lines[0]
    assert "backbone.weights=null" in lines[0]
    assert "backbone.weights=/path/to/weights.h5" in lines[0]
