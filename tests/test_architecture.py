"""The package's import graph has no circles.

Every module of ``keras_fer`` is parsed with ``ast`` (nothing is imported or run) and every
import of a ``keras_fer`` module is an edge: module-level imports and the ones inside
functions alike (a lazy import only postpones a circle, it does not remove it), plus
``importlib.import_module("keras_fer....")`` with a constant name. Two modules that reach
each other through these edges fail the test, named with the path that closes the circle.

``from keras_fer.a import b`` is an edge to ``keras_fer.a.b`` when that is a module, else to
``keras_fer.a`` (its ``__init__``); the parent packages a dotted import also executes are not
counted, so a subpackage's ``__init__`` may re-export its own modules.
"""

import ast
import pathlib

PACKAGE = "keras_fer"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE

# Circles known and owned elsewhere, as frozensets of the modules in them. Each needs a
# comment naming who removes it; an entry that no longer matches a circle fails the test.
# (Empty: issue 13 removed the last three, datasets.records <-> datasets.pipeline,
# predict <-> tflite and models.registry <-> models.resizer_front.)
ALLOWED = set()


def _modules():
    """``{module name: path}`` for every ``.py`` file of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _absolute(node, module, is_package):
    """The absolute module named by an ``ImportFrom`` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name, modules):
    """The module ``name`` refers to: itself, or its nearest enclosing module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    """``{module: {imported keras_fer module: line}}``."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        edges = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, module, path.name == "__init__.py")
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                         for alias in node.names]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    target = _target(name, modules)
                    if target and target != module:
                        edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(component, graph):
    """One circle inside ``component`` as ``a (line n) -> b (line m) -> ... -> a``."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        step = next(w for w in sorted(graph[path[-1]]) if w in members
                    and (w == start or w not in seen))
        if step == start or step in seen:
            break
        path.append(step)
        seen.add(step)
    hops = [f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:] + [start])]
    return " -> ".join(hops + [start])


def test_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    # Module level.
    assert "keras_fer.datasets.records" in graph["keras_fer.datasets.pipeline"] or \
        "keras_fer.datasets.image_io" in graph["keras_fer.datasets.pipeline"]
    # Inside a function (cli.main imports _quiet_tf when it runs).
    assert "keras_fer._quiet_tf" in graph["keras_fer.cli"]


def test_no_import_circles():
    graph = import_graph()
    found = [c for c in circles(graph) if frozenset(c) not in ALLOWED]
    assert not found, "import circles:\n" + "\n".join(_describe(c, graph) for c in found)


def test_allowed_circles_still_exist():
    """An allow-list entry whose circle is gone is removed, so it cannot hide a new one."""
    current = {frozenset(c) for c in circles(import_graph())}
    assert not ALLOWED - current, f"no longer circles, remove from ALLOWED: {ALLOWED - current}"
