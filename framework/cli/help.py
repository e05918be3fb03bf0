"""``python -m framework --help``: Hydra's own app help, composed and written by Hydra, except that
each value of the help template is computed only if the template names it.

Hydra 1.3 computes its two listings of config groups (``$APP_CONFIG_GROUPS``,
``$HYDRA_CONFIG_GROUPS``) for every ``--help``, whatever the template shows: they open a config
repository per group and option list, each a deep copy of the whole ConfigStore, about a hundred
copies in all (well over a second on 2 CPU cores, with Hydra's launcher and sweeper plugins
installed). Our template lists the groups from the registries (``${framework_config_groups:}``)
and skips them; a template of the user's own (``hydra.help.template=...``) that names them gets
Hydra's listings as Hydra writes them.

Hydra has no public API for its argument parser or its help: this module is the one place the
command reaches into ``hydra._internal`` (tests/test_hydra_internals.py checks what it uses).
"""

import os
import string
from collections.abc import Mapping

from hydra._internal.hydra import Hydra
from hydra._internal.utils import (
    create_automatic_config_search_path,
    detect_calling_file_or_module_from_task_function,
    detect_task_name,
    get_args_parser,
)
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.utils import validate_config_path
from hydra.errors import SearchPathException
from omegaconf import OmegaConf


def show_help(args, task_function, config_path: str, config_name: str) -> None:
    """Prints what ``hydra.main``'s ``--help`` prints (``hydra._internal.utils._run_hydra``, then
    ``Hydra.app_help``), for the same arguments.

    Args:
        args: Hydra's parsed command line.
        task_function: the function ``hydra.main`` decorates (undecorated).
        config_path, config_name: as given to ``hydra.main``.
    """
    if args.config_name is not None:
        config_name = args.config_name
    if args.config_path is not None:
        config_path = args.config_path
    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task_function)
    task_name = detect_task_name(calling_file, calling_module)
    validate_config_path(config_path)
    search_path = create_automatic_config_search_path(calling_file, calling_module, config_path)
    if args.config_dir is not None:
        abs_config_dir = os.path.abspath(args.config_dir)
        if not os.path.isdir(abs_config_dir):
            raise SearchPathException(f"Additional config directory '{abs_config_dir}' not found")
        search_path.prepend(
            provider="command-line",
            path=f"file://{abs_config_dir}",
            anchor=SearchPathQuery(provider="schema"),
        )
    hydra = _LazyHelpHydra.create_main_hydra2(task_name=task_name, config_search_path=search_path)
    hydra.app_help(config_name=config_name, args_parser=get_args_parser(), args=args)


class _LazyHelpHydra(Hydra):
    def get_help(self, help_cfg, cfg, args_parser, resolve: bool) -> str:
        """``Hydra.get_help``, with each template value computed when the template names it."""

        def is_hydra_group(x: str) -> bool:
            return x.startswith("hydra/") or x == "hydra"

        values = _Lazy(
            {
                "FLAGS_HELP": lambda: self.format_args_help(args_parser),
                "HYDRA_CONFIG_GROUPS": lambda: self.format_config_groups(is_hydra_group),
                "APP_CONFIG_GROUPS": lambda: self.format_config_groups(
                    lambda x: not is_hydra_group(x)
                ),
                "CONFIG": lambda: OmegaConf.to_yaml(cfg, resolve=resolve),
            }
        )
        return string.Template(help_cfg.template).substitute(values)


class _Lazy(Mapping):
    """A mapping whose values are computed, once, when read."""

    def __init__(self, factories: dict):
        self._factories = factories
        self._values = {}

    def __getitem__(self, key):
        if key not in self._values:
            self._values[key] = self._factories[key]()
        return self._values[key]

    def __iter__(self):
        return iter(self._factories)

    def __len__(self):
        return len(self._factories)
