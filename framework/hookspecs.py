"""The hooks a plugin implements, one per registry.

Each hook receives ``register(name, build, config=None, description=None)``: ``build`` is a
callable or a lazy ``"module:function"`` string, ``config`` a dataclass (or dict) holding the
part's default settings, ``description`` one line (defaults to the first line of the builder's
docstring). Hooks return nothing.
"""

import pluggy

hookspec = pluggy.HookspecMarker("framework")


@hookspec
def register_datasets(register):
    """Register datasets: ``build(cfg, ctx) -> framework.api.Data``."""


@hookspec
def register_backbones(register):
    """Register backbones: ``build(cfg, input_shape, ctx) -> keras.Model`` (the feature extractor).

    A backbone built with ``trainable = False`` is pretrained: without ``trainer.stages`` only the
    head trains, and fine-tuning it keeps its BatchNormalization layers (its own, or those of the
    one model nested in it) in inference mode.
    """


@hookspec
def register_heads(register):
    """Register heads: ``build(cfg, features, ctx) -> tensor``; the core adds the output layer."""


@hookspec
def register_regularizers(register):
    """Register regularizers: ``build(cfg) -> framework.api.Regularization``."""


@hookspec
def register_callbacks(register):
    """Register callbacks: ``build(cfg, ctx) -> keras.callbacks.Callback``."""
