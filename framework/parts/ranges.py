"""The accepted values of config settings, declared next to their defaults and checked when a
config is composed, before any data is loaded or TensorFlow imported.

A config dataclass declares a field's range with ``setting``::

    @dataclass
    class MyBackboneConfig:
        units: list[int] = setting(default_factory=lambda: [64], at_least=1)  # each entry
        dropout: float = setting(0.2, at_least=0.0, below=1.0)
        size: str = setting("small", choices=("small", "large"))
        weights: Any = setting(None, choices=("auto",), values={"above": 0})  # {name: w} too

``check_ranges(cfg)`` then refuses ``backbone.dropout=1.5`` in one line that names the key, the
value and the range, for a third party's part exactly as for a built-in one.
"""

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ValidationError

from framework.errors import UserError

RANGE = "framework_range"  # the key of a field's metadata that holds its Range


@dataclass(frozen=True)
class Range:
    """The values a setting accepts. None (null) is always accepted where the type allows it.

    Args:
        at_least: the smallest value accepted.
        above: values must be greater than this.
        at_most: the largest value accepted.
        below: values must be smaller than this.
        choices: the values accepted, if it is a closed set.
        values: where a ``{name: number}`` map is accepted too, the range of each number.
        form: the form of a string's value: a ``Form`` (e.g. ``DURATION``).
    """

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple | None = None
    values: "Range | None" = None
    form: "Form | None" = None

    def accepts(self, value) -> bool:
        if value is None:
            return True
        if isinstance(value, dict):  # a map setting: each value, a number
            return self.values is not None and all(
                v is not None and self.values.accepts(v) for v in value.values()
            )
        if isinstance(value, (list, tuple)):  # a list setting: each entry
            return self.values is None and all(self.accepts(v) for v in value)
        if self.choices is not None:
            return value in self.choices
        if self.form is not None:
            return isinstance(value, str) and re.fullmatch(self.form.pattern, value) is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
            and (self.below is None or value < self.below)
        )

    def describe(self) -> str:
        """The range in words: ``>= 1``, ``> 0 and < 1``, ``a, b, c`` (choices), ``a, or
        {name: number}, each number > 0`` (a map accepted too)."""
        if self.values is not None:
            either = f"{self._describe_scalar()}, or " if self.choices else ""
            return f"{either}{{name: number}}, each number {self.values.describe()}"
        return self._describe_scalar()

    def _describe_scalar(self) -> str:
        """The range of a value that is not a map, in words."""
        if self.choices is not None:
            return ", ".join(as_typed(c) for c in self.choices)
        if self.form is not None:
            return self.form.words
        words = [
            f"{sign} {as_typed(bound)}"
            for sign, bound in (
                (">=", self.at_least),
                (">", self.above),
                ("<=", self.at_most),
                ("<", self.below),
            )
            if bound is not None
        ]
        return " and ".join(words)


@dataclass(frozen=True)
class Form:
    """The form a string setting's value takes.

    Args:
        name: what it is, e.g. ``duration``.
        pattern: a regular expression its whole value matches.
        words: the form in words, as a refusal shows it.
    """

    name: str
    pattern: str
    words: str


# A span of time: 90s, 10m, 1.5h.
DURATION = Form(
    "duration", r"(\d+(\.\d*)?|\.\d+)(s|m|h)", "a duration: a number and s, m or h (90s, 10m, 1.5h)"
)
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> float:
    """The seconds of a ``DURATION`` (``"90s"``, ``"10m"``, ``"1.5h"``), its range checked."""
    return float(duration[:-1]) * _SECONDS[duration[-1]]


def setting(
    default=dataclasses.MISSING,
    *,
    default_factory=dataclasses.MISSING,
    at_least=None,
    above=None,
    at_most=None,
    below=None,
    choices=None,
    values=None,
    form=None,
):
    """A dataclass field with the range of values it accepts (for a list, each entry's).

    Args:
        default: the default value (or ``default_factory`` for a list or dict).
        at_least, above, at_most, below: bounds of a number.
        choices: the accepted values of a closed set.
        values: the bounds of each number where a ``{name: number}`` map is accepted too, e.g.
            ``{"above": 0}``.
        form: the form of a string's value (a ``Form``, e.g. ``DURATION``).

    Returns:
        A ``dataclasses.field`` carrying the range in its metadata.
    """
    accepted = Range(
        at_least,
        above,
        at_most,
        below,
        tuple(choices) if choices else None,
        Range(**values) if values is not None else None,
        form,
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={RANGE: accepted}
    )


def check_ranges(cfg, prefix: str = ""):
    """Refuses any setting of a composed config outside the range its dataclass declares.

    Args:
        cfg: a composed config (or a node of one); typed nodes are checked, recursively.
        prefix: the key of ``cfg`` in the whole config, for the message.

    Raises:
        UserError: ``<key>=<value> is out of range; accepted: <range>`` for the first one.
    """
    if isinstance(cfg, ListConfig):
        for i, item in enumerate(cfg):
            if isinstance(item, (DictConfig, ListConfig)):
                check_ranges(item, f"{prefix}{i}.")
        return
    if not isinstance(cfg, DictConfig):
        return
    ranges = field_ranges(OmegaConf.get_type(cfg))
    for key in cfg:
        if OmegaConf.is_missing(cfg, key):
            continue
        value = cfg[key]
        accepted = ranges.get(key)
        if accepted is not None:
            value_plain = plain(value)
            if not accepted.accepts(value_plain):
                raise UserError(_refusal(f"{prefix}{key}", value_plain, accepted))
        if isinstance(value, (DictConfig, ListConfig)):
            check_ranges(value, f"{prefix}{key}.")


def plain(value):
    """A setting's value as plain Python (a config node's dicts and lists); others as they are."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def check_value(cfg, key: str, value):
    """Refuses a value that a search or sweep would give one setting of a composed config: of a
    type the setting does not take, or outside its declared range.

    Args:
        cfg: the composed config (not changed).
        key: the setting's key, e.g. ``backbone.units``; it must be in ``cfg``.
        value: the value, as the run would get it.

    Raises:
        UserError: ``<key>=<value>`` and why, in one line.
    """
    trial = copy.deepcopy(cfg)
    try:
        OmegaConf.update(trial, key, value, merge=False)
    except ValidationError as e:  # OmegaConf's word: "could not be converted to Integer"
        raise UserError(
            f"{key}={as_typed(value)} is of the wrong type: {str(e).strip().splitlines()[0]}"
        ) from None
    parent, _, _ = key.rpartition(".")
    check_ranges(
        OmegaConf.select(trial, parent) if parent else trial, f"{parent}." if parent else ""
    )


def field_ranges(cls: Any) -> dict[str, Range]:
    """The declared ranges of a dataclass's fields, by field name."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return {}
    return {f.name: f.metadata[RANGE] for f in dataclasses.fields(cls) if RANGE in f.metadata}


def value_outside(accepted: Range, default):
    """A value of the setting's type that ``accepted`` refuses (for tests of the ranges).

    Args:
        accepted: the setting's range.
        default: its default (a list setting gets a list of one refused entry).
    """
    if accepted.form is not None:
        bad = "not_" + accepted.form.name
    elif accepted.choices is not None:
        numbers = [c for c in accepted.choices if isinstance(c, (int, float))]
        bad = max(numbers) + 1 if numbers else "not_a_choice"
    elif accepted.at_least is not None:
        bad = accepted.at_least - 1
    elif accepted.above is not None:
        bad = accepted.above
    elif accepted.at_most is not None:
        bad = accepted.at_most + 1
    else:
        bad = accepted.below
    if isinstance(default, float) or isinstance(bad, float):
        bad = float(bad)
    return [bad] if isinstance(default, (list, ListConfig)) else bad


def _refusal(key: str, value, accepted: Range) -> str:
    if accepted.choices is not None and not isinstance(value, (list, dict)):
        # optimizer.name=x selects an optimizer, as optimizer=x does: "unknown optimizer 'x'"
        return f"unknown {key.removesuffix('.name')} {value!r}; accepted: {accepted.describe()}"
    each = "each entry " if isinstance(value, list) and accepted.values is None else ""
    return f"{key}={as_typed(value)} is out of range; accepted: {each}{accepted.describe()}"


def as_typed(value) -> str:
    """A value as it is typed on the command line, in Hydra's override grammar: ``null``,
    ``true``, ``0.001``, ``[64,32]``, ``{a:1}``, text bare where Hydra reads it back as that text,
    else quoted (``'two words'``, ``'true'``). What messages, part listings and trial lines show.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if re.fullmatch(r"[A-Za-z_?/][\w./?-]*", value) and value.lower() not in _WORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(as_typed(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{as_typed(v)}" for k, v in value.items()) + "}"
    return str(value)  # numbers: 0.001, 1e-05, inf, nan as Hydra reads them


# Bare words Hydra reads as something other than text.
_WORDS = frozenset({"true", "false", "null", "inf", "nan"})
