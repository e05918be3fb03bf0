"""The framework's runs written as plain Keras scripts, the yardstick of ``overhead.py``.

Each function trains what one ``python -m framework`` command trains, as a user would write it
without the framework: the same data and splits, layers, optimizer, loss, seed, batch size and
epochs, one line per epoch (``verbose=2``, the framework's default), an evaluation on the test
split and ``model.keras`` saved in the working directory. Nothing else: no plots, reports,
checkpoint or config. Run one in a process of its own::

    python benchmarks/plain_keras.py digits        # python -m framework
    python benchmarks/plain_keras.py iris_binary   # python -m framework experiment=iris_binary
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as framework/__init__.py sets it
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SEED = 42


def digits():
    """The default run: conf/config.yaml's digits + simple_cnn + flatten_dense, adam,
    conf/trainer/default.yaml's 15 epochs of batch 32 (plugins/digits.py, plugins/cnn.py)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(SEED)
    data = load_digits()
    # 8x8 digits at 0..16 as 3-channel 0..255 images; 60/20/20 stratified splits (seed 42).
    x = np.repeat(data.images[..., None] * (255.0 / 16.0), 3, axis=-1).astype(np.float32)
    y = data.target
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, random_state=SEED, stratify=y
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=SEED, stratify=y_rest
    )

    def pipeline(images, labels, shuffle):
        # Batches upsampled to 32x32 (bilinear) as they are served; the training split
        # reshuffled every epoch.
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle:
            ds = ds.shuffle(len(labels), seed=SEED, reshuffle_each_iteration=True)
        ds = ds.batch(32).map(
            lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (32, 32)), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    train = pipeline(x_train, y_train, shuffle=True)
    val, test = pipeline(x_val, y_val, False), pipeline(x_test, y_test, False)
    model = keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(128, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, validation_data=val, epochs=15, verbose=2)
    loss, accuracy = model.evaluate(test, verbose=0)
    print(f"Test: loss {loss:.4f}  accuracy {accuracy:.4f}")
    model.save("model.keras")


def iris_binary():
    """experiments/iris_binary.yaml: is it setosa? 4 -> Dense 8 relu -> Dense 4 relu -> Dense 1
    sigmoid, adam, binary cross-entropy, 50 epochs of batch 10; 80/20 then 80/20 stratified
    splits (random_state 42), StandardScaler fitted on the training split (plugins/tabular.py,
    plugins/dense.py)."""
    import keras
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    keras.utils.set_random_seed(SEED)
    iris = load_iris()
    x, y = iris.data, (iris.target == 0).astype(int)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.2, random_state=42, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.2, random_state=42, stratify=y_rest
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (
        scaler.transform(a).astype(np.float32) for a in (x_train, x_val, x_test)
    )
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=50, batch_size=10, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=10, verbose=0)
    print(f"Test: loss {loss:.4f}  accuracy {accuracy:.4f}")
    model.save("model.keras")


SCRIPTS = {"digits": digits, "iris_binary": iris_binary}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCRIPTS:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(SCRIPTS)}}}")
    SCRIPTS[sys.argv[1]]()
