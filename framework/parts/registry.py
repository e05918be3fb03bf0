"""Registries of named parts (datasets, backbones, heads, regularizers, callbacks, tasks,
protocols, trackers).

A part is registered once by a plugin, listed by name, and built by name; Hydra loads its default
config from the registry, under the part's group (``framework.config.source``), so
``backbone=<name>`` and ``--help`` see a third party's part exactly like a built-in one.
"""

import dataclasses
import difflib
import fnmatch
import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from framework.errors import PluginError, UnknownPartError, UserError
from framework.parts.kinds import KINDS


@dataclass(frozen=True)
class Part:
    """One registered part.

    Args:
        group: the Hydra config group (``backbone``, ``dataset``...).
        name: the name users select it by.
        builder: a callable or a lazy ``"module:function"`` string.
        config: the dataclass (or dict) of its default settings.
        description: one line for listings.
        provider: the plugin that registered it.
        takes: the kinds of input it accepts (``framework.parts.kinds``), or None if undeclared.
        gives: the kind of output it gives, or None if undeclared.
        task: a dataset's: the task its targets are for where the dataset fixes it (known before
            its data loads: ``task=auto`` and an Optuna study's direction), or None where its
            data decides (a CSV file's columns).
        rows: a dataset's: ``rows(data, header, rows, source) -> float32 array``, a finished
            run's model inputs for new rows of a CSV file (text cells under ``header``), read
            as the run's ``data`` block of ``metrics.json`` records; None: it reads no rows.
    """

    group: str
    name: str
    builder: Callable | str
    config: Any
    description: str
    provider: str
    takes: tuple[str, ...] | None = None
    gives: str | None = None
    task: str | None = None
    rows: Callable | str | None = None

    def build(self, *args, **kwargs):
        """Calls the part's builder, importing it first if it is a ``"module:function"`` string.

        Raises:
            UserError: the builder's own, as it raised it.
            PluginError: any other error of the builder, with the plugin and part named (the
                original is chained: HYDRA_FULL_ERROR=1 shows its traceback).
        """
        return self._call(self.builder, *args, **kwargs)

    def read_rows(self, data: dict, header: list[str], rows: list[list[str]], source: str):
        """A dataset's ``rows`` function called (errors as ``build``'s); call it only where
        ``rows`` is set."""
        return self._call(self.rows, data, header, rows, source)

    def _call(self, function, *args, **kwargs):
        try:
            if isinstance(function, str):
                module, _, attr = function.partition(":")
                function = getattr(importlib.import_module(module), attr)
            return function(*args, **kwargs)
        except UserError:
            raise
        except Exception as e:
            if isinstance(e, MemoryError) or type(e).__module__.startswith(("tensorflow", "jax")):
                raise  # the machine's limits (out of memory on a device), not the plugin's fault
            detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise self.misbehaved(f"failed: {type(e).__name__}: {detail}".rstrip(": ")) from e

    def misbehaved(self, what: str) -> PluginError:
        """The error for this part doing something wrong, e.g. ``returned 3, not a keras.Model``."""
        return PluginError(f"{self.group} {self.name!r} of plugin {self.provider!r} {what}")


class Registry:
    """The parts of one config group, by name.

    Args:
        group: the Hydra config group the parts' configs are stored under.
        multiple: whether a run selects a list of parts (regularizers, callbacks) or one.
    """

    def __init__(self, group: str, multiple: bool = False):
        self.group = group
        self.multiple = multiple
        self._parts: dict[str, Part] = {}

    def register(
        self,
        name,
        build,
        config=None,
        description=None,
        *,
        provider,
        takes=None,
        gives=None,
        task=None,
        rows=None,
    ):
        """Adds a part, whose default config Hydra then finds under the registry's group.

        Args:
            takes: a kind or kinds of input the part accepts (``framework.parts.kinds``).
            gives: the kind of output it gives.
            task: a dataset's fixed task (``Part.task``).
            rows: a dataset's reader of new rows (``Part.rows``).

        Raises:
            PluginError: the name is taken (both providers are named) or invalid, or a kind is
                unknown.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(
                f"plugin {provider!r} registered a {self.group} with an invalid name; names are "
                f"Python identifiers. Received: name={name!r}"
            )
        if name in self._parts:
            other = self._parts[name].provider
            raise PluginError(
                f"two plugins register the {self.group} {name!r}: {other!r} and {provider!r}; "
                "uninstall one of them"
            )
        if description is None:
            doc = getattr(build, "__doc__", None) if callable(build) else None
            description = (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
        takes = (takes,) if isinstance(takes, str) else tuple(takes) if takes else None
        for kind in (*(takes or ()), *([gives] if gives else [])):
            if kind not in KINDS:
                raise PluginError(
                    f"plugin {provider!r} registered the {self.group} {name!r} with an unknown "
                    f"kind {kind!r}; accepted: {', '.join(KINDS)}"
                )
        part = Part(
            self.group, name, build, config, description, provider, takes, gives, task, rows
        )
        _check_config(part)  # its node is built when a composition loads it
        self._parts[name] = part
        return part

    def get(self, name: str) -> Part:
        """Returns the part called ``name``.

        Raises:
            UnknownPartError: no such part; the message lists the known names.
        """
        try:
            return self._parts[name]
        except KeyError:
            known = self.names()
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownPartError(
                f"unknown {self.group} {name!r}; known: {', '.join(known) or '(none)'}.{hint}"
            ) from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted part names, optionally filtered by an fnmatch pattern."""
        names = sorted(self._parts)
        return fnmatch.filter(names, pattern) if pattern else names

    def __iter__(self):
        return iter(self._parts[name] for name in self.names())

    def __contains__(self, name):
        return name in self._parts

    def __len__(self):
        return len(self._parts)

    def clear(self):
        self._parts.clear()


def _check_config(part: Part):
    """Refuses a config that is neither a dict nor a dataclass, or that defines ``name``.

    Raises:
        PluginError: naming the part.
    """
    config = part.config if part.config is not None else {}
    if isinstance(config, dict):
        names = config
    else:
        cls = config if isinstance(config, type) else type(config)
        if not dataclasses.is_dataclass(cls):
            raise PluginError(
                f"the config of {part.group} {part.name!r} must be a dataclass or a dict. "
                f"Received: config={config!r}"
            )
        names = [f.name for f in dataclasses.fields(cls)]
    if "name" in names:
        raise PluginError(f"the config of {part.group} {part.name!r} may not define 'name'")


def config_node(part: Part):
    """The node Hydra loads for a part: its config with a leading ``name`` field set to the part's
    name.

    Dataclass configs stay typed, so Hydra rejects unknown keys and wrong types.
    """
    _check_config(part)
    config = part.config if part.config is not None else {}
    if isinstance(config, dict):
        return OmegaConf.create({"name": part.name, **config})
    cls = config if isinstance(config, type) else type(config)
    hints = typing.get_type_hints(cls)
    fields = [("name", str, dataclasses.field(default=part.name))]
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name) if not isinstance(config, type) else f.default
        # The metadata carries the field's accepted range (framework.parts.ranges).
        if value is dataclasses.MISSING:
            default = dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
        elif isinstance(value, (list, dict)):
            default = dataclasses.field(
                default_factory=lambda v=value: type(v)(v), metadata=f.metadata
            )
        else:
            default = dataclasses.field(default=value, metadata=f.metadata)
        fields.append((f.name, hints[f.name], default))
    node_cls = dataclasses.make_dataclass(cls.__name__, fields)
    node_cls.__module__ = cls.__module__
    return OmegaConf.structured(node_cls)


REGISTRIES: dict[str, Registry] = {
    "dataset": Registry("dataset"),
    "backbone": Registry("backbone"),
    "head": Registry("head"),
    "regularizer": Registry("regularizer", multiple=True),
    "callbacks": Registry("callbacks", multiple=True),
    "task": Registry("task"),
    "protocol": Registry("protocol"),
    "tracker": Registry("tracker"),
}
datasets = REGISTRIES["dataset"]
backbones = REGISTRIES["backbone"]
heads = REGISTRIES["head"]
regularizers = REGISTRIES["regularizer"]
callbacks = REGISTRIES["callbacks"]
tasks = REGISTRIES["task"]
protocols = REGISTRIES["protocol"]
trackers = REGISTRIES["tracker"]
