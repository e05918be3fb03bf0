"""The three things Hydra 1.3 has no public API for, each kept in one module: its argument parser
and a --help that computes only what the template shows (framework/cli/help.py), and a grid
sweeper to wrap (hydra_plugins/framework_resume_sweeper). These tests fail when Hydra changes
the names, arguments or attributes those modules use, before a user meets it."""

import ast
import inspect
import sys

from hydra._internal import utils as hydra_utils
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra

from conftest import ROOT

USERS = {"framework/cli/help.py", "hydra_plugins/framework_resume_sweeper/__init__.py"}


def _parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def _importers_of_hydra_internals() -> set[str]:
    found = set()
    for folder in ("framework", "plugins", "hydra_plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name.startswith("hydra._internal") for name in names):
                    found.add(path.relative_to(ROOT).as_posix())
    return found


def test_hydra_internals_are_used_in_one_module_for_each_need():
    assert _importers_of_hydra_internals() == USERS


def test_hydras_argument_parser_gives_what_the_command_reads():
    parsed = vars(hydra_utils.get_args_parser().parse_args(["--help", "a=1"]))
    read = {"overrides", "help", "cfg", "info", "shell_completion", "experimental_rerun"}
    read |= {"config_name", "config_dir", "config_path"}
    assert read <= set(parsed)
    assert parsed["overrides"] == ["a=1"] and parsed["help"] is True


def test_the_lazy_help_calls_hydra_as_hydra_main_does():
    assert _parameters(hydra_utils.detect_calling_file_or_module_from_task_function) == [
        "task_function"
    ]
    assert _parameters(hydra_utils.detect_task_name) == ["calling_file", "calling_module"]
    assert _parameters(hydra_utils.create_automatic_config_search_path) == [
        "calling_file",
        "calling_module",
        "config_path",
    ]
    assert {"task_name", "config_search_path"} <= set(_parameters(Hydra.create_main_hydra2))
    assert {"config_name", "args_parser", "args"} <= set(_parameters(Hydra.app_help))
    # Overridden by framework.cli.help._LazyHelpHydra: the same arguments, called by app_help.
    assert _parameters(Hydra.get_help) == ["help_cfg", "cfg", "args_parser", "resolve"]
    assert "self.get_help(" in inspect.getsource(Hydra.app_help)
    assert callable(Hydra.format_args_help) and callable(Hydra.format_config_groups)


def test_the_resume_sweeper_wraps_the_grid_sweeper_as_it_is():
    assert {"max_batch_size", "params"} <= set(_parameters(BasicSweeper.__init__))
    assert _parameters(BasicSweeper.setup) == ["hydra_context", "task_function", "config"]
    assert _parameters(BasicSweeper.split_arguments) == ["overrides", "max_batch_size"]
    assert _parameters(BasicSweeper._parse_config) == []
    setup = inspect.getsource(BasicSweeper.setup)
    assert "self.hydra_context =" in setup and "self.launcher =" in setup
    assert "self.max_batch_size =" in inspect.getsource(BasicSweeper.__init__)
    assert "self.launcher.launch(" in inspect.getsource(BasicSweeper.sweep)


def test_the_continuing_optuna_sweeper_reaches_the_study_it_continues():
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    assert "self.sweeper =" in inspect.getsource(OptunaSweeper.__init__)
    impl = inspect.getsource(OptunaSweeperImpl)
    assert all(f"self.{name} =" in impl for name in ("job_idx", "storage", "study_name"))
    assert "self.job_idx" in inspect.getsource(OptunaSweeperImpl.sweep)


def test_the_check_names_each_module_that_reaches_into_hydra(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "framework").mkdir()
    (tmp_path / "framework" / "a.py").write_text("def f():\n    import hydra._internal.utils\n")
    (tmp_path / "framework" / "b.py").write_text("from hydra.core.utils import x\n")
    assert _importers_of_hydra_internals() == {"framework/a.py"}
