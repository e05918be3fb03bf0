"""The hooks a plugin implements, one per registry.

Each hook receives ``register(name, build, config=None, description=None, *, takes=None,
gives=None, task=None, rows=None)``: ``build`` is a callable or a lazy ``"module:function"`` string,
``config`` a dataclass (or dict) holding the part's default settings, ``description`` one line
(defaults to the first line of the builder's docstring), ``takes`` and ``gives`` the kinds of
input the part accepts and gives (``framework.api.FEATURES``, ``IMAGES``, ``FEATURE_MAPS``), so
that a mismatch is refused in one line before the run and the core picks parts that fit; a
dataset's ``task`` and ``rows``, see ``register_datasets``. Hooks return nothing.
"""

import pluggy

hookspec = pluggy.HookspecMarker("framework")


@hookspec
def register_datasets(register):
    """Register datasets: ``build(cfg, ctx) -> framework.api.Data``; ``gives`` features or images;
    ``task`` the task its targets are for (``classification``...) where the dataset fixes it, so
    that it is known before the data loads (None: the data decides, as a CSV file's); ``rows``
    (a callable or a lazy string) ``rows(data, header, rows, source) -> float32 array``: for
    ``python -m framework.predict RUN FILE.csv``, a run's model inputs for new rows (text cells
    under ``header``) as the run's ``metrics.json`` ``data`` block records them."""


@hookspec
def register_backbones(register):
    """Register backbones: ``build(cfg, input_shape, ctx) -> keras.Model`` (the feature extractor);
    ``takes`` features or images, ``gives`` features or feature maps.

    A backbone built with ``trainable = False`` is pretrained: without ``trainer.stages`` only the
    head trains, and fine-tuning it keeps its BatchNormalization layers (its own, or those of the
    one model nested in it) in inference mode.
    """


@hookspec
def register_heads(register):
    """Register heads: ``build(cfg, features, ctx) -> tensor``; the core adds the output layer.

    ``takes`` what a backbone gives: features, feature maps, or both.
    """


@hookspec
def register_regularizers(register):
    """Register regularizers: ``build(cfg) -> framework.api.Regularization``; ``takes`` the kind of
    input its ``on_input`` step needs, if any."""


@hookspec
def register_callbacks(register):
    """Register callbacks: ``build(cfg, ctx) -> keras.callbacks.Callback``."""


@hookspec
def register_tasks(register):
    """Register tasks: ``build(cfg) -> framework.api.Task`` (a ``Task`` subclass will do): what
    the model predicts, with its output layer, loss, metrics, evaluation and report."""


@hookspec
def register_trackers(register):
    """Register run trackers: ``build(cfg) -> framework.api.Tracker``: where each run's settings,
    epochs, scores and files are logged (MLflow...), so that runs can be found across run dirs."""


@hookspec
def register_protocols(register):
    """Register evaluation protocols: ``build(cfg) -> framework.api.Protocol``: the models a run
    trains (``Protocol.rounds``: the data's cut and the seed of each), ranked by their mean
    validation objective."""
