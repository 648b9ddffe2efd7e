"""Results as strict JSON (NaN written as null) and as short Markdown tables."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):   # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n")
    return path


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


def fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, str):
        return value
    return format(value, spec)


def table(rows: Sequence[dict], columns: Sequence[tuple]) -> str:
    """Markdown table; `columns` holds (header, key or callable(row), format spec)."""
    head = "| " + " | ".join(h for h, _, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, rule]
    for row in rows:
        cells = []
        for _, key, spec in columns:
            value = key(row) if callable(key) else row.get(key)
            cells.append(fmt(value, spec))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
