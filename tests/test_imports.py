"""framework's modules import one another without a circle, counting the imports inside
functions: a function-level import may defer a heavy library, not close a circle."""

import ast
from pathlib import Path

PACKAGE = "framework"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for the package's modules (``config``...), from
    every import statement, at any depth, of each module's source."""
    modules = {path.stem for path in root.glob("*.py") if path.stem != "__init__"}
    graph = {}
    for module in sorted(modules):
        path = root / f"{module}.py"
        edges = graph[module] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _imported(node):
                parts = name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in modules:
                    edges.setdefault(parts[1], node.lineno)
    return graph


def _imported(node) -> list[str]:
    """The dotted names an import statement may load: ``from framework import x`` may load the
    module ``framework.x``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


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


def test_framework_modules_import_one_another_without_a_circle():
    graph = import_graph()
    assert len(graph) > 30 and graph["__main__"]  # it found the modules and their imports
    circles = find_cycles(graph)
    assert not circles, (
        "import circles in framework/ (imports inside functions count):\n"
        + "\n".join(describe(graph, circle) for circle in circles)
    )


def test_the_circle_finder_names_a_circle_closed_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from framework.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from framework import c\n")
    (tmp_path / "c.py").write_text("import framework.a\nimport os\n")
    (tmp_path / "d.py").write_text("from framework import a, b\n")
    graph = import_graph(tmp_path)
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert describe(graph, ["a", "b", "c", "a"]) == "a (line 1) -> b (line 2) -> c (line 1) -> a"
