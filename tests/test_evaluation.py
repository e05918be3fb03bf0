"""framework.evaluation scores a model in one predict pass: its loss and accuracy must be those
of Keras's own model.evaluate."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from framework.evaluation import evaluate


@pytest.mark.parametrize("loss, units, one_hot", [
    ("binary_crossentropy", 1, False),
    ("sparse_categorical_crossentropy", 3, False),
    ("categorical_crossentropy", 3, True),
])
@pytest.mark.parametrize("as_dataset", [False, True])
def test_loss_and_accuracy_match_keras_evaluate(loss, units, one_hot, as_dataset):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype("float32")
    labels = rng.integers(0, max(units, 2), 50)
    y = np.eye(units)[labels].astype("float32") if one_hot else labels
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,)),
        # A penalty: model.evaluate counts it in the loss, and so must evaluate().
        keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1)),
        keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax"),
    ])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    split = tf.data.Dataset.from_tensor_slices((x, y)).batch(16) if as_dataset else (x, y)
    expected_loss, expected_accuracy = model.evaluate(x, y, batch_size=16, verbose=0)
    names = [str(i) for i in range(max(units, 2))]
    scores = evaluate(model, split, names, batch_size=16)
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert scores["accuracy"] == pytest.approx(expected_accuracy, abs=1e-6)
    assert scores["samples"] == 50
