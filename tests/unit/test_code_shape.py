"""The shape the code keeps (issue 29): no module_utils file over 600 lines, no function in plugins/ over 80 lines.
ruff enforces branches and statements per function (ruff.toml, [lint.pylint])."""

from __future__ import annotations

import ast
import glob
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 80


def test_no_module_utils_file_over_600_lines():
    sizes = {}
    for path in glob.glob(os.path.join(ROOT, "plugins", "module_utils", "*.py")):
        with open(path, encoding="utf-8") as handle:
            sizes[os.path.relpath(path, ROOT)] = sum(1 for _line in handle)
    assert len(sizes) > 20
    assert {p: n for p, n in sizes.items() if n > MAX_FILE_LINES} == {}


def test_no_function_over_80_lines():
    long = {}
    for path in glob.glob(os.path.join(ROOT, "plugins", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name}"] = lines
    assert long == {}
