"""DESIGN.md section 1: the live side carries no training stack.

Checked two ways: statically (no import statement in mm_runtime names a forbidden
package) and dynamically (a fresh `import mm_runtime` leaves them out of sys.modules).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pymc", "pytensor", "arviz", "prefect", "mlflow", "pandas", "models", "flows",
             "scipy", "numpyro", "dask", "distributed", "matplotlib"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_mm_runtime_sources_import_no_training_stack():
    files = sorted((REPO / "mm_runtime").rglob("*.py"))
    assert files, "mm_runtime has no sources"
    bad = {str(f.relative_to(REPO)): sorted(_imported_roots(f) & FORBIDDEN) for f in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"mm_runtime imports forbidden packages: {bad}"


def test_import_mm_runtime_loads_no_offline_stack():
    code = ("import sys, json, mm_runtime; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    loaded = set(json.loads(res.stdout.strip().splitlines()[-1]))
    assert not (loaded & FORBIDDEN), f"import mm_runtime loaded {sorted(loaded & FORBIDDEN)}"


def test_the_static_check_catches_a_forbidden_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import numpy as np\nfrom pandas import DataFrame\nimport pymc.math\n")
    assert _imported_roots(f) & FORBIDDEN == {"pandas", "pymc"}
