"""Head-only stages over a frozen backbone train on features extracted once and cached."""

import keras
import numpy as np
import pytest

from framework.train import train

HEAD_STAGE = "trainer.stages=[{name:head,epochs:3,trainable:head}]"


def run(compose, run_dir, cache_dir, *overrides):
    cfg = compose("experiment=cnn_shapes", "dataset.samples_per_class=40",
                  "backbone.input_size=[32,32]", "trainer.verbose=0", HEAD_STAGE,
                  f"trainer.feature_cache.dir={cache_dir}", *overrides)
    return train(cfg, run_dir)


def entries(cache_dir):
    return sorted(p for p in cache_dir.iterdir() if not p.name.startswith(".")) \
        if cache_dir.exists() else []


def test_cached_features_give_the_same_head_as_training_through_the_backbone(compose, tmp_path):
    # With the training split in a fixed order, both paths see the same batches.
    cached = run(compose, tmp_path / "a", tmp_path / "cache", "dataset.shuffle=false")
    direct = run(compose, tmp_path / "b", tmp_path / "cache", "dataset.shuffle=false",
                 "trainer.feature_cache.enabled=false")
    assert cached["stages"][0]["cached_features"] and not direct["stages"][0]["cached_features"]
    for split in ("validation", "test"):
        assert cached[split]["loss"] == pytest.approx(direct[split]["loss"], abs=1e-4)
    assert cached["test"]["accuracy"] == pytest.approx(direct["test"]["accuracy"], abs=1e-6)


def test_second_run_reads_the_cache_and_gets_the_same_metrics(compose, tmp_path):
    cache = tmp_path / "cache"
    first = run(compose, tmp_path / "a", cache)
    (entry,) = entries(cache)
    stamp = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    second = run(compose, tmp_path / "b", cache, "head.units=64")  # another head, same features
    third = run(compose, tmp_path / "c", cache)
    assert entries(cache) == [entry]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamp  # reused, not rewritten
    assert third["test"] == first["test"] and third["stages"] == first["stages"]
    assert second["model"]["params"] != first["model"]["params"]


def test_saved_model_is_the_full_model_on_raw_images(compose, tmp_path):
    run(compose, tmp_path / "run", tmp_path / "cache")
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.input_shape == (None, 32, 32, 3)
    assert {layer.name for layer in model.layers} >= {"simple_cnn", "head"}
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    by_parts = model.get_layer("head")(model.get_layer("simple_cnn")(images))
    np.testing.assert_allclose(model.predict(images, verbose=0), by_parts, atol=1e-6)
    assert model.loss == "sparse_categorical_crossentropy"  # compiled as trained


def test_corrupt_entry_is_rebuilt_not_used(compose, tmp_path, capfd):
    cache = tmp_path / "cache"
    first = run(compose, tmp_path / "a", cache)
    (entry,) = entries(cache)
    features = entry / "train_x.npy"
    data = bytearray(features.read_bytes())
    data[-8:] = b"\x00\x01\x02\x03\x04\x05\x06\x07"  # same size, other numbers
    features.write_bytes(bytes(data))
    again = run(compose, tmp_path / "b", cache)
    assert "is unusable" in capfd.readouterr().err
    assert again["test"] == first["test"]
    (rebuilt,) = entries(cache)
    assert rebuilt.name == entry.name


def test_a_changed_backbone_or_data_makes_a_new_entry(compose, tmp_path):
    cache = tmp_path / "cache"
    run(compose, tmp_path / "a", cache)
    run(compose, tmp_path / "b", cache, "backbone.filters=[16,32]")
    run(compose, tmp_path / "c", cache, "dataset.seed=7")
    assert len(entries(cache)) == 3


def test_no_caching_with_augmentation_or_trainable_backbone(compose, tmp_path, capsys):
    cache = tmp_path / "cache"
    augmented = run(compose, tmp_path / "a", cache, "regularizer=[augment]")
    assert not augmented["stages"][0]["cached_features"]
    capsys.readouterr()
    both = run(compose, tmp_path / "b", cache,
               "trainer.stages=[{name:head,epochs:1,trainable:head},"
               "{name:tune,epochs:2,trainable:{last:2},learning_rate:0.00001}]")
    assert [s["cached_features"] for s in both["stages"]] == [True, False]
    assert [(s["stage"], s["trainable"]) for s in both["stages"]] == [
        ("head", "head"), ("tune", {"last": 2})]
    assert [s["optimizer"]["learning_rate"] for s in both["stages"]] == [0.001, 0.00001]
    # Every stage opens with a line of its own.
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Stage")]
    assert headers == ["Stage 1/2 head: 1 epoch, trains the head",
                       "Stage 2/2 tune: 2 epochs, trains the head and the backbone's last 2 layers"]
