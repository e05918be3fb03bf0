"""Compiled heads kept for reuse: runs in one process (a search's trials) that train heads of the
same layers on cached features fit one compiled model, traced once, instead of a new one each,
and fit them on the features' input pipelines, built once. Sweep jobs in one process that train
whole models of the same layers in one stage reuse them the same way.

Tracing a new model's train and test steps costs more than a head's whole fit on cached features.
A head reused here starts from the weights of the head the run built (its own seed's), with the
optimizer as a new compile leaves it and the run's learning rate, so that it trains as that head
would: same graph, same starting values, same results. Heads that differ only in the rates of
their Dropout layers share one compiled head too, its rates variables of the traced step set to
each head's (on TensorFlow, where the dropout is then computed as Keras's own computes it). Its
fits are served the batches Keras's own fit of the feature arrays serves, in the same order
(``CompiledHeads.fit_inputs``).
"""

import functools
import json
from collections import OrderedDict

import keras
import numpy as np


class CompiledHeads:
    """Compiled head models by what their train step depends on.

    Args:
        size: how many compiled heads to keep (the least recently used go first).
    """

    def __init__(self, size: int = 8):
        self.size = size
        # key -> (compiled head, its optimizer's starting values, its dropout rates' variables)
        self._heads = OrderedDict()
        self.reused = 0  # fits that found their head compiled
        self._inputs = None  # (the features' arrays and the fit's settings, fit's arguments)
        self._scored = OrderedDict()  # (ids of a split's arrays, batch size) -> (arrays, pipeline)

    def compiled(self, head, compile_head, learning_rate: float, compiled_with: dict):
        """A compiled head to fit in place of ``head``, starting from ``head``'s weights.

        Args:
            head: the run's head model, built and not compiled.
            compile_head: compiles a model as the run does (``compile_head(model)``).
            learning_rate: the optimizer's learning rate (a variable: set on a reused head).
            compiled_with: everything else the compiled train step depends on (the optimizer's
                other settings, the loss and metrics, the compile options), as plain values.

        Returns:
            ``head`` itself, compiled, or a compiled head of the same layers with ``head``'s
            weights; after the fit, ``take_back`` gives ``head`` the trained weights.
        """
        key = json.dumps([_layers(head), compiled_with], sort_keys=True)
        if key in self._heads:
            model, start, rates = self._heads[key]
            self._heads.move_to_end(key)
            if _copy(head.variables, model.variables):
                for variable, value in zip(model.optimizer.variables, start):
                    variable.assign(value)
                model.optimizer.learning_rate = learning_rate
                for variables, layer in zip(rates, _shared_dropouts(head)):
                    _set_rate(variables, layer.rate)
                self.reused += 1
                return model
        rates = [_variable_rate(layer) for layer in _shared_dropouts(head)]
        compile_head(head)
        # Built now, not at the first step, to keep its starting values for the next fits.
        head.optimizer.build(head.trainable_variables)
        start = [np.array(v) for v in head.optimizer.variables]
        self._heads[key] = (head, start, rates)
        if len(self._heads) > self.size:
            self._heads.popitem(last=False)
        return head

    def fit_inputs(self, features: dict, batch_size: int, shuffle: bool, seed: int) -> dict | None:
        """The cached features as a head's ``fit`` takes them, from pipelines built once for
        the fits on the same features (the last ones' only are kept).

        Keras's fit of arrays makes a pipeline per fit and an iterator per epoch, and on
        TensorFlow shuffles by one permutation drawn from the global seed (the run's), the same
        in every epoch and every fit. Here the training split is put in that order once, and one
        iterator serves all the epochs of a fit: the same batches as Keras's own, in the same order.

        Args:
            features: the frozen backbone's features, ``{split: (x, y)}``.
            batch_size: the fit's batch size.
            shuffle: whether the fit shuffles the training split.
            seed: the run's seed, TensorFlow's global seed as the run fits.

        Returns:
            ``fit``'s keyword arguments for the training and validation data, or None where
            Keras's fit of the arrays would serve another order (not on TensorFlow).
        """
        if keras.backend.backend() != "tensorflow":
            return None
        arrays = [a for split in ("train", "validation") for a in features.get(split, ())]
        settings = (batch_size, shuffle, seed)
        if self._inputs is not None:
            (kept, kept_settings), kwargs = self._inputs
            if kept_settings == settings and len(kept) == len(arrays):
                if all(a is b for a, b in zip(kept, arrays)):
                    return kwargs
        order = _keras_order(len(features["train"][0]), shuffle)
        if order is None:
            return None
        x, y = features["train"]
        kwargs = {
            "x": _batches(_in_floatx(x[order]), _in_floatx(y[order]), batch_size).repeat(),
            "steps_per_epoch": -(-len(x) // batch_size),
            "shuffle": False,  # in the order above
            "validation_data": features.get("validation")
            and _batches(*map(_in_floatx, features["validation"]), batch_size),
        }
        self._inputs = (arrays, settings), kwargs
        return kwargs

    def score_inputs(self, split: tuple, batch_size: int):
        """A split's cached features as a task's ``evaluate`` takes them: a pipeline of their
        batches, built once for the fits scored on the same features, that the compiled head
        predicts batch by batch as its ``predict`` of the arrays would, without a new pipeline
        per call (the labels as they are).

        Args:
            split: the split's features, ``(x, y)``.
            batch_size: the evaluation's batch size.

        Returns:
            The pipeline, or ``split`` itself where it is scored as it is (not on TensorFlow).
        """
        if keras.backend.backend() != "tensorflow":
            return split
        key = (*map(id, split), batch_size)
        if key not in self._scored:
            x, y = split
            self._scored[key] = (split, _batches(_in_floatx(x), y, batch_size))
            if len(self._scored) > 4:  # a fold's validation, the test split: a few at a time
                self._scored.popitem(last=False)
        return self._scored[key][1]

    def forget(self, model):
        """Drops ``model`` from the kept ones: a model compiled again (as model.keras is saved)
        is no longer the compiled model its key says."""
        for key in [k for k, kept in self._heads.items() if kept[0] is model]:
            del self._heads[key]

    @staticmethod
    def take_back(head, fitted):
        """Gives the run's ``head`` the weights of the compiled head that trained in its place,
        and the state of its optimizer where ``head`` is compiled too."""
        if fitted is not head:
            _copy(fitted.variables, head.variables)
            if getattr(head, "optimizer", None) is not None:  # compiled
                head.optimizer.build(head.trainable_variables)
                _copy(fitted.optimizer.variables, head.optimizer.variables)


@functools.cache
def sweep_jobs_models() -> CompiledHeads:
    """The compiled models that the sweep jobs a process runs one after another reuse: jobs of
    the same layers (a learning-rate sweep) fit one, traced once. A few only: whole models."""
    return CompiledHeads(size=2)


def _layers(model) -> str:
    """The model's layers and connections, without their names (unique per model) and the rates
    of its shared Dropout layers (``_shared_dropouts``)."""
    config = json.loads(model.to_json())
    shared = {layer.name for layer in _shared_dropouts(model)}
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] in shared:
            layer["config"]["rate"] = None
    text = json.dumps(config)
    for number, layer in enumerate(model.layers):
        text = text.replace(json.dumps(layer.name), json.dumps(f"#{number}"))
    return text.replace(json.dumps(model.name), '"#model"')


def _copy(source, target) -> bool:
    """Assigns the values of one model's variables to another's, if they match one for one."""
    if len(source) != len(target) or any(
        s.shape != t.shape or s.dtype != t.dtype for s, t in zip(source, target)
    ):
        return False
    for s, t in zip(source, target):
        # A copy: on JAX an assigned array is shared, and the next fit of either model donates
        # (deletes) its variables' arrays.
        t.assign(keras.ops.copy(s.value))
    return True


def _shared_dropouts(model) -> list:
    """The model's Dropout layers whose rate its compiled head takes as a variable: those where
    Keras's dropout is ``where(uniform >= rate, x * (1 / (1 - rate)), 0)`` in float32 (on
    TensorFlow, a rate above 0, no noise shape, float32)."""
    if keras.backend.backend() != "tensorflow":
        return []
    return [
        layer
        for layer in model.layers
        if type(layer) is keras.layers.Dropout
        and layer.rate > 0
        and layer.noise_shape is None
        and layer.compute_dtype == "float32"
    ]


def _variable_rate(layer) -> tuple:
    """Makes a Dropout layer's rate variables of the steps traced from it: another head's rate
    is assigned to them, not traced anew. Returns them (``_set_rate``)."""
    threshold = keras.Variable(0.0, dtype="float32", trainable=False)
    scale = keras.Variable(1.0, dtype="float32", trainable=False)
    _set_rate((threshold, scale), layer.rate)

    def call(inputs, training=False):
        if not training:
            return inputs
        # TensorFlow's stateless_dropout, as Keras calls it, with the rate's two constants read
        # from the variables: the same draws (one from the layer's seed generator), the same
        # float32 values.
        noise = keras.random.uniform(
            keras.ops.shape(inputs), dtype=inputs.dtype, seed=layer.seed_generator
        )
        return keras.ops.where(noise >= threshold, inputs * scale, 0)

    layer.call = call
    return threshold, scale


def _set_rate(variables: tuple, rate: float):
    """Sets a shared Dropout layer's variables to a rate: the threshold a kept unit's draw
    reaches, and the kept units' scale (computed as TensorFlow's dropout computes it)."""
    threshold, scale = variables
    threshold.assign(np.float32(rate))
    scale.assign(np.float32(1 / (1 - rate)))


def _keras_order(samples: int, shuffle: bool):
    """The order Keras's fit serves a training split of NumPy arrays in on TensorFlow (its
    ``ArrayDataAdapter``, over the indices), or None where two epochs would not be served in
    the same order."""
    if not shuffle:
        return np.arange(samples)
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    indices = ArrayDataAdapter(np.arange(samples), batch_size=samples, shuffle=True)
    dataset = indices.get_tf_dataset()
    first, second = (np.asarray(next(iter(dataset))) for _ in range(2))
    return first if np.array_equal(first, second) else None


def _batches(x, y, batch_size: int):
    """A pipeline of the arrays' batches in their order, cheap to iterate anew: a fit makes an
    iterator of its validation data in every epoch, and tf.data's default graph rewrites cost
    more than a head's epoch there."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).with_options(options)


def _in_floatx(array):
    """A float array as Keras's fit and predict take it: in ``floatx``."""
    if np.issubdtype(array.dtype, np.floating):
        return np.asarray(array, keras.config.floatx())
    return array
