"""Head-only stages over a frozen backbone train on features extracted once and cached."""

from types import SimpleNamespace

import keras
import ml_dtypes
import numpy as np
import pytest
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.parts.contexts import Data
from framework.run.feature_cache import _store, cache_key, load_or_extract
from framework.run.train import train

HEAD_STAGE = "trainer.stages=[{name:head,epochs:3,trainable:head}]"


def run(compose, run_dir, cache_dir, *overrides):
    cfg = compose(
        "experiment=cnn_shapes",
        "dataset.samples_per_class=40",
        "backbone.input_size=[32,32]",
        "trainer.verbose=0",
        HEAD_STAGE,
        f"trainer.feature_cache.dir={cache_dir}",
        *overrides,
    )
    return train(cfg, run_dir)


def entries(cache_dir):
    return (
        sorted(p for p in cache_dir.iterdir() if not p.name.startswith("."))
        if cache_dir.exists()
        else []
    )


@pytest.mark.slow
def test_cached_features_give_the_same_head_as_training_through_the_backbone(compose, tmp_path):
    # With the training split in a fixed order, both paths see the same batches.
    cached = run(compose, tmp_path / "a", tmp_path / "cache", "dataset.shuffle=false")
    direct = run(
        compose,
        tmp_path / "b",
        tmp_path / "cache",
        "dataset.shuffle=false",
        "trainer.feature_cache.enabled=false",
    )
    assert cached["stages"][0]["cached_features"] and not direct["stages"][0]["cached_features"]
    for split in ("validation", "test"):
        assert cached[split]["loss"] == pytest.approx(direct[split]["loss"], abs=1e-4)
    assert cached["test"]["accuracy"] == pytest.approx(direct["test"]["accuracy"], abs=1e-6)


@pytest.mark.slow
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


@pytest.mark.slow
def test_saved_model_is_the_full_model_on_raw_images(compose, tmp_path):
    run(compose, tmp_path / "run", tmp_path / "cache")
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert model.input_shape == (None, 32, 32, 3)
    assert {layer.name for layer in model.layers} >= {"simple_cnn", "head"}
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    by_parts = model.get_layer("head")(model.get_layer("simple_cnn")(images))
    np.testing.assert_allclose(model.predict(images, verbose=0), by_parts, atol=1e-6)
    assert model.loss == "sparse_categorical_crossentropy"  # compiled as trained


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_changed_backbone_or_data_makes_a_new_entry(compose, tmp_path):
    cache = tmp_path / "cache"
    run(compose, tmp_path / "a", cache)
    run(compose, tmp_path / "b", cache, "backbone.filters=[16,32]")
    run(compose, tmp_path / "c", cache, "dataset.seed=7")
    assert len(entries(cache)) == 3


@pytest.mark.slow
def test_no_caching_with_augmentation_or_trainable_backbone(compose, tmp_path, capsys):
    cache = tmp_path / "cache"
    augmented = run(compose, tmp_path / "a", cache, "regularizer=[augment]")
    assert not augmented["stages"][0]["cached_features"]
    capsys.readouterr()
    both = run(
        compose,
        tmp_path / "b",
        cache,
        "trainer.stages=[{name:head,epochs:1,trainable:head},"
        "{name:tune,epochs:2,trainable:{last:2},learning_rate:0.00001}]",
    )
    assert [s["cached_features"] for s in both["stages"]] == [True, False]
    assert [(s["stage"], s["trainable"]) for s in both["stages"]] == [
        ("head", "head"),
        ("tune", {"last": 2}),
    ]
    assert [s["optimizer"]["learning_rate"] for s in both["stages"]] == [0.001, 0.00001]
    # Every stage opens with a line of its own.
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Stage")]
    assert headers == [
        "Stage 1/2 head: 1 epoch, trains the head",
        "Stage 2/2 tune: 2 epochs, trains the head and the backbone's last 2 layers",
    ]


class Doubler:
    """A stand-in backbone that counts its extractions."""

    def __init__(self):
        self.calls = 0

    def predict(self, x, verbose=0):
        self.calls += 1
        return x * 2


def tiny_data():
    x, y = np.arange(12, dtype="float32").reshape(4, 3), np.array([0, 1, 0, 1])
    return Data(
        class_names=["a", "b"], train=(x, y), validation=(x, y), test=(x, y), input_shape=(3,)
    )


def leftovers(cache_dir):
    return [p.name for p in cache_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("meta", ["[]", '{"files": "x"}'])
def test_a_malformed_meta_json_is_a_miss_and_the_entry_rebuilt(tmp_path, capfd, meta):
    backbone = Doubler()
    load_or_extract(backbone, tiny_data(), "k", tmp_path)
    (tmp_path / "k" / "meta.json").write_text(meta)
    features, hit = load_or_extract(backbone, tiny_data(), "k", tmp_path)
    assert not hit and backbone.calls == 6 and "is unusable" in capfd.readouterr().err
    again, hit = load_or_extract(backbone, tiny_data(), "k", tmp_path)
    assert hit and backbone.calls == 6
    np.testing.assert_array_equal(again["train"][0], features["train"][0])
    assert leftovers(tmp_path) == []


def test_an_entry_path_taken_by_a_file_is_replaced(tmp_path):
    (tmp_path / "k").write_text("in the way")
    backbone = Doubler()
    load_or_extract(backbone, tiny_data(), "k", tmp_path)
    assert load_or_extract(backbone, tiny_data(), "k", tmp_path)[1]  # cached this time
    assert backbone.calls == 3 and leftovers(tmp_path) == []


def test_a_cache_dir_that_is_a_file_is_refused_before_extracting(tmp_path):
    (tmp_path / "cache").write_text("")
    backbone = Doubler()
    with pytest.raises(
        UserError,
        match=f"feature cache at {tmp_path / 'cache'} .it is a file, "
        "not a folder.; set trainer.feature_cache.dir=",
    ):
        load_or_extract(backbone, tiny_data(), "k", tmp_path / "cache")
    assert backbone.calls == 0


def test_a_failed_extraction_leaves_no_temporary_folder(tmp_path):
    backbone = Doubler()
    backbone.predict = lambda x, verbose=0: 1 / 0
    with pytest.raises(ZeroDivisionError):
        load_or_extract(backbone, tiny_data(), "k", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_16_bit_features_are_stored_as_float32_and_read_back(tmp_path):
    # Mixed precision: the backbone returns bfloat16, which NumPy saves but cannot load back.
    backbone = Doubler()
    backbone.predict = lambda x, verbose=0: (x * 2).astype(ml_dtypes.bfloat16)
    extracted, hit = load_or_extract(backbone, tiny_data(), "k", tmp_path)
    cached, hit_again = load_or_extract(backbone, tiny_data(), "k", tmp_path)
    assert (hit, hit_again) == (False, True)
    for split in ("train", "validation", "test"):
        assert extracted[split][0].dtype == cached[split][0].dtype == np.float32
        np.testing.assert_array_equal(cached[split][0], tiny_data().train[0] * 2)


def test_an_entry_of_16_bit_features_is_rebuilt(tmp_path, capfd):
    # Written before features were stored as float32 (bfloat16 loads back as raw bytes).
    x, y = tiny_data().train
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    _store(
        tmp,
        tmp_path / "k",
        {split: (x.astype(ml_dtypes.bfloat16), y) for split in ("train", "validation")},
    )
    backbone = Doubler()
    features, hit = load_or_extract(backbone, tiny_data(), "k", tmp_path)
    assert (
        not hit
        and backbone.calls == 3
        and "features, not float32); rebuilding it" in (capfd.readouterr().err)
    )
    assert features["train"][0].dtype == np.float32


def key(seed, weights="absent", precision=None):
    backbone = {"name": "b"} if weights == "absent" else {"name": "b", "weights": weights}
    cfg = OmegaConf.create({"seed": seed, "dataset": {"name": "d"}, "backbone": backbone})
    if precision:
        cfg.trainer = {"precision": precision}
    data = Data(
        class_names=["a", "b"],
        train=None,
        validation=None,
        test=None,
        input_shape=(3,),
        fingerprint="files",
    )
    return cache_key(cfg, data, SimpleNamespace(builder="plugin:build"))


def test_random_backbone_weights_key_their_features_by_the_seed(tmp_path):
    weights_file = tmp_path / "w.h5"
    weights_file.write_bytes(b"weights")
    for weights in ("absent", None):  # random: the seed builds the weights
        assert key(1, weights) != key(2, weights) and key(1, weights) == key(1, weights)
    for weights in ("imagenet", str(weights_file)):  # loaded: the seed changes nothing
        assert key(1, weights) == key(2, weights)


def test_features_computed_in_16_bits_have_keys_of_their_own():
    assert key(1, precision="float32") == key(1)
    assert len({key(1), key(1, precision="mixed_float16"), key(1, precision="mixed_bfloat16")}) == 3
