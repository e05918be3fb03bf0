"""Model assembly: input -> regularizers' input steps -> backbone -> head -> output layer."""

import random
from dataclasses import dataclass
from typing import Any

import keras

from framework.config.preflight import check_takes
from framework.errors import UserError
from framework.parts import registry
from framework.parts.contexts import Data, ModelContext, Regularization
from framework.parts.kinds import output_kind
from framework.runtime.execution import output_dtype


@dataclass
class Assembled:
    """A built model and its parts.

    Args:
        model: the full Keras model, input to predictions.
        backbone: the backbone model inside it.
        head: the head model inside it (backbone features to predictions, output layer included).
        input_steps: whether regularizers act on the input before the backbone (augmentation).
        pretrained: whether the backbone was built frozen (``trainable = False``), as a plugin
            builds a pretrained feature extractor.
        random_state: Python's random state once the backbone was built: Keras draws its
            initializers' seeds from it, so a head built alone from it (``build_head``) starts
            from the weights the full build gave its head.
        described: for a head built alone, the full model's ``recorded()``
            (``Assembled.recorded``), where known.
    """

    model: Any
    backbone: Any
    head: Any
    input_steps: bool
    pretrained: bool
    random_state: Any = None
    described: dict | None = None

    def recorded(self) -> dict | None:
        """The full model's name, parameter count and input shape (without the batch), as
        metrics.json records them."""
        if self.model is None:
            return self.described
        return {
            "name": self.model.name,
            "params": int(self.model.count_params()),
            "input_shape": list(self.model.input_shape[1:]),
        }


def build_model(cfg, data: Data, one_hot: bool = False, task=None) -> Assembled:
    """Builds the full model for a config and a dataset.

    Args:
        cfg: the composed run config.
        data: the loaded dataset (with the task, it fixes the output layer).
        one_hot: whether the labels are one-hot rows: then even two classes get a softmax.
        task: the run's task (``framework.parts.tasks.run_task``); None: as the config and data say.

    Returns:
        The model and its backbone and head.
    """
    from framework.parts.tasks import run_task

    task = task or run_task(cfg, data)
    regularizations = _regularizations(cfg)
    ctx = ModelContext(data.task, len(data.class_names), regularizations)
    inputs = keras.Input(shape=tuple(data.input_shape), name="inputs")
    x = inputs
    input_steps = [r.on_input for r in regularizations if r.on_input is not None]
    for step in input_steps:
        x = step(x)
    part = registry.backbones.get(cfg.backbone.name)
    backbone = part.build(cfg.backbone, tuple(data.input_shape), ctx)
    if not isinstance(backbone, keras.Model):
        raise part.misbehaved(f"returned {_shown(backbone)}, not a keras.Model")
    pretrained = not backbone.trainable
    random_state = random.getstate()
    check_takes(
        registry.heads.get(cfg.head.name),
        output_kind(backbone.output.shape[1:]),
        f"backbone {cfg.backbone.name!r}",
    )
    head = _head(cfg, data, one_hot, task, ctx, backbone.output.shape[1:], backbone.output.dtype)
    model = keras.Model(inputs, head(backbone(x)), name=f"{cfg.backbone.name}_{cfg.head.name}")
    return Assembled(model, backbone, head, bool(input_steps), pretrained, random_state)


def build_head(
    cfg,
    data: Data,
    features,
    one_hot: bool,
    task,
    pretrained: bool,
    random_state,
    described: dict | None = None,
) -> Assembled:
    """Builds the head alone, on a frozen backbone's features extracted before.

    A search trial that trains only the head on cached features needs no backbone: the head is
    built as ``build_model`` builds it, from the features' shape and dtype, with the initial
    weights the full build would give it.

    Args:
        cfg: the composed run config.
        data: the loaded dataset.
        features: the backbone's features of the training split, ``(x, y)``.
        one_hot: whether the labels are one-hot rows.
        task: the run's task.
        pretrained: whether the backbone is pretrained (``Assembled.pretrained``).
        random_state: ``Assembled.random_state`` of a full build of the same config but for its
            head, from the same seed (``after_default_seeds`` finds it for another seed).
        described: the full model's ``recorded()`` (``Assembled.described``).

    Returns:
        An ``Assembled`` with the head and no full model or backbone.
    """
    ctx = ModelContext(data.task, len(data.class_names), _regularizations(cfg))
    random.setstate(random_state)
    x = features[0]
    head = _head(cfg, data, one_hot, task, ctx, x.shape[1:], str(x.dtype))
    return Assembled(None, None, head, False, pretrained, random_state, described)


def _default_seed(rng: random.Random) -> int:
    """Keras's default seed of an initializer or random layer built without one, drawn from
    ``rng`` as Keras draws it from Python's random (``keras.src.random.make_default_seed``)."""
    return rng.randint(1, int(1e9))


def default_seeds_drawn(before, after, most: int = 10_000) -> int | None:
    """How many of Keras's default seeds take Python's random state from ``before`` to ``after``.

    A build draws one per initializer and random layer it makes, and Keras's own layers draw
    nothing else from Python's random: that count, the same from any seed, takes the state a
    build starts from, under another seed, to the state the same build would leave. (A part
    that drew otherwise from Python's random would break this; the built-in backbones are
    checked in tests/test_protocols.py.)

    Args:
        before: ``random.getstate()`` as a build began.
        after: ``random.getstate()`` at a point of it (``Assembled.random_state``).
        most: the largest count tried.

    Returns:
        The count, or None where no count up to ``most`` leads there (a build that drew
        otherwise).
    """
    rng = random.Random()
    rng.setstate(before)
    for drawn in range(most + 1):
        if rng.getstate() == after:
            return drawn
        _default_seed(rng)
    return None


def after_default_seeds(state, drawn: int):
    """Python's random state after ``drawn`` of Keras's default seeds from ``state``, which it
    leaves as it is (see ``default_seeds_drawn``)."""
    rng = random.Random()
    rng.setstate(state)
    for _ in range(drawn):
        _default_seed(rng)
    return rng.getstate()


def _regularizations(cfg) -> list[Regularization]:
    regularizations = []
    for name, reg_cfg in cfg.regularizer.items():
        part = registry.regularizers.get(name)
        regularization = part.build(reg_cfg)
        if not isinstance(regularization, Regularization):
            raise part.misbehaved(f"returned {_shown(regularization)}, not a Regularization")
        regularizations.append(regularization)
    return regularizations


def _head(cfg, data, one_hot: bool, task, ctx, shape, dtype):
    """The head model: the backbone's features to predictions, output layer included."""
    # The head is a model of its own, so a head-only stage can train it on cached features. Its
    # input takes the backbone's dtype: under a mixed policy, no cast to float32 and back.
    features = keras.Input(shape=tuple(shape), dtype=dtype, name="features")
    part = registry.heads.get(cfg.head.name)
    y = part.build(cfg.head, features, ctx)
    if not isinstance(y, keras.KerasTensor):
        raise part.misbehaved(
            f"returned {_shown(y)}, not the output tensor of layers applied to its input"
        )
    # Under a mixed precision policy the output layer stays float32, as Keras's guide advises.
    dtype = output_dtype(cfg.trainer.precision)
    outputs = task.output_layer(ctx, data, one_hot, dtype)(y)
    return keras.Model(features, outputs, name="head")


def _shown(value) -> str:
    """A value a plugin returned, shortened for a one-line message."""
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def set_trainable(backbone, trainable, pretrained: bool = False):
    """Applies a stage's ``trainable`` setting to the backbone.

    Args:
        backbone: the backbone model.
        trainable: ``"all"``, ``"head"`` (backbone frozen), ``{"last": N}`` (the backbone's last N
            layers) or ``{"from": layer_name}`` (that layer and all after it). With the last two,
            and with ``"all"`` on a pretrained backbone, BatchNormalization layers stay frozen,
            in inference mode, as the Keras transfer-learning guide prescribes for fine-tuning.
        pretrained: whether the backbone was built frozen (see ``Assembled.pretrained``).
    """
    layers = base_layers(backbone)
    if trainable == "head":
        backbone.trainable = False
        return
    first = None
    if trainable == "all":
        if not pretrained:
            backbone.trainable = True  # trained from scratch: BatchNormalization learns too
            return
        first = 0
    elif isinstance(trainable, dict) and len(trainable) == 1:
        ((key, value),) = trainable.items()
        if key == "last" and isinstance(value, int) and value >= 0:
            first = max(len(layers) - value, 0)
        elif key == "from":
            names = [layer.name for layer in layers]
            if value not in names:
                raise UserError(
                    f"trainable.from names no layer of the backbone. Received: from={value!r}"
                )
            first = names.index(value)
    if first is None:
        raise UserError(
            "stage trainable must be 'all', 'head', {last: N}, {from: <layer name>} or null. "
            f"Received: trainable={trainable!r}"
        )
    backbone.trainable = True
    for i, layer in enumerate(layers):
        # In Keras 3 a non-trainable BN layer always uses its moving statistics, while
        # training=False on the base is overridden by fit (keras-team/keras#20285).
        frozen_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= first and not frozen_bn


def base_layers(backbone):
    """The backbone's own layers; for a wrapper around one nested model, that model's layers."""
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [layer for layer in layers if isinstance(layer, keras.Model)]
    if len(nested) == 1:
        return base_layers(nested[0])
    return layers
