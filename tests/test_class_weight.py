"""trainer.class_weight: Keras's own ``fit(class_weight=...)``, by class name or balanced over
the training split, recorded in metrics.json."""

import csv
import json

import keras
import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from framework.run.model import build_model
from framework.run.train import load_task_data, one_hot_targets, train
from framework_plugins.datasets.shapes import write_shapes_tree

from conftest import assert_one_line_error

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends

# One batch holds the whole training split: the first epoch logs the loss of the initial model
# over all of it, whatever the order of its examples.
ONE_BATCH = ["trainer.epochs=1", "trainer.batch_size=1024", "trainer.verbose=0"]
SETOSA = ["dataset=iris", "dataset.target=setosa", *ONE_BATCH]


def first_loss(run_dir) -> float:
    with open(run_dir / "history.csv") as f:
        return float(next(csv.DictReader(f))["loss"])


def keras_fit_loss(cfg, class_weight) -> float:
    """The first epoch's loss of the run's initial model (the same seed) on its training split,
    fitted by Keras itself."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    task, data = load_task_data(cfg)
    one_hot = one_hot_targets(data.train)
    model = build_model(cfg, data, one_hot, task).model
    model.compile(optimizer="adam", loss=task.loss(data, one_hot))
    inputs = data.train if isinstance(data.train, tuple) else (data.train,)
    batch = {"batch_size": 1024} if isinstance(data.train, tuple) else {}
    fit = model.fit(*inputs, **batch, epochs=1, class_weight=class_weight, verbose=0)
    return fit.history["loss"][0]


def test_class_weights_weigh_the_loss_as_keras_fit_does(compose, tmp_path):
    cfg = compose(*SETOSA, "trainer.class_weight={setosa:4,other:0.5}")
    metrics = train(cfg, tmp_path / "run")
    assert metrics["class_weight"] == {"other": 0.5, "setosa": 4.0}
    weighted = first_loss(tmp_path / "run")
    assert weighted == pytest.approx(keras_fit_loss(cfg, {0: 0.5, 1: 4.0}), rel=1e-5)
    assert weighted != pytest.approx(keras_fit_loss(cfg, None), rel=1e-2)

    # By hand: each example's cross-entropy times its class's weight, averaged over the batch.
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    task, data = load_task_data(cfg)
    x, y = data.train
    p = np.clip(build_model(cfg, data, False, task).model.predict(x, verbose=0)[:, 0], 1e-7, 1)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    weights = np.where(y == 1, 4.0, 0.5)
    by_hand = np.mean(-weights * (y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert weighted == pytest.approx(by_hand, rel=1e-4)


def test_unnamed_classes_weigh_one(compose, tmp_path):
    cfg = compose("dataset=iris", *ONE_BATCH, "trainer.class_weight={virginica:3}")
    metrics = train(cfg, tmp_path / "run")
    assert metrics["class_weight"] == {"setosa": 1.0, "versicolor": 1.0, "virginica": 3.0}
    loss = keras_fit_loss(cfg, {0: 1.0, 1: 1.0, 2: 3.0})
    assert first_loss(tmp_path / "run") == pytest.approx(loss, rel=1e-5)


def write_imbalanced_csv(path, rare: int = 13, common: int = 61):
    rng = np.random.default_rng(0)
    rows = [["a", "b", "label"]]
    for label, n in (("rare", rare), ("common", common)):
        rows += [[*np.round(rng.normal(size=2), 4), label] for _ in range(n)]
    path.write_text("\n".join(",".join(map(str, row)) for row in rows) + "\n")


def test_balanced_weights_come_from_the_training_split(compose, tmp_path):
    write_imbalanced_csv(tmp_path / "data.csv")
    cfg = compose(
        "dataset=csv",
        f"dataset.path={tmp_path / 'data.csv'}",
        "dataset.target=label",
        *ONE_BATCH,
        "trainer.class_weight=balanced",
    )
    metrics = train(cfg, tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())["class_weight"]
    assert recorded == metrics["class_weight"]
    y = load_task_data(cfg)[1].train[1]
    names = metrics["data"]["classes"]
    # scikit-learn's "balanced" over the training split's labels, not over the whole file's.
    expected = compute_class_weight("balanced", classes=np.arange(len(names)), y=y)
    assert list(recorded) == names
    assert list(recorded.values()) == pytest.approx(expected, rel=1e-12)
    whole_file = compute_class_weight("balanced", classes=np.arange(2), y=[0] * 61 + [1] * 13)
    assert list(recorded.values()) != pytest.approx(whole_file, rel=1e-6)
    loss = keras_fit_loss(cfg, dict(enumerate(expected)))
    assert first_loss(tmp_path / "run") == pytest.approx(loss, rel=1e-5)


IMAGES = [
    "experiment=cnn_shapes",
    "backbone.input_size=[24,24]",
    "head.dropout=0",  # no random masks: the same loss in any fit of the same model
    *ONE_BATCH,
]
SHAPES = [*IMAGES, "dataset.samples_per_class=12"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, class_mode",
    [("shapes", "sparse"), ("shapes", "categorical"), ("image_folder", "sparse")],
)
def test_class_weights_apply_to_an_image_pipeline(compose, tmp_path, source, class_mode):
    # The pipelines of image_data.py: tf.data (on JAX too, for image files), in-memory images
    # as NumPy arrays on JAX; integer labels, or one-hot rows.
    if source == "shapes":
        weights = {"circle": 3.0, "square": 1.0, "triangle": 0.25}
        cfg = compose(
            *SHAPES,
            f"dataset.class_mode={class_mode}",
            "trainer.class_weight={circle:3,triangle:0.25}",
        )
    else:  # balanced, counted over a tf.data pipeline: fewer circles to train on
        write_shapes_tree(tmp_path / "data", samples_per_class=12, image_size=(24, 24))
        for image in sorted((tmp_path / "data" / "train" / "circle").iterdir())[:4]:
            image.unlink()
        data = ["dataset=image_folder", f"dataset.path={tmp_path / 'data'}"]
        cfg = compose(*IMAGES, *data, "trainer.class_weight=balanced")
    metrics = train(cfg, tmp_path / "run")
    if source == "image_folder":
        counts = metrics["data"]["class_counts"]["train"]
        assert counts["circle"] < counts["square"] == counts["triangle"]
        weights = {name: sum(counts.values()) / (3 * n) for name, n in counts.items()}
    assert metrics["class_weight"] == pytest.approx(weights, rel=1e-12)
    loss = keras_fit_loss(cfg, dict(enumerate(weights.values())))
    assert first_loss(tmp_path / "run") == pytest.approx(loss, rel=1e-5)
    # Balanced weights average 1 over the examples: a loss near the unweighted one, still apart.
    assert first_loss(tmp_path / "run") != pytest.approx(keras_fit_loss(cfg, None), rel=1e-4)


@pytest.mark.slow
def test_class_weights_apply_over_cached_features(compose, tmp_path):
    head_only = [
        *SHAPES,
        "trainer.stages=[{name:head,trainable:head}]",
        f"trainer.feature_cache.dir={tmp_path / 'cache'}",
    ]
    weights = "trainer.class_weight={circle:3,triangle:0.25}"
    cached = train(compose(*head_only, weights), tmp_path / "cached")
    direct = train(
        compose(*head_only, weights, "trainer.feature_cache.enabled=false"), tmp_path / "direct"
    )
    plain = train(compose(*head_only), tmp_path / "plain")
    assert cached["stages"][0]["cached_features"] and plain["stages"][0]["cached_features"]
    assert not direct["stages"][0]["cached_features"]
    loss = first_loss(tmp_path / "cached")
    assert loss == pytest.approx(first_loss(tmp_path / "direct"), rel=1e-4)
    assert loss != pytest.approx(first_loss(tmp_path / "plain"), rel=1e-2)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["trainer.class_weight={setosa:0}"], ["trainer.class_weight={setosa:0}", "> 0"]),
        (["trainer.class_weight=equal"], ["'equal'", "accepted: balanced, or {name: number}"]),
        (
            ["dataset=diabetes", "trainer.class_weight=balanced"],
            ["task 'regression' is not one", "trainer.class_weight=balanced"],
        ),
    ],
)
def test_bad_class_weights_are_refused_before_a_run_dir(cli, tmp_path, overrides, fragments):
    result = cli("dataset=iris", *overrides, "hydra.run.dir=run")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (
            ["dataset=iris", "trainer.class_weight={setosa:2,cow:3}"],
            ["class 'cow'", "accepted: setosa, versicolor, virginica"],
        ),
        # A CSV file's targets decide its task once they are read: regression for column a.
        (
            [
                "dataset=csv",
                "dataset.path=data.csv",
                "dataset.target=a",
                "trainer.class_weight=balanced",
            ],
            ["task 'regression' is not one"],
        ),
    ],
)
def test_class_weights_the_data_refuses_fail_the_run_in_one_line(
    cli, tmp_path, overrides, fragments
):
    write_imbalanced_csv(tmp_path / "data.csv")
    result = cli(*overrides, "hydra.run.dir=run")
    assert_one_line_error(result, *fragments)
    assert (tmp_path / "run" / "FAILED").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()
