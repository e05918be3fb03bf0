"""The classification task's evaluation and plots: its loss and accuracy, scored in one predict
pass, must be those of Keras's own model.evaluate."""

import keras
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

import framework_plugins.tasks.classification_plots
from framework_plugins.tasks.classification import evaluate
from framework_plugins.tasks.classification_plots import plot_confusion_matrix, plot_misclassified

# Also run on Keras's JAX backend (make test's second pass).
pytestmark = pytest.mark.backends


@pytest.mark.parametrize(
    "loss, units, labels_as",
    [
        ("binary_crossentropy", 1, "indices"),
        ("binary_crossentropy", 1, "column"),
        ("sparse_categorical_crossentropy", 3, "indices"),
        ("categorical_crossentropy", 3, "one_hot"),
    ],
)
@pytest.mark.parametrize("as_dataset", [False, True])
def test_loss_and_accuracy_match_keras_evaluate(loss, units, labels_as, as_dataset):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype("float32")
    labels = rng.integers(0, max(units, 2), 50)
    if labels_as == "one_hot":
        y = np.eye(units)[labels].astype("float32")
    else:
        y = labels.reshape(-1, 1) if labels_as == "column" else labels
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            # A penalty: model.evaluate counts it in the loss, and so must evaluate().
            keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1)),
            keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax"),
        ]
    )
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    split = tf.data.Dataset.from_tensor_slices((x, y)).batch(16) if as_dataset else (x, y)
    expected_loss, expected_accuracy = model.evaluate(x, y, batch_size=16, verbose=0)
    names = [str(i) for i in range(max(units, 2))]
    scores = evaluate(model, split, names, batch_size=16)
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert scores["accuracy"] == pytest.approx(expected_accuracy, abs=1e-6)
    assert scores["samples"] == 50


@pytest.mark.parametrize("shape", [(5, 32, 32, 3), (16, 28, 28, 1), (3, 16, 64, 3), (2, 4, 4, 3)])
def test_misclassified_grid_shows_every_image(tmp_path, shape):
    rgb = shape[-1] == 3
    images = np.zeros(shape, "float32")
    if rgb:
        images[..., 1] = 255  # pure green
    else:
        images[...] = 128  # mid grey
    plot_misclassified(
        tmp_path, images, [0] * len(images), [1] * len(images), ["a", "b"], "validation"
    )
    png = matplotlib.image.imread(tmp_path / "misclassified.png")[..., :3]
    colour = [0, 1, 0] if rgb else [128 / 255] * 3
    drawn = np.all(np.isclose(png, colour, atol=0.01), axis=-1).sum()
    # Each image is drawn 2.4 inches wide at 100 dpi: about 240 x 240 * height / width pixels.
    height, width = shape[1:3]
    cell = 240 * width / (width + max(1, width // 8))  # less the gap between images
    assert drawn == pytest.approx(len(images) * cell * cell * height / width, rel=0.1)


def test_the_misclassified_grid_is_drawn_with_no_image_to_show(tmp_path):
    plot_misclassified(tmp_path, np.zeros((0,)), [], [], ["a", "b"], "validation")
    assert matplotlib.image.imread(tmp_path / "misclassified.png").size


def test_the_confusion_matrix_numbers_the_cells_that_hold_samples(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(
        framework_plugins.tasks.classification_plots.plt, "close", figures.append
    )  # keep the figure
    # 3 classes: 2 + 1 right of class a, one b taken for c, 3 c right.
    plot_confusion_matrix(
        tmp_path, [0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 2, 2, 2, 2], ["a", "b", "c"], "test"
    )
    (ax,) = figures[0].axes
    numbers = sorted((t.get_position(), t.get_text()) for t in ax.texts)
    assert numbers == [((0, 0), "2"), ((1, 1), "1"), ((2, 1), "1"), ((2, 2), "3")]
    assert ax.get_title() == "confusion matrix (test, 7 samples)"
    assert matplotlib.image.imread(tmp_path / "confusion_matrix.png").size


def test_one_sigmoid_unit_stands_for_the_second_of_two_classes():
    from framework.api import class_probabilities
    from framework.parts.contexts import output_classes

    assert [output_classes(units) for units in (1, 2, 3)] == [2, 2, 3]
    sigmoid = np.array([[0.25], [0.5], [0.75]], "float32")
    assert class_probabilities(sigmoid).tolist() == [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75]]
    softmax = np.array([[0.2, 0.3, 0.5]], "float32")
    assert class_probabilities(softmax).tolist() == softmax.tolist()
