"""The plots of a run directory."""

import matplotlib.image
import numpy as np
import pytest

import framework.run.report
from framework.run.report import console_report, plot_confusion_matrix, plot_misclassified

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends


@pytest.mark.parametrize("shape", [(5, 32, 32, 3), (16, 28, 28, 1), (3, 16, 64, 3), (2, 4, 4, 3)])
def test_misclassified_grid_shows_every_image(tmp_path, shape):
    rgb = shape[-1] == 3
    images = np.zeros(shape, "float32")
    if rgb:
        images[..., 1] = 255  # pure green
    else:
        images[...] = 128  # mid grey
    plot_misclassified(tmp_path, images, [0] * len(images), [1] * len(images), ["a", "b"])
    png = matplotlib.image.imread(tmp_path / "misclassified.png")[..., :3]
    colour = [0, 1, 0] if rgb else [128 / 255] * 3
    drawn = np.all(np.isclose(png, colour, atol=0.01), axis=-1).sum()
    # Each image is drawn 2.4 inches wide at 100 dpi: about 240 x 240 * height / width pixels.
    height, width = shape[1:3]
    cell = 240 * width / (width + max(1, width // 8))  # less the gap between images
    assert drawn == pytest.approx(len(images) * cell * cell * height / width, rel=0.1)


def test_the_misclassified_grid_is_drawn_with_no_image_to_show(tmp_path):
    plot_misclassified(tmp_path, np.zeros((0,)), [], [], ["a", "b"])
    assert matplotlib.image.imread(tmp_path / "misclassified.png").size


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


def test_the_confusion_matrix_numbers_the_cells_that_hold_samples(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(framework.run.report.plt, "close", figures.append)  # keep the figure
    # 3 classes: 2 + 1 right of class a, one b taken for c, 3 c right.
    plot_confusion_matrix(
        tmp_path, [0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 2, 2, 2, 2], ["a", "b", "c"], "test"
    )
    (ax,) = figures[0].axes
    numbers = sorted((t.get_position(), t.get_text()) for t in ax.texts)
    assert numbers == [((0, 0), "2"), ((1, 1), "1"), ((2, 1), "1"), ((2, 2), "3")]
    assert ax.get_title() == "confusion matrix (test, 7 samples)"
    assert matplotlib.image.imread(tmp_path / "confusion_matrix.png").size


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
