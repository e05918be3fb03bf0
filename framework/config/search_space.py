"""A tuner's search space over config keys, as keras-tuner hyperparameters.

``tuner.space`` maps a config key to one kind of range:

- ``{choice: [v1, v2, ...]}``: one of the values; lists too (``[[32], [64, 32]]``);
- ``{int: [low, high]}`` or ``{int: [low, high, step]}``;
- ``{float: [low, high]}`` or ``{float: [low, high, step]}``;
- ``{log_float: [low, high]}``: sampled evenly in log scale (learning rates).

On the command line: ``+tuner.space.head.units={choice:[64,128]}``.
"""

import json

from omegaconf import OmegaConf

from framework.errors import UserError
from framework.parts.ranges import as_typed, check_value

KINDS = ("choice", "int", "float", "log_float")
_MISSING = object()


def check_space(space, cfg) -> dict:
    """The space as plain data, checked against the run config before any trial: each value a
    trial may give a setting (each choice; a range's bounds) of the setting's type and in its
    declared range.

    Raises:
        UserError: an unknown key or kind, a range of the wrong shape, a config group, or a value
            the setting does not take.
    """
    space = OmegaConf.to_container(space) if OmegaConf.is_config(space) else dict(space or {})
    space = _flatten(space)
    if not space:
        raise UserError(
            "tuner.space is empty; give the settings to search, e.g. "
            "'+tuner.space.optimizer.learning_rate={log_float:[1e-4,1e-2]}'"
        )
    for key, spec in space.items():
        current = OmegaConf.select(cfg, key, default=_MISSING)
        if current is _MISSING:
            raise UserError(f"tuner.space: unknown setting {key!r} (not in the run's config)")
        if OmegaConf.is_dict(current):
            # A trial's config is the run's with settings changed; another part is another config.
            raise UserError(
                f"tuner.space.{key}: {key} is a group of settings, which a search "
                f"cannot choose; search its settings (tuner.space.{key}.<setting>), "
                f"or sweep its options: python -m framework -m {key}=a,b"
            )
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise UserError(
                f"tuner.space.{key} must be one of {{kind: values}} with kind in "
                f"{', '.join(KINDS)}. Received: {spec!r}"
            )
        ((kind, values),) = spec.items()
        sizes = {"choice": None, "int": (2, 3), "float": (2, 3), "log_float": (2,)}[kind]
        if not isinstance(values, list) or not values or (sizes and len(values) not in sizes):
            shape = (
                "a list of values"
                if kind == "choice"
                else ("[low, high]" if kind == "log_float" else "[low, high] or [low, high, step]")
            )
            raise UserError(f"tuner.space.{key}: {kind} takes {shape}. Received: {values!r}")
        if kind != "choice":
            _check_range(key, kind, values)
            # A float range's trials give floats (1.0 too), which an integer setting refuses.
            values = [v if kind == "int" else float(v) for v in values[:2]]
        for value in values:
            check_value(cfg, key, value)
    return space


def _check_range(key: str, kind: str, values: list):
    """Refuses bounds that are not numbers (integers for ``int``), low above high, a step that
    is not above 0, or a log scale that does not start above 0."""
    number, words = (int, "integers") if kind == "int" else ((int, float), "numbers")
    if not all(isinstance(v, number) and not isinstance(v, bool) for v in values):
        raise UserError(f"tuner.space.{key}: {kind} takes {words}. Received: {values!r}")
    if values[0] > values[1]:
        raise UserError(f"tuner.space.{key}: {kind}'s low is above its high. Received: {values!r}")
    if len(values) > 2 and values[2] <= 0:
        raise UserError(f"tuner.space.{key}: {kind}'s step must be above 0. Received: {values!r}")
    if kind == "log_float" and values[0] <= 0:
        raise UserError(
            f"tuner.space.{key}: log_float's low must be above 0 (a log scale). "
            f"Received: {values!r}"
        )


def _flatten(space: dict, prefix: str = "") -> dict:
    """``{head: {units: {choice: ...}}}`` (as ``+tuner.space.head.units=...`` gives it) as
    ``{"head.units": {choice: ...}}``."""
    flat = {}
    for key, spec in space.items():
        if (
            isinstance(spec, dict)
            and spec
            and not set(spec) & set(KINDS)
            and all(isinstance(inner, dict) for inner in spec.values())
        ):
            flat.update(_flatten(spec, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = spec
    return flat


def define(hp, space: dict) -> dict:
    """Declares the space's hyperparameters on keras-tuner's ``hp``; returns their values."""
    return {
        key: _define_one(hp, key, kind, values)
        for key, ((kind, values),) in ((k, tuple(s.items())) for k, s in space.items())
    }


def _define_one(hp, key, kind, values):
    if kind == "choice":
        if all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in values) and (
            len({type(v) for v in values}) == 1
        ):
            return hp.Choice(key, values)
        # keras-tuner's choices are numbers or text of one type (booleans come back as 0 and 1):
        # lists, null, booleans and mixed types (1 and 0.5, auto and true) are chosen by their
        # JSON text.
        return json.loads(hp.Choice(key, [json.dumps(v) for v in values]))
    if kind == "int":
        return hp.Int(key, values[0], values[1], step=values[2] if len(values) > 2 else 1)
    if kind == "float":
        value = hp.Float(key, values[0], values[1], step=values[2] if len(values) > 2 else None)
        return float(f"{value:.12g}")  # a stepped value without float noise (0.30000000000000004)
    return hp.Float(key, values[0], values[1], sampling="log")


def as_override(key: str, value) -> str:
    """``++key=value`` as Hydra reads it back; ``++`` sets the key whether the base config has
    it or a ``+`` override added it."""
    return f"++{key}={as_typed(value)}"
