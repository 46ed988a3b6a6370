"""The tree shows the architecture: subpackages by role, imports pointing down the layers."""

import ast
from pathlib import Path

import vbench

PACKAGE = Path(vbench.__file__).parent
# Top to bottom. A module may import from its own package and from any package below it.
LAYERS = ["commands", "inference", "training", "reports", "models", "evaluation", "loggers",
          "data", "core"]


def _imports() -> dict[str, set[str]]:
    """{module: the vbench modules it imports}, from the source (lazy imports included)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                    if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                if target.startswith("vbench"):
                    targets |= {f"{target}.{a.name}" for a in node.names} | {target}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("vbench")}
        graph[module] = targets
    return graph


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert top == []  # the package root holds only the entry of `python -m vbench`


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in _imports().items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if here and there and LAYERS.index(there) < LAYERS.index(here):
                wrong.append(f"{module} -> {target}")
    assert sorted(set(wrong)) == []


def test_no_import_circles():
    graph = _imports()
    modules = set(graph)
    edges = {m: {t for t in ts if t in modules and t != m} for m, ts in graph.items()}
    # packages import their own modules from __init__; a circle through them is a real one
    state, circles = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                circles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert circles == []
