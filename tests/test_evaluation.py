"""framework.run.evaluation scores a model in one predict pass: its loss and accuracy must be those
of Keras's own model.evaluate."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from framework.run.evaluation import evaluate

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
