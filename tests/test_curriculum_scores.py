"""The tabular curriculum's experiments reach their scores (the issue's 'done when')."""

import json

import pytest

from framework.run.train import train

pytestmark = pytest.mark.slow  # each test trains a curriculum experiment whole: 10-23 s


@pytest.mark.parametrize(
    "experiment, minimum",
    [
        ("iris_binary", 1.0),
        ("iris_multiclass", 0.93),
        ("wine", 0.95),
    ],
)
def test_experiment_reaches_its_test_accuracy(compose, tmp_path, experiment, minimum):
    metrics = train(compose(f"experiment={experiment}", "trainer.verbose=0"), tmp_path)
    assert metrics["test"]["accuracy"] >= minimum
    assert json.loads((tmp_path / "metrics.json").read_text())["test"]["accuracy"] >= minimum


@pytest.mark.parametrize(
    "overrides, minimum",
    [
        ([], 0.97),  # the default run: simple_cnn on digits
        (["experiment=cnn_shapes"], 0.95),  # 3 generated shape classes
    ],
)
def test_cnn_reaches_its_validation_accuracy(compose, tmp_path, overrides, minimum):
    metrics = train(compose(*overrides, "trainer.verbose=0"), tmp_path)
    assert metrics["validation"]["accuracy"] >= minimum
