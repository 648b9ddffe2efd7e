"""The optional libraries the optimize commands need, checked before any work starts."""
from __future__ import annotations

import importlib.util
import sys

WHY = {"tinygrad": "quantization math and training (tinygrad needs Python 3.11 or later)",
       "pycocotools": "the agreement measure (COCO mAP)"}
EXIT_MISSING = 2


def missing_modules(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(command: str, *modules: str) -> None:
    """Exit with one clear line per missing library instead of a traceback later."""
    missing = missing_modules(*modules)
    for module in missing:
        print(f"{command}: needs the Python package {module} for {WHY.get(module, 'this')}: "
              "pip install -r requirements.txt (the standalone venv) or pip install "
              f"{module}", file=sys.stderr)
    if missing:
        raise SystemExit(EXIT_MISSING)
