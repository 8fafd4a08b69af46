"""The package's layers point down only, and its import graph has no cycle (README: Architecture).

Every import of every module counts, at the top of a file or inside a function: an import moved into a
function to dodge a cycle is still an edge of the graph, so it fails here like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hybridpot"

#: layer of each module (the longest matching prefix decides); a module may import from its own layer or below
LAYERS = {
    # 0: utilities and the atoms themselves
    "hybridpot.errors": 0, "hybridpot.registry": 0, "hybridpot.settings": 0, "hybridpot.arrays": 0, "hybridpot.io.atomic": 0, "hybridpot.io.toml": 0,
    "hybridpot.io.integrity": 0, "hybridpot.maxvol": 0, "hybridpot.metrics": 0, "hybridpot.system": 0,
    "hybridpot.neighbors": 0, "hybridpot.lammps_plugin": 0, "hybridpot.lammps_run": 0, "hybridpot.cache": 0,
    "hybridpot.distributed": 0,  # passes over batches, in this process or on Dask: every layer that runs one imports it
    # 1: the evaluation path every potential shares
    "hybridpot.potential": 1, "hybridpot.fallback": 1,
    # 2: the components
    "hybridpot.empirical": 2, "hybridpot.descriptors": 2, "hybridpot.models": 2, "hybridpot.backends": 2,
    "hybridpot.calculator": 2, "hybridpot.testing": 2,
    # 3: data sets and predictions over them
    "hybridpot.dataset": 3, "hybridpot.prediction": 3, "hybridpot.design": 3, "hybridpot.scoring": 3,
    # 4: uncertainty and fitting
    "hybridpot.uq": 4, "hybridpot.fitting": 4,
    "hybridpot.fitting.job": 5,    # the `hybridpot fit` workflow (reads files, writes the output folder)
    # 5: files, deployment, workflows, the command line
    "hybridpot.io": 5, "hybridpot.export": 5, "hybridpot.md": 5, "hybridpot.active": 5, "hybridpot.evaluation": 5,
    "hybridpot.plots": 5, "hybridpot.cli": 5, "hybridpot": 5,
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer(module: str) -> int:
    """The layer of ``module``: its own entry or that of its closest parent below the top-level package
    (the package ``hybridpot`` itself is an entry of its own, not a default for every module)."""
    if module == "hybridpot":
        return LAYERS[module]
    parts = module.split(".")
    for k in range(len(parts), 1, -1):
        prefix = ".".join(parts[:k])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every hybridpot module ``module`` imports (anywhere in the file)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known and name != module and name.startswith("hybridpot"):
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(m, p, known) for m, p in known.items()}


def test_every_module_has_a_layer():
    missing = []
    for m in modules():
        try:
            layer(m)
        except KeyError:
            missing.append(m)
    assert not missing, f"modules without a layer in tests/test_architecture.py: {missing}"


def test_imports_point_down():
    g = graph()
    upward = sorted(f"{m} ({layer(m)}) -> {t} ({layer(t)})" for m, targets in g.items() for t in targets
                    if layer(t) > layer(m) and not t == "hybridpot" and not (m.startswith(t + ".")))
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph ``edges`` (as a closed path of modules), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    # a package's __init__ importing its own submodules (re-exports) is not a cycle through the package
    edges = {m: {t for t in ts if not m.startswith(t + ".") and not t.startswith(m + ".")} for m, ts in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The layer check is not vacuous: an import of the fitting layer from the potential layer is reported."""
    fake = {"hybridpot.potential": tmp_path / "potential.py", "hybridpot.fitting.job": tmp_path / "job.py"}
    fake["hybridpot.potential"].write_text("def f():\n    from hybridpot.fitting.job import run_fit\n")
    fake["hybridpot.fitting.job"].write_text("")
    found = imports("hybridpot.potential", fake["hybridpot.potential"], fake)
    assert found == {"hybridpot.fitting.job"} and layer("hybridpot.fitting.job") > layer("hybridpot.potential")
