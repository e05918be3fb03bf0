"""Hydra's config source ``framework://``: the parts the plugins register, the experiments of
``experiments/`` and the experiments' settings of the parts they pick, each built when Hydra
loads it.

Hydra deep-copies its whole ConfigStore every time it opens its config repository: once or twice
per composition, and twice per config group for ``--help`` (about a hundred times). Stored
there, every part and experiment was built at start-up and copied on each of those occasions;
served from here, only the few a composition loads are built, and nothing is copied. A
``SearchPathPlugin`` puts the source on every config search path (``python -m framework``,
Hydra's compose API, the preflight's own loader), so ``backbone=<name>``, tab completion and the
group listings see a third party's part exactly as a built-in one, as they did in the store.
"""

import copy
import functools
import importlib.resources
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from hydra.core.plugins import Plugins
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from framework.errors import PluginError
from framework.parts.loading import load_plugins
from framework.parts.registry import REGISTRIES, config_node

SCHEME = "framework"
EXPERIMENTS_PACKAGE = "framework.experiments"
EXPERIMENT_GROUP = "experiment"
# Groups of one part each, whose settings an experiment keeps for the part it picks.
PART_GROUPS = ("dataset", "backbone", "head")
# Where those settings are served: group experiment_settings/<group>, option <experiment>-<part>.
# Internal (config.yaml loads them): not listed, so --help and tab completion leave them out.
SETTINGS_GROUP = "experiment_settings"


class FrameworkConfigSource(ConfigSource):
    """The configs of the registered parts, the experiments and their part settings.

    Holds no configs itself (Hydra copies the source with every repository it opens): they are
    read from the registries and the experiment files when asked for.
    """

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        if path in ("", EXPERIMENT_GROUP, SETTINGS_GROUP):
            return True
        if path.startswith(f"{SETTINGS_GROUP}/"):
            return path.partition("/")[2] in PART_GROUPS
        registry = _registries().get(path)
        return registry is not None and len(registry) > 0

    def is_config(self, config_path: str) -> bool:
        return self._find(config_path) is not None

    def load_config(self, config_path: str) -> ConfigResult:
        found = self._find(config_path)
        if found is None:
            raise ConfigLoadError(f"Config not found: {config_path}")
        node, package, provider = found()
        return ConfigResult(
            config=node, path=f"{SCHEME}://", provider=provider, header={"package": package}
        )

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        groups, configs = [], []
        if path == "":
            groups = [g for g, registry in _registries().items() if len(registry)]
            groups.append(EXPERIMENT_GROUP)
        elif path == EXPERIMENT_GROUP:
            configs = list(experiment_names())
        elif path in _registries():
            configs = _registries()[path].names()
        found = []
        if results_filter in (None, ObjectType.GROUP):
            found += groups
        if results_filter in (None, ObjectType.CONFIG):
            found += configs
        return sorted(set(found))

    def _find(self, config_path: str):
        """A function returning ``(node, package, provider)`` of a config, or None if this source
        has no such config, or leaves it to the ConfigStore (``store_shadowed``)."""
        path = config_path.strip("/").removesuffix(".yaml")
        if ConfigStore.instance().get_type(f"{path}.yaml") == ObjectType.CONFIG:
            return None
        group, _, name = path.rpartition("/")
        if group == EXPERIMENT_GROUP and name in experiment_names():
            return lambda: (copy.deepcopy(experiment_node(name)), "_global_", "framework")
        if group.startswith(f"{SETTINGS_GROUP}/"):
            part_group = group.partition("/")[2]
            experiment, _, part = name.rpartition("-")
            if part_group in PART_GROUPS and experiment in experiment_names():
                block = effective_settings(experiment).get((part_group, part))
                if block is not None:  # a root of its own, as the ConfigStore made it
                    return lambda: (OmegaConf.create(block), part_group, "framework")
            return None
        registry = _registries().get(group)
        if registry is None or name not in registry:
            return None
        part = registry.get(name)
        # A list group holds one sub-key per selected part: regularizer.dropout, regularizer.l2...
        package = f"{group}.{name}" if registry.multiple else None
        return lambda: (_part_node(part), package, part.provider)


class FrameworkSearchPath(SearchPathPlugin):
    """Puts ``framework://`` on Hydra's config search path, after the config directories."""

    def manipulate_search_path(self, search_path) -> None:
        search_path.append(provider="framework", path=f"{SCHEME}://")


def register() -> None:
    """Makes Hydra use the source (an editable install hides ``hydra_plugins`` from Hydra's
    namespace scan, so the plugins are registered by hand, as Hydra documents)."""
    plugins = Plugins.instance()
    plugins.register(FrameworkConfigSource)
    plugins.register(FrameworkSearchPath)


def store_shadowed(config_dir: str | None):
    """Stores in Hydra's ConfigStore the parts and experiments that a file of a user's config
    directory (``--config-dir``) has the name of, and leaves them to it.

    The directory comes after this source on Hydra's search path; Hydra finds such a file there,
    and validates it against the stored config of the same name, as it always did (it merges a
    part's file into the part's settings, with a deprecation warning; it refuses an experiment's).
    """
    if not config_dir:
        return
    root, registries = Path(config_dir), _registries()
    for path in root.glob("*/*.yaml"):
        group, name = path.parent.name, path.stem
        if group == EXPERIMENT_GROUP and name in experiment_names():
            node, package, provider = experiment_node(name), "_global_", None
        elif group in registries and name in registries[group]:
            part = registries[group].get(name)
            node, provider = _part_node(part), part.provider
            package = f"{group}.{name}" if registries[group].multiple else None
        else:
            continue
        ConfigStore.instance().store(
            group=group, name=name, node=node, package=package, provider=provider
        )


def _registries() -> dict:
    # A process Hydra starts for a sweep job (joblib, Ray, submitit) composes its job's config
    # before the task function runs: the plugins are loaded on first use (a no-op if they are).
    load_plugins()
    return REGISTRIES


# The last node built for each part, with the Part it was built from (a part registered again,
# in tests, is built again).
_part_nodes: dict = {}


def _part_node(part):
    key = (part.group, part.name)
    cached = _part_nodes.get(key)
    if cached is None or cached[0] is not part:
        try:
            node = config_node(part)
        except PluginError:
            raise
        except Exception as e:  # e.g. a field type OmegaConf does not support
            raise part.misbehaved(
                f"has a config Hydra cannot use: {type(e).__name__}: "
                f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            ) from e
        cached = _part_nodes[key] = (part, node)
    return copy.deepcopy(cached[1])


@functools.cache
def experiment_names() -> frozenset[str]:
    """The names of the experiments shipped in ``experiments/``."""
    root = importlib.resources.files(EXPERIMENTS_PACKAGE)
    return frozenset(
        p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml")
    )


@functools.cache
def _experiment_file(name: str):
    """An experiment as written (parsed once; never modified: callers copy what they change)."""
    text = importlib.resources.files(EXPERIMENTS_PACKAGE).joinpath(f"{name}.yaml").read_text()
    return OmegaConf.create(text)


def _included(name: str, seen=()) -> list[str]:
    """The experiments of ours that ``name`` includes (``defaults: [wine]``)."""
    return [
        entry
        for entry in _experiment_file(name).get("defaults") or []
        if isinstance(entry, str) and entry in experiment_names() and entry not in seen
    ]


def _picks(name: str, seen=()) -> dict:
    """``{group: part}`` the experiment picks, its included experiments' picks under its own."""
    chosen = {}
    for entry in _included(name, seen):
        chosen.update(_picks(entry, (*seen, name)))
    return {**chosen, **own_picks(_experiment_file(name))}


def own_picks(node) -> dict:
    """``{group: part}`` for each ``override /<group>: <part>`` of a part group in a node."""
    picks = {}
    for entry in node.get("defaults") or []:
        if OmegaConf.is_dict(entry) and len(entry) == 1:
            ((key, value),) = entry.items()
            group = key.removeprefix("override /")
            if key.startswith("override /") and group in PART_GROUPS:
                picks[group] = value
    return picks


@functools.cache
def _own_settings(name: str) -> dict:
    """``{group: (part, settings)}``: what the experiment's own file sets for the parts it picks
    (``override /backbone: mlp`` with ``backbone: {units: ...}``)."""
    node = _experiment_file(name)
    return {
        group: (part, node[group])
        for group, part in _picks(name).items()
        if OmegaConf.is_dict(node.get(group))
    }


def effective_settings(name: str, seen=()) -> dict:
    """``{(group, part): settings}`` of an experiment, its included experiments' merged under
    its own: config.yaml loads them only while that part is the one chosen, so
    ``experiment=wine backbone=resmlp`` composes, without mlp's ``units``."""
    settings = {}
    for entry in _included(name, seen):
        settings.update(effective_settings(entry, (*seen, name)))
    for group, (part, block) in _own_settings(name).items():
        earlier = settings.get((group, part))
        settings[group, part] = block if earlier is None else OmegaConf.merge(earlier, block)
    return settings


@functools.cache
def experiment_node(name: str):
    """The experiment as Hydra composes it: without its settings of the parts it picks, which
    config.yaml loads apart (``effective_settings``). Callers copy it."""
    node = copy.deepcopy(_experiment_file(name))
    for group in _own_settings(name):
        del node[group]
    return node


def part_settings_keys(name: str) -> dict[str, tuple[str, list[str]]]:
    """What experiment ``name`` sets for the parts it picks: ``{group: (part name, keys)}`` (an
    included experiment's settings of a part that ``name`` replaced are left out)."""
    if name not in experiment_names():
        return {}
    picks = _picks(name)
    return {
        group: (part, [str(k) for k in block])
        for (group, part), block in effective_settings(name).items()
        if picks.get(group) == part
    }


def group_options(group: str) -> list[str]:
    """The options of a config group (its registered parts, or Hydra's); [] for a key that is
    not a group."""
    if group in REGISTRIES:
        return REGISTRIES[group].names()
    hydra = GlobalHydra.instance()
    return hydra.config_loader().get_group_options(group) if hydra.is_initialized() else []
