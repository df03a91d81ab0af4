"""The contract imports only the standard library and pydantic (import-linter checks the
Guanjia packages; this checks the allow-list exactly)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CONTRACT = Path(__file__).resolve().parents[2] / "contract"
ALLOWED = set(sys.stdlib_module_names) | {"pydantic", "contract"}


def test_contract_imports_only_stdlib_and_pydantic() -> None:
    offenders = []
    for path in CONTRACT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] not in ALLOWED]
    assert offenders == []
