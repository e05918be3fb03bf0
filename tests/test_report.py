"""The plots of a run directory."""

import matplotlib.image
import numpy as np
import pytest

import framework.run.report
from framework.run.report import console_report

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends


@pytest.mark.parametrize(
    "evaluated_on, label", [("test", "Test:      loss"), ("validation", "Validation: loss")]
)
def test_the_console_report_keeps_a_space_after_each_label(tmp_path, evaluated_on, label):
    scores = {"loss": 0.5, "accuracy": 0.75, "macro": {"f1": 0.7}, "samples": 8}
    metrics = {
        "test": scores,
        "validation": scores,
        "evaluated_on": evaluated_on,
        "epochs": 1,
        "model": {"name": "m", "params": 10},
        "data": {"name": "d", "classes": ["a", "b"]},
    }
    lines = console_report(tmp_path, metrics).splitlines()
    assert lines[4].startswith("Validation: loss 0.5000")
    assert lines[5].startswith(f"{label} 0.5000  accuracy 0.7500")


@pytest.mark.parametrize(
    "loss, metric, epochs, stages",
    [
        (-0.000123, -100000.0, 15, [(1, "head"), (9, "fine_tune")]),
        (
            0.5,
            0.97,
            30,
            [(1, "head"), (2, "fine_tune_the_whole_network"), (30, "fine_tune_the_whole_network")],
        ),
    ],
)
def test_the_curves_keep_their_text_inside_the_figure(tmp_path, loss, metric, epochs, stages):
    # The curves' margins are set, not computed from the text: long tick labels (a small
    # negative loss, a large metric) and long stage names, early or late, must still fit.
    history = [
        {
            "epoch": e,
            "loss": loss * (1 + e / 10),
            "val_loss": loss * (1 + e / 20),
            "mae": metric * (1 + e / 10),
            "val_mae": metric * (1 + e / 9),
        }
        for e in range(1, epochs + 1)
    ]
    framework.run.report.plot_curves(tmp_path, history, stages, "mae")
    png = matplotlib.image.imread(tmp_path / "curves.png")[..., :3]
    # Nothing drawn at the figure's edges: its outer rows and columns are white (a clipped
    # label leaves its ink there).
    for edge in (png[:, :3], png[:, -3:], png[:3, :], png[-3:, :]):
        assert np.all(edge > 0.99)
