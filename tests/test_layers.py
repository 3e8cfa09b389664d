"""Imports go one way only (docs/architecture.md, Layers): read every module's imports and check.

The core (`pairbench.errors`, `.runmodel`, `.atomicfile`) imports no other layer; `targets`
nothing of pairbench but itself and the exit codes; `harness` and `results` the core only, never each other, the
targets or the command line; the Python API (`pairbench.api`) the core, harness and results, never
the command line; nothing imports `pairbench.cli`, and nothing below the API imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pairbench

ROOT = Path(__file__).resolve().parents[1]

# folder -> (its import name, the pairbench packages it may import besides itself)
CORE = ("pairbench.errors", "pairbench.runmodel", "pairbench.atomicfile")
LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "targets": ("pairbench.targets", ("pairbench.errors",)),  # exit codes defined once
    "harness": ("pairbench.harness", (*CORE, "pairbench.scenarios")),
    "results": ("pairbench.results", CORE),
    # Beside the command line, which calls it; it composes the engine and the reader as the
    # command line does (docs/architecture.md, Layers).
    "pairbench/api": (
        "pairbench.api",
        (*CORE, "pairbench.harness", "pairbench.results", "pairbench.scenarios"),
    ),
}
BELOW_THE_API = ("targets", "harness", "results")
# `from pairbench import run` reaches the API through the package's lazy re-export.
API_NAMES = ("pairbench.api", *(f"pairbench.{name}" for name in pairbench.__all__))


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every absolute module name `path` imports, relative imports resolved against `package`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = package.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from pairbench import results` imports a package, not a name
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def _package_of(path: Path, folder: str, import_name: str) -> str:
    relative = path.relative_to(ROOT / folder).with_suffix("")
    # A module's relative imports resolve against its package; an __init__ is its package.
    return ".".join([import_name, *relative.parts[:-1]])


def _violations(folder: str, import_name: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        package = _package_of(path, folder, import_name)
        for line, module in _imports(path, package):
            if not module.startswith("pairbench"):
                continue
            own = module == import_name or module.startswith(import_name + ".")
            ok = own or any(module == a or module.startswith(a + ".") for a in allowed)
            if not ok and module != "pairbench":
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_layer_imports_only_what_lies_below(folder: str) -> None:
    import_name, allowed = LAYERS[folder]
    assert _violations(folder, import_name, allowed) == []


def test_core_imports_no_other_layer() -> None:
    bad = []
    for name in CORE:
        path = ROOT / "pairbench" / f"{name.rsplit('.', 1)[1]}.py"
        if not path.exists():
            continue
        for line, module in _imports(path, "pairbench"):
            if module.startswith("pairbench") and module not in (*CORE, "pairbench"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert bad == []


def test_nothing_imports_the_command_line() -> None:
    bad = []
    for folder, (import_name, _) in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module in _imports(path, _package_of(path, folder, import_name)):
                if module == "pairbench.cli" or module.startswith("pairbench.cli."):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert bad == []


def test_nothing_below_imports_the_api() -> None:
    """Neither the layers below the API nor the core import it, by name or through the package."""
    sources = [
        (path, _package_of(path, folder, LAYERS[folder][0]))
        for folder in BELOW_THE_API
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]
    sources += [(ROOT / "pairbench" / f"{name.rsplit('.', 1)[1]}.py", "pairbench") for name in CORE]
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path, package in sources
        for line, module in _imports(path, package)
        if any(module == name or module.startswith(name + ".") for name in API_NAMES)
    ]
    assert bad == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The parser resolves relative imports: `from ..results import x` inside harness is caught."""
    module = tmp_path / "m.py"
    module.write_text(
        "from ..results import stats\nimport pairbench.targets.app\nfrom pairbench import load\n"
    )
    found = [m for _, m in _imports(module, "pairbench.harness")]
    assert "pairbench.results" in found
    assert "pairbench.targets.app" in found
    assert "pairbench.load" in found and "pairbench.load" in API_NAMES
