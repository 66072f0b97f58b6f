"""The memory package's boundary: no module outside ``tracerl.memory`` imports or names a concrete core class (or
imports a core's module), and no algorithm, agent or bench module probes a core for undeclared attributes. Cores
are reached through the registry and the contract's declared hooks (``tracerl.memory.base``)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import tracerl
import tracerl.memory as memory_pkg
from tracerl.memory import MemoryCore

SRC = Path(tracerl.__file__).resolve().parent

INFRASTRUCTURE = {"base", "registry", "packing", "scan"}
"""Modules of tracerl.memory that hold no core: the contract, the registry and shared kernels."""

ALLOWED = {
    "__init__.py": "the public API re-exports seed 001's StrategicMemoryBuffer",
    "bench/seed_api.py": "seed 001's API benchmark builds seed 001's tracerl.StrategicMemoryBuffer from mem_dim / "
                         "max_entries, as the seed's script does",
}
"""Modules allowed to name a concrete core, with the reason."""

PROBED = {"hindsight", "uses_step_mask", "set_training_progress", "learn_retention", "memory_name", "memory_kwargs"}
"""Attributes the algorithms used to probe the strategic memory for (now declared by the contract)."""


def _memory_modules() -> list[str]:
    """Every module of tracerl.memory, those inside its subpackages (e.g. ``tracerl.memory.strategic.store``) too."""
    return [info.name for info in pkgutil.walk_packages(memory_pkg.__path__, prefix="tracerl.memory.")]


def _concrete_cores() -> dict[str, str]:
    """Class name -> module of every concrete MemoryCore subclass defined in tracerl.memory."""
    out: dict[str, str] = {}
    for name in _memory_modules():
        module = importlib.import_module(name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, MemoryCore) and not inspect.isabstract(obj)
                    and obj.__module__ == module.__name__):
                out[name] = module.__name__
    return out


def _outside_memory() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if (SRC / "memory") not in p.parents)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in ``path`` names."""
    if node.level == 0:
        return node.module or ""
    package = ["tracerl", *path.relative_to(SRC).parent.parts]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _core_references(path: Path, cores: dict[str, str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    core_modules = {name for name in _memory_modules() if name.split(".")[2] not in INFRASTRUCTURE}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            if module in core_modules:
                found.append(f"line {node.lineno}: imports {module}")
            elif module == "tracerl.memory":
                found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in cores]
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in core_modules]
        elif isinstance(node, ast.Name) and node.id in cores:
            found.append(f"line {node.lineno}: names {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in cores:
            found.append(f"line {node.lineno}: names .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in cores:
            found.append(f"line {node.lineno}: names {node.value!r}")
    return found


def test_the_check_finds_concrete_cores_and_references_to_them(tmp_path):
    cores = _concrete_cores()
    assert {"GRUCore", "LSTMCore", "StrategicMemoryCore", "StrategicMemoryBuffer"} <= set(cores)
    assert "MemoryCore" not in cores and "AddressableCore" not in cores
    probe = SRC / "algos" / "_boundary_probe.py"  # resolved as a module of tracerl.algos, never written
    sample = ("from ..memory.rnn import GRUCore\nfrom ..memory import LSTMCore, MemoryCore\nimport tracerl\n"
              "x = getattr(tracerl, 'StrategicMemoryBuffer')\ny = tracerl.memory.StrategicMemoryCore\n")
    original = Path.read_text
    try:
        Path.read_text = lambda self, *a, **k: sample if self == probe else original(self, *a, **k)  # type: ignore
        found = _core_references(probe, cores)
    finally:
        Path.read_text = original  # type: ignore[method-assign]
    assert sorted(found) == ["line 1: imports tracerl.memory.rnn", "line 2: imports LSTMCore",
                             "line 4: names 'StrategicMemoryBuffer'", "line 5: names .StrategicMemoryCore"], found


def test_no_module_outside_memory_references_a_concrete_core_class():
    cores = _concrete_cores()
    offenders = {}
    for path in _outside_memory():
        rel = path.relative_to(SRC).as_posix()
        if rel in ALLOWED:
            continue
        found = _core_references(path, cores)
        if found:
            offenders[rel] = found
    assert not offenders, offenders


def test_no_algorithm_agent_or_bench_module_probes_a_core_for_undeclared_attributes():
    offenders = {}
    for path in _outside_memory():
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("policies/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in PROBED):
                offenders.setdefault(rel, []).append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    assert not offenders, offenders
