"""Before Hydra composes a run: pick the backbone and head that fit the dataset where the user
chose none, and refuse parts that cannot fit together, in one line and without TensorFlow.

The command line and the selected experiment are read through Hydra's own defaults list, so
``backbone=x`` and an experiment's ``override /backbone: x`` both count as a choice.
"""

import importlib.resources
import os

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from framework.config.schema import CONF_PACKAGE, experiment_part_settings, is_stored_experiment
from framework.config.search_space import check_space
from framework.config.source import PART_GROUPS, SETTINGS_GROUP
from framework.errors import UserError
from framework.parts import kinds
from framework.parts.objective import check_objective
from framework.parts.ranges import check_ranges, plain
from framework.parts.registry import REGISTRIES
from framework.parts.tasks import (
    AUTO,
    all_objectives,
    check_class_weight,
    dataset_task,
    registered_task,
)

CONFIG_NAME = "config"
# Groups whose choice decides which parts meet.
CHOICE_GROUPS = ("dataset", "backbone", "head", "experiment")


def choose_parts(
    overrides: list[str], config_name: str = CONFIG_NAME, config_dir: str | None = None
):
    """Fits the backbone and head to the dataset and checks every declared kind.

    Args:
        overrides: the command line's overrides (Hydra's syntax).
        config_name: the primary config; only ours is looked into.
        config_dir: a folder of the user's own configs (``--config-dir``), searched too.

    Returns:
        ``(extra overrides, notes)``: overrides that pick the parts the user left to the core
        (and load the part settings of our experiments that a user's own experiment includes),
        and one-line notes to show the user.

    Raises:
        UserError: chosen parts cannot fit together; the message names the ones that do.
    """
    parsed = OverridesParser.create().parse_overrides(overrides)
    if config_name != CONFIG_NAME:
        return [], []
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()} & set(CHOICE_GROUPS)
    if swept & {"dataset", "experiment"}:
        return [], []  # each job's data differs: its shapes are checked when it runs
    defaults = _defaults_list(overrides, config_name, config_dir)
    choices, regularizers, experiments = {}, [], []
    for d in defaults.defaults:
        group, _, option = d.config_path.rpartition("/")
        if group in PART_GROUPS and d.package == group:
            choices[group] = None if group in swept else option
        elif group == "regularizer":
            regularizers.append(option)
        elif group == "experiment":
            experiments.append((option, d.parent == config_name))
        elif group == "task" and option == AUTO:
            _check_no_task_settings(parsed)
    if "dataset" not in choices:
        return [], []
    chosen = set(defaults.overrides.override_choices) | swept
    picked = _pick_unchosen(choices, chosen)
    extra = [f"{group}={name}" for group, name in picked.items()]
    notes = []
    if picked:
        dataset = _part("dataset", choices["dataset"])
        notes.append(
            f"dataset {dataset.name!r} gives {kinds.describe(dataset.gives)}, so "
            f"{' '.join(extra)} (choose others with "
            f"{' '.join(f'{group}=...' for group in picked)})"
        )
        choices.update(picked)
    check_fit(choices, regularizers)
    settings, settings_notes = _experiment_settings(experiments, choices)
    return extra + settings, notes + settings_notes


def _check_no_task_settings(parsed):
    """Refuses ``task.<key>=`` under ``task=auto``, whose task is chosen only with the data (Hydra
    would say that the key is not in struct)."""
    keys = [o.key_or_group for o in parsed if o.key_or_group.startswith("task.")]
    if keys:
        raise UserError(
            f"{keys[0]} is a setting of a chosen task, and task=auto chooses one only "
            f"once the data is loaded; choose it too, e.g. task=regression "
            f"{keys[0]}=..."
        )


def check_settings(cfg):
    """Checks a composed run config before anything runs, without TensorFlow.

    Raises:
        UserError: a setting outside the range its config declares, parts that cannot fit
            together, a search space (``tuner.space``) a trial's setting could not take, a
            pruner the tuner's algorithm does not take, or class weights for a task, known
            before its data loads, that weighs no classes.
    """
    check_ranges(cfg)
    check_fit({group: cfg[group].name for group in PART_GROUPS}, list(cfg.regularizer))
    if OmegaConf.select(cfg, "tuner.algorithm"):  # ~tuner leaves the rest of its settings
        check_space(cfg.tuner.space, cfg)
        if cfg.tuner.algorithm == "hyperband" and cfg.tuner.pruner != "none":
            raise UserError(
                f"tuner.pruner={cfg.tuner.pruner}: tuner=hyperband prunes by its own brackets; "
                "use tuner.pruner=none, or tuner.algorithm=random or bayesian"
            )
    # Against every task's objectives here; against the run's task's once its data is loaded.
    for key in ("trainer.objective", "tuner.objective"):
        objective = OmegaConf.select(cfg, key)
        if objective is not None:
            check_objective(objective, all_objectives(), key=key)
    # Against the task known before the data loads, if any; against the run's once it is.
    class_weight = OmegaConf.select(cfg, "trainer.class_weight")
    task = OmegaConf.select(cfg, "task.name", default=AUTO)
    task = dataset_task(OmegaConf.select(cfg, "dataset.name")) if task == AUTO else task
    if class_weight is not None and task in REGISTRIES["task"]:
        check_class_weight(registered_task(task), plain(class_weight))


def check_fit(choices: dict, regularizers=()):
    """Refuses a dataset, backbone, head or regularizer whose declared kinds do not meet.

    Args:
        choices: option names by group (``dataset``, ``backbone``, ``head``); an option that is
            not a registered part (a user's own YAML) or None (swept) is not checked.
        regularizers: the names of the selected regularizers.

    Raises:
        UserError: the first mismatch, with the parts that would fit.
    """
    dataset, backbone, head = (_part(g, choices.get(g)) for g in PART_GROUPS)
    if backbone is not None and dataset is not None:
        check_takes(backbone, dataset.gives, f"dataset {dataset.name!r}")
    if head is not None and backbone is not None:
        check_takes(head, backbone.gives, f"backbone {backbone.name!r}")
    for name in regularizers:
        regularizer = _part("regularizer", name)
        if regularizer is not None and dataset is not None:
            check_takes(regularizer, dataset.gives, f"dataset {dataset.name!r}")


def check_takes(part, kind, source: str):
    """Refuses ``part`` if it declares what it takes and ``kind`` is not among it.

    Args:
        part: a registered part.
        kind: what ``source`` gives, or None if unknown (then nothing is checked).
        source: who gives it, for the message, e.g. ``"dataset 'wine'"``.

    Raises:
        UserError: the part does not take that kind; the message lists the parts that do.
    """
    if kind is None or part.takes is None or kind in part.takes:
        return
    fitting = [p.name for p in REGISTRIES[part.group] if p.takes and kind in p.takes]
    if part.group == "regularizer":  # the others are optional: leave this one out
        hint = f"leave {part.name!r} out of regularizer=[...]"
    elif fitting:
        hint = f"{part.group}s that take {kinds.describe(kind)}: {', '.join(fitting)}"
    else:
        hint = f"no registered {part.group} takes {kinds.describe(kind)}"
    raise UserError(
        f"{part.group} {part.name!r} takes {kinds.describe(part.takes)}, but {source} gives "
        f"{kinds.describe(kind)}; {hint}"
    )


def parts_by_input() -> dict:
    """The defaults table of ``conf/parts_by_input.yaml``: ``{group: {kind: part name}}``."""
    text = importlib.resources.files(CONF_PACKAGE).joinpath("parts_by_input.yaml").read_text()
    return OmegaConf.to_container(OmegaConf.create(text))


def _part(group: str, option: str | None):
    """The registered part an option names, or None (a user's own YAML option, or unknown)."""
    registry = REGISTRIES[group]
    return registry.get(option) if option in registry else None


def _pick_unchosen(choices: dict, chosen: set) -> dict:
    """The backbone and head, where not chosen, that the table gives for what comes before."""
    table = parts_by_input()
    picked = {}
    source = _part("dataset", choices["dataset"])
    for group in ("backbone", "head"):
        current = choices.get(group)
        if group not in chosen and source is not None and source.gives is not None:
            name = table.get(group, {}).get(source.gives)
            if name in REGISTRIES[group] and name != current:
                picked[group] = current = name
        source = _part(group, current)
    return picked


def _experiment_settings(experiments, choices):
    """Overrides loading the part settings of our experiments that a user's own selected
    experiment includes, and notes on settings left out because another part was chosen.

    Args:
        experiments: ``(name, selected)`` of each experiment in the defaults list, in order.
        choices: the final option of each part group.
    """
    selected = next((name for name, is_selected in experiments if is_selected), None)
    if selected is None:
        return [], []
    extra, notes = [], []
    for group in PART_GROUPS:
        if is_stored_experiment(selected):
            source = selected  # config.yaml loads its settings, its includes' merged in
        else:  # a user's own experiment: the settings of the last of ours it includes
            source = next(
                (
                    name
                    for name, _ in reversed(experiments)
                    if group in experiment_part_settings(name)
                ),
                None,
            )
        if group not in experiment_part_settings(source):
            continue
        part, keys = experiment_part_settings(source)[group]
        if choices.get(group) == part:
            if source != selected:
                extra.append(f"{SETTINGS_GROUP}/{group}@{group}={source}-{part}")
        elif choices.get(group) is not None:
            notes.append(
                f"experiment {source!r} sets {', '.join(f'{group}.{k}' for k in keys)} for "
                f"{group} {part!r}; not applied to {group} {choices[group]!r}"
            )
    return extra, notes


def _defaults_list(overrides, config_name, config_dir):
    """Hydra's own defaults list for the command line, from its public config loader: the one of
    the Hydra already set up, else one set up as ``hydra.main`` does (this package's configs, a
    ``--config-dir`` on the search path)."""
    if GlobalHydra.instance().is_initialized():
        return _loader_defaults(overrides, config_name)
    if config_dir and not any(o.startswith("hydra.searchpath=") for o in overrides):
        overrides = [*overrides, f"hydra.searchpath=[file://{os.path.realpath(config_dir)}]"]
    with hydra.initialize_config_module(version_base="1.3", config_module=CONF_PACKAGE):
        return _loader_defaults(overrides, config_name)


def _loader_defaults(overrides, config_name):
    loader = GlobalHydra.instance().config_loader()
    return loader.compute_defaults_list(config_name, list(overrides), RunMode.RUN)


def ineffective_settings(cfg, mode: RunMode, sweep_params, task_overrides) -> list[str]:
    """One line for each setting of a composed run that would have no effect.

    Args:
        cfg: the composed run config.
        mode: Hydra's run mode (a single run or a multirun).
        sweep_params: ``hydra.sweeper.params``, the sweep a config sets for itself, if any.
        task_overrides: the command line's overrides of the run config.

    Returns:
        The notes, possibly none.
    """
    notes = []
    if mode == RunMode.RUN and sweep_params:
        notes.append(
            f"this config sweeps {', '.join(sweep_params)} (hydra.sweeper.params), "
            "which only a multirun does; this runs one job: add -m to run the sweep"
        )
    given = {o.partition("=")[0].lstrip("+~") for o in task_overrides}
    stages = cfg.trainer.stages
    if "trainer.epochs" in given and stages and all(s.epochs is not None for s in stages):
        notes.append(
            f"trainer.epochs={cfg.trainer.epochs} has no effect: every stage of "
            "trainer.stages sets its own epochs (trainer.stages.<i>.epochs=N)"
        )
    return notes
