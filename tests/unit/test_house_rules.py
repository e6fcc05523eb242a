"""The layering of DESIGN.md and the style checks, enforced by the suite rather than by memory."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "firmware" / "deskphone"

# Third-party libraries and the only sub-package allowed to import each.
CONFINED = {
    "pjsua2": "sip",
    "pyaudio": "audio",
    "gpiozero": "hw",
    "luma": "hw",
    "smbus2": "hw",
}
ADAPTERS = ("sip", "audio", "hw", "service")


def imports(path: Path) -> set[str]:
    """Top-level names of every module a file imports, resolving relative imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                found.add(node.module)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_libraries_stay_in_their_layer(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    for name in imports(path):
        allowed = CONFINED.get(name.split(".")[0])
        assert allowed is None or layer == allowed, f"{name} imported outside {allowed}/"


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_adapter(path: Path) -> None:
    for name in imports(path):
        parts = name.split(".")
        assert not (parts[0] == "deskphone" and len(parts) > 1 and parts[1] in ADAPTERS), name


def run_tool(*command: str) -> None:
    if shutil.which(command[0], path=str(Path(sys.executable).parent)) is None:
        pytest.fail(f"{command[0]} is not installed in the test environment")
    tool = str(Path(sys.executable).parent / command[0])
    result = subprocess.run(
        [tool, *command[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    run_tool("ruff", "check", "firmware", "tests", "bench", "image")


def test_ruff_format_is_kept() -> None:
    run_tool("ruff", "format", "--check", "firmware", "tests", "bench", "image")


def test_mypy_is_clean() -> None:
    run_tool("mypy", "firmware")
