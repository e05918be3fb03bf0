import numpy as np
import pytest
from omegaconf import OmegaConf

from framework.errors import UserError
from framework.registry import datasets


def build(name, **overrides):
    cfg = OmegaConf.merge(OmegaConf.structured(datasets.get(name).config), overrides)
    return datasets.get(name).build(cfg, None)


@pytest.mark.parametrize("name, classes, features, samples", [
    ("iris", 3, 4, 150), ("wine", 3, 13, 178), ("breast_cancer", 2, 30, 569),
])
def test_bundled_datasets_split_three_ways_stratified(name, classes, features, samples):
    data = build(name)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data.train, data.validation, data.test
    assert len(data.class_names) == classes and data.input_shape == (features,)
    assert len(y_tr) + len(y_va) + len(y_te) == samples
    assert len(y_te) == pytest.approx(0.2 * samples, abs=1)
    # Stratified: each split has every class, in about the overall proportion.
    overall = np.bincount(np.concatenate([y_tr, y_va, y_te])) / samples
    for y in (y_tr, y_va, y_te):
        np.testing.assert_allclose(np.bincount(y, minlength=classes) / len(y), overall, atol=0.06)
    assert x_tr.dtype == np.float32


def test_scaler_is_fitted_on_the_training_split_only():
    data = build("wine")
    x_tr, x_te = data.train[0], data.test[0]
    np.testing.assert_allclose(x_tr.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_tr.std(axis=0), 1, atol=1e-4)
    assert np.abs(x_te.mean(axis=0)).max() > 1e-3  # test data is not refitted
    raw = build("wine", standardize=False)
    assert raw.train[0].mean() > 10


def test_iris_targets():
    binary = build("iris", target="setosa")
    assert binary.class_names == ["other", "setosa"] and binary.task == "binary"
    assert np.bincount(np.concatenate([binary.train[1], binary.validation[1],
                                       binary.test[1]])).tolist() == [100, 50]
    with pytest.raises(UserError, match="'rose'.*species, setosa"):
        build("iris", target="rose")


def test_one_hot_labels():
    data = build("iris", one_hot=True)
    y = data.train[1]
    assert y.shape[1] == 3 and set(y.sum(axis=1)) == {1.0}


def test_same_split_seed_same_split_other_seed_other_split():
    a, b, c = build("iris"), build("iris"), build("iris", split_seed=7)
    np.testing.assert_array_equal(a.test[0], b.test[0])
    assert not np.array_equal(a.test[0], c.test[0])


def test_csv_with_string_classes_and_chosen_features(tmp_path):
    rows = ["width,height,colour,kind"] + [
        f"{i % 7},{i % 5 + 0.5},{i % 3},{'cat' if i % 2 else 'dog'}" for i in range(60)
    ]
    path = tmp_path / "animals.csv"
    path.write_text("\n".join(rows) + "\n")
    data = build("csv", path=str(path), target="kind")
    assert data.class_names == ["cat", "dog"] and data.input_shape == (3,)
    assert data.info["samples"] == 60
    only_two = build("csv", path=str(path), target="kind", features=["width", "height"])
    assert only_two.input_shape == (2,)
    with pytest.raises(UserError, match="'size' is not in animals.csv"):
        build("csv", path=str(path), target="kind", features=["size"])
    with pytest.raises(UserError, match="test_size must be between 0 and 1"):
        build("csv", path=str(path), target="kind", test_size=1.5)


def test_csv_numeric_classes_sort_numerically(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("x,y\n" + "".join(f"{i},{[2, 10, 1][i % 3]}\n" for i in range(30)))
    assert build("csv", path=str(path), target="y").class_names == ["1", "2", "10"]
