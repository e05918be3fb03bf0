"""framework's modules import one another one way: no circle, and no import that goes up the
layer order, counting the imports inside functions (a function-level import may defer a heavy
library, not close a circle or reach up). Plugins import the framework only through its public
API."""

import ast
from pathlib import Path

PACKAGE = "framework"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
PLUGINS = ROOT.parent / "plugins"

# The rooms, lowest first (docs/architecture.md draws them): a module may import its own room and
# the rooms below it. The public modules at the package's top (the commands, framework.api,
# framework.testing, the one-line aliases of old paths) stand above every room, so no room may
# import them.
LAYERS = ("errors", "parts", "runtime", "config", "run", "sweeps", "cli", "deploy")
# Top-level modules that belong to a room: the errors every room raises, and the hooks'
# specification that the plugin loader (parts) reads.
TOP_LEVEL_ROOMS = {"errors": "errors", "hookspecs": "parts"}
PUBLIC = len(LAYERS)
# What a plugin may import from the framework.
PLUGIN_API = ("framework.api", "framework.testing")


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for the package's modules, named from the package
    (``parts.registry``, ``__main__``), from every import statement, at any depth, of each
    module's source."""
    paths = {_name(path, root): path for path in root.rglob("*.py") if path.stem != "__init__"}
    graph = {}
    for module, path in sorted(paths.items()):
        edges = graph[module] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _imported(node):
                parts = name.split(".")
                if parts[0] == PACKAGE and ".".join(parts[1:]) in paths:
                    edges.setdefault(".".join(parts[1:]), node.lineno)
    return graph


def _name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _imported(node) -> list[str]:
    """The dotted names an import statement may load: ``from framework import x`` may load the
    module ``framework.x``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def layer(module: str) -> int:
    """A module's place in the layer order: its room's, or PUBLIC for the top-level modules."""
    room = module.split(".")[0] if "." in module else TOP_LEVEL_ROOMS.get(module)
    return LAYERS.index(room) if room is not None else PUBLIC


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each import of a module from a higher room (or of a public top-level module from a room),
    as ``importer (line N) -> imported``."""
    return [
        f"{module} (line {line}) -> {other}"
        for module, edges in graph.items()
        for other, line in edges.items()
        if layer(other) > layer(module)
    ]


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle (``[a, b, ..., a]``) through each group of modules that import one another
    (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph[module]:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_circle(graph, group) for group in groups]


def _circle(graph, group: set[str]) -> list[str]:
    """A shortest circle through the group's first module (breadth-first, inside the group)."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for other in sorted(graph[module]):
                if other == start:
                    return [*paths[module], start]
                if other in group and other not in paths:
                    paths[other] = [*paths[module], other]
                    following.append(other)
        frontier = following
    raise AssertionError(f"no circle through {start}")  # unreachable for a strong component


def describe(graph, circle: list[str]) -> str:
    return (
        " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(circle, circle[1:]))
        + f" -> {circle[-1]}"
    )


def plugin_imports(root: Path = PLUGINS) -> list[str]:
    """Each import of the framework by a built-in plugin other than its public API, as
    ``plugin (line N) -> module``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = _imported(node)[:1]  # the module named; its imported names are in it
            for name in names:
                if name.split(".")[0] == PACKAGE and name not in PLUGIN_API:
                    found.append(f"{_name(path, root)} (line {node.lineno}) -> {name}")
    return found


def test_framework_modules_import_one_another_without_a_circle():
    graph = import_graph()
    assert len(graph) > 30 and graph["__main__"]  # it found the modules and their imports
    circles = find_cycles(graph)
    assert not circles, (
        "import circles in framework/ (imports inside functions count):\n"
        + "\n".join(describe(graph, circle) for circle in circles)
    )


def test_no_module_imports_from_a_room_above_its_own():
    graph = import_graph()
    rooms = {module.split(".")[0] for module in graph if "." in module}
    assert rooms == set(LAYERS) - {"errors"}  # every room is in the order, and only rooms
    upward = upward_imports(graph)
    assert not upward, (
        "imports against the layer order " + " < ".join(LAYERS) + ":\n" + ("\n".join(upward))
    )


def test_plugins_import_the_framework_only_through_its_public_api():
    assert not plugin_imports(), plugin_imports()


def test_the_circle_finder_names_a_circle_closed_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from framework.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from framework import c\n")
    (tmp_path / "c.py").write_text("import framework.a\nimport os\n")
    (tmp_path / "d.py").write_text("from framework import a, b\n")
    graph = import_graph(tmp_path)
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert describe(graph, ["a", "b", "c", "a"]) == "a (line 1) -> b (line 2) -> c (line 1) -> a"


def test_the_layer_check_names_an_upward_import_inside_a_function(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "parts" / "tasks.py").write_text("def f():\n    from framework.run import train\n")
    (tmp_path / "run" / "train.py").write_text("from framework.parts.tasks import f\n")
    (tmp_path / "errors.py").write_text("import framework.api\n")
    (tmp_path / "api.py").write_text("from framework.run.train import x\n")
    graph = import_graph(tmp_path)
    assert sorted(upward_imports(graph)) == [
        "errors (line 1) -> api",
        "parts.tasks (line 2) -> run.train",
    ]


def test_the_plugin_check_names_an_import_of_the_core(tmp_path):
    (tmp_path / "good.py").write_text(
        "from framework.api import hookimpl\nimport framework.testing\n"
    )
    (tmp_path / "bad.py").write_text("import os\n\ndef f():\n    from framework.run import train\n")
    assert plugin_imports(tmp_path) == ["bad (line 4) -> framework.run"]


# Kept until the next release (docs/architecture.md says so): run and sweep dirs saved before the
# core moved into rooms name these callbacks in .hydra/hydra.yaml.
OLD_PATHS = {
    "framework.run_guard.RunGuard": "framework.cli.run_guard.RunGuard",
    "framework.sweep_summary.SweepSummary": "framework.sweeps.summary.SweepSummary",
}


def test_the_old_callback_paths_of_saved_configs_still_instantiate():
    from hydra.utils import get_class

    conf = (ROOT.parent / "conf" / "config.yaml").read_text()
    for old, new in OLD_PATHS.items():
        assert get_class(old) is get_class(new)
        assert new in conf and old not in conf  # new runs save the new paths
