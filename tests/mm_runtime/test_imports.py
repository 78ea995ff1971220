"""mm_runtime carries no training stack: checked in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

FORBIDDEN = ("pandas", "scipy", "pymc", "pytensor", "arviz", "prefect", "mlflow", "numpyro", "models", "flows",
             "matplotlib", "dask")
ALLOWED_THIRD_PARTY = {"jax", "numpy", "pydantic", "prometheus_client", "mm_runtime"}
LAZY_THIRD_PARTY = {"websockets"}  # imported inside mm_runtime.live.feeds.HyperliquidFeed only
PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "mm_runtime"


def test_import_pulls_in_no_training_stack():
    code = (
        "import sys, json, mm_runtime; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
    assert "jax" in loaded and "mm_runtime" in loaded


def test_the_live_module_is_light_too():
    code = (
        "import sys, json, mm_runtime.live; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & (set(FORBIDDEN) | LAZY_THIRD_PARTY), loaded & (set(FORBIDDEN) | LAZY_THIRD_PARTY)


def test_source_imports_only_the_allowed_packages():
    stdlib = set(sys.stdlib_module_names)
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                lazy = (top in LAZY_THIRD_PARTY and path.relative_to(PACKAGE).as_posix() == "live/feeds.py"
                        and node.col_offset > 0)
                assert top in stdlib or top in ALLOWED_THIRD_PARTY or lazy, f"{path.name} imports {name}"
