"""The architecture's import rule, checked: station -> scheduler -> devices -> devices.protocol;
the simulator imports only devices.protocol (it is a device: it talks over the wire)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("station", "scheduler", "devices", "simulator")

# package -> the project packages it may import (besides itself)
ALLOWED = {
    "devices/protocol": set(),
    "devices": {"devices.protocol"},
    "scheduler": {"devices", "devices.protocol"},
    "simulator": {"devices.protocol"},
    "station": {"scheduler", "devices", "devices.protocol", "simulator"},
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in OURS}


def _layer(name: str) -> str:
    return "devices.protocol" if name.startswith("devices.protocol") else name.split(".")[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    own = package.replace("/", ".")
    files = [
        f
        for f in (ROOT / package).rglob("*.py")
        if package != "devices" or "protocol" not in f.relative_to(ROOT / "devices").parts
    ]
    assert files
    wrong = {
        f"{f.relative_to(ROOT)} imports {name}"
        for f in files
        for name in _imports(f)
        if _layer(name) != own and _layer(name) not in ALLOWED[package]
    }
    assert not wrong, sorted(wrong)
