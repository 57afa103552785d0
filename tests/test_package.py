"""The shape of the package: public names, no import cycle, layers that import only those below.

The layers (``docs/architecture.md``), from the bottom: ``_runtime``; ``special``;
``distributions``; ``loss``; what builds on the losses (``gates``, ``compat``, the top-level
``generalized`` alias); the edges (``viz``, ``cli``, ``demo``, ``experiments``). A module may
import its own layer and those below. The core imports nothing heavier than torch, numpy and the
kernel backends.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import batchshaping

SOURCE = Path(batchshaping.__file__).resolve().parent
LAYERS = {
    "_runtime": 0,
    "special": 1,
    "distributions": 2,
    "loss": 3,
    "gates": 4,
    "compat": 4,
    "generalized": 4,
    "__init__": 4,
    "viz": 5,
    "cli": 5,
    "demo": 5,
    "experiments": 5,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    base = SOURCE.parent / relative
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, anywhere but under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for top in ast.walk(tree)
        if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
        for node in ast.walk(top)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if _is_module(name) else node.module for name in names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "batchshaping")
    return found


GRAPH = {_module_name(path): _imports(path) for path in SOURCE.rglob("*.py")}


def test_no_import_cycle():
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(GRAPH.get(module, ())):
            if state.get(imported) == "open":
                cycles.append([*trail[trail.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*trail, imported])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS["__init__" if len(parts) == 1 else parts[1]]


def test_every_module_has_a_layer():
    assert all(module.split(".")[1] in LAYERS for module in GRAPH if "." in module)


def test_layers_import_only_their_own_layer_and_those_below():
    upward = [
        f"{module} (layer {_layer(module)}) imports {imported} (layer {_layer(imported)})"
        for module, imports in GRAPH.items()
        for imported in imports
        if _layer(imported) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_core_imports_nothing_heavy():
    # What torch itself loads (some builds load tqdm) does not count.
    code = (
        "import sys, torch; before = set(sys.modules);"
        "import batchshaping, batchshaping.gates, batchshaping.loss;"
        "heavy = ['matplotlib', 'tqdm', 'scipy', 'PIL', 'triton', 'numba', 'sklearn', 'mlxtend'];"
        "print([name for name in heavy if name in set(sys.modules) - before])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_public_name_imports():
    namespace: dict = {}
    exec("from batchshaping import *", namespace)
    assert set(batchshaping.__all__) <= set(namespace)
    for module in ["compat", "distributions", "loss", "loss.routes", "special", "viz", "gates"]:
        submodule = importlib.import_module(f"batchshaping.{module}")
        for name in submodule.__all__:
            assert hasattr(submodule, name), f"batchshaping.{module}.{name}"
    # No submodule shadows an exported function of the same name.
    assert callable(batchshaping.batch_shaping_loss)
    assert callable(batchshaping.gbas_loss)
    assert callable(batchshaping.betainc)


def test_the_version_is_the_package_metadata():
    from importlib.metadata import version

    assert batchshaping.__version__ == version("batchshaping")
