"""Keras metrics in the targets' own units, for a model trained on standardized targets."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="framework_plugins")
class TargetUnitsError(keras.metrics.Metric):
    """The mean absolute error (or, ``squared``, the root mean squared error) over every target
    value, each column's error multiplied back by its standard deviation ``scale``."""

    def __init__(self, scale, squared=False, name="mae", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.scale = [float(s) for s in scale]
        self.squared = squared
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        scale = ops.convert_to_tensor(self.scale, self.dtype)
        error = (ops.cast(y_true, self.dtype) - ops.cast(y_pred, self.dtype)) * scale
        error = ops.square(error) if self.squared else ops.abs(error)
        self.total.assign_add(ops.sum(error))
        self.count.assign_add(ops.cast(ops.size(error), self.dtype))

    def result(self):
        mean = ops.divide_no_nan(self.total, self.count)
        return ops.sqrt(mean) if self.squared else mean

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "squared": self.squared}
