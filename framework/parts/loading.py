"""Plugin loading with pluggy: built-ins and third parties alike come from the entry-point group
``framework.plugins``; each registration hook fills one registry. ``python -m framework.plugins``
lists what they registered."""

import importlib.metadata
import os

import pluggy

from framework import hookspecs
from framework.errors import PluginError, UnknownPartError
from framework.parts.registry import REGISTRIES

ENTRY_POINT_GROUP = "framework.plugins"
# This project's own distribution: its entry points are the built-in plugins.
DISTRIBUTION = "keras-framework"
# Set to 1 to load only the built-in plugins (tests use it to shut out installed third parties).
DISABLE_AUTOLOAD_ENV = "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"

HOOKS = {
    "dataset": "register_datasets",
    "backbone": "register_backbones",
    "head": "register_heads",
    "regularizer": "register_regularizers",
    "callbacks": "register_callbacks",
    "task": "register_tasks",
    "protocol": "register_protocols",
    "tracker": "register_trackers",
}

_manager: pluggy.PluginManager | None = None


def load_plugins() -> pluggy.PluginManager:
    """Loads every plugin once and fills the registries (which Hydra reads its parts from;
    ``framework.config.schema.setup_configs`` sets Hydra up).

    Returns:
        The plugin manager; later calls return the same one.

    Raises:
        PluginError: a plugin failed to import, misspelled a hook, or clashed with another.
    """
    global _manager
    if _manager is None:
        plugins = [(ep.name, _load_entry_point(ep)) for ep in _entry_points()]
        _manager = register_plugins(plugins)
    return _manager


def register_plugins(plugins) -> pluggy.PluginManager:
    """Registers ``(name, module)`` pairs with a fresh manager and runs their hooks.

    Returns:
        The plugin manager.
    """
    pm = pluggy.PluginManager("framework")
    pm.add_hookspecs(hookspecs)
    for name, module in plugins:
        try:
            pm.register(module, name=name)
        except ValueError as e:
            raise PluginError(f"plugin {name!r} cannot be registered: {e}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"plugin {pm.get_name(e.plugin)!r}: {e}") from None
    for group, hook_name in HOOKS.items():
        registry = REGISTRIES[group]
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            # Call each plugin separately so the registry knows who provided each part.
            provider = impl.plugin_name

            def register(
                name,
                build,
                config=None,
                description=None,
                *,
                takes=None,
                gives=None,
                task=None,
                rows=None,
                _p=provider,
                _r=registry,
            ):
                return _r.register(
                    name,
                    build,
                    config,
                    description,
                    provider=_p,
                    takes=takes,
                    gives=gives,
                    task=task,
                    rows=rows,
                )

            impl.function(register=register)
    return pm


def _entry_points():
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    if os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("", "0"):
        eps = [ep for ep in eps if ep.dist is not None and ep.dist.name == DISTRIBUTION]
    # Built-ins first, then third parties by name: a stable order for listings and clashes.
    return sorted(eps, key=lambda ep: (ep.dist is None or ep.dist.name != DISTRIBUTION, ep.name))


def _load_entry_point(ep):
    try:
        return ep.load()
    except Exception as e:  # any failure in a plugin's import is reported the same way
        dist = f" of {ep.dist.name}" if ep.dist is not None else ""
        raise PluginError(
            f"plugin {ep.name!r} (entry point {ep.value!r}{dist}) failed to import: "
            f"{type(e).__name__}: {e}"
        ) from None


def plugin_listing(groups=None) -> str:
    """Every registry (or those of ``groups``) with each part's name, providing plugin and
    description, as text."""
    lines = []
    for group, registry in REGISTRIES.items():
        if groups is not None and group not in groups:
            continue
        lines.append(f"{group} ({len(registry)}):")
        width = max((len(p.name) for p in registry), default=0)
        pwidth = max((len(p.provider) for p in registry), default=0)
        for part in registry:
            lines.append(f"  {part.name:<{width}}  {part.provider:<{pwidth}}  {part.description}")
    return "\n".join(lines)


def find_parts(name: str, group: str | None = None):
    """The registered parts called ``name``, in ``group`` or in every group.

    Raises:
        UnknownPartError: no such part (or no such group); the message lists the known names.
    """
    if group is not None:
        if group not in REGISTRIES:
            raise UnknownPartError(f"unknown group {group!r}; accepted: {', '.join(REGISTRIES)}")
        return [REGISTRIES[group].get(name)]
    found = [registry.get(name) for registry in REGISTRIES.values() if name in registry]
    if not found:
        known = sorted({n for registry in REGISTRIES.values() for n in registry.names()})
        raise UnknownPartError(
            f"unknown part {name!r}; known: {', '.join(known)} (groups: {', '.join(REGISTRIES)})"
        )
    return found
