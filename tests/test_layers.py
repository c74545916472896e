"""The import graph follows the data flow: each module imports only from its own layer or below.

    foundation < workload < request state, memory, latency < scheduling < engine
    < cluster < simulation (and the config validation that knows every family)
    < api < report, plan, command lines < the ``simulator`` package itself

(the package's ``__init__`` is the facade: it re-exports the API and
registers the report layer's chart writers with ``Result.save``).

Every ``import`` counts, including those inside functions (a deferred import
is still a dependency) and those under ``TYPE_CHECKING``. A second test
checks that no two modules import each other through any chain.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (layer, module-name prefixes); the first matching prefix, longest first, decides a module's layer
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("simulator.errors", "simulator.registry", "simulator.files", "simulator.version", "simulator.specs", "simulator.progress",
         "simulator.metrics", "simulator.config.schema", "simulator.config.compose", "simulator.config.catalog",
         "simulator.config.checks", "simulator.config.pools", "simulator.config.pricing")),
    (1, ("simulator.workload",)),
    (2, ("simulator.engine.request", "simulator.engine.queue", "simulator.engine.running", "simulator.memory",
         "simulator.latency", "simulator.calibration")),
    (3, ("simulator.scheduling",)),
    (4, ("simulator.engine",)),
    (5, ("simulator.cluster",)),
    (6, ("simulator.simulation", "simulator.config")),
    (7, ("simulator.api",)),
    (8, ("simulator.report", "simulator.plan", "simulator.validation", "simulator.cli", "simulator.sweep_outcome", "simulator.tracecli", "simulator.modelcli", "simulator.calibration.cli",
         "simulator.calibration.published", "simulator.calibration.predict", "simulator.calibration.validate")),
    (9, ("simulator",)),  # the package's __init__ only: every other module has a longer prefix above
]
_PREFIXES = sorted(((p, layer) for layer, ps in LAYERS for p in ps), key=lambda t: -len(t[0]))


def layer_of(module: str) -> int:
    for prefix, layer in _PREFIXES:
        if module == prefix or (prefix != "simulator" and module.startswith(prefix + ".")):
            return layer
    raise AssertionError(f"{module} has no layer in tests/test_layers.py: add it")


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name (calibration/ ships as simulator.calibration)."""
    out = {}
    for base, package in ((ROOT / "simulator", "simulator"), (ROOT / "calibration", "simulator.calibration")):
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module an import names: the longest known module prefix (``from a.b import c`` may name a.b.c)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in MODULES:
            return ".".join(parts[:i])
    return name


def imports(module: str) -> set[str]:
    """The servesim modules ``module`` imports anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("simulator"):
                target = _resolve(name)
                if target != module and target in MODULES:
                    found.add(target)
    return found


GRAPH = {m: imports(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    mine = layer_of(module)
    upward = sorted(f"{t} (layer {layer_of(t)})" for t in GRAPH[module] if layer_of(t) > mine)
    assert not upward, f"{module} (layer {mine}) imports from a higher layer: {', '.join(upward)}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over every import: each component is one module."""
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_map_covers_real_modules():
    """Every prefix in the map names a module or package that exists, so the map cannot rot."""
    for _, prefixes in LAYERS:
        for p in prefixes:
            assert any(m == p or m.startswith(p + ".") for m in MODULES), p
