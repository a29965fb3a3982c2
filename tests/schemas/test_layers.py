"""Layering of DESIGN.md: training reads only the shard format and schemas; curators never import training.

A rule both sides apply (tiling grid, text token counts) therefore lives in schemas/.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_packages(package: str) -> dict[str, set[str]]:
    """Module file -> the top-level packages it imports (at any depth of the file: lazy imports count)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tops = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = tops
    return out


@pytest.mark.parametrize("package,forbidden", [("training", {"curators", "pipelines", "flows"}),
                                               ("curators", {"training", "pipelines", "flows"}),
                                               ("schemas", {"training", "curators", "pipelines", "flows"})])
def test_layers_import_only_what_they_may(package, forbidden):
    offending = {module: sorted(tops & forbidden) for module, tops in imported_packages(package).items()
                 if tops & forbidden}
    assert offending == {}
