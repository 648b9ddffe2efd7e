"""The class_filter parameter: a comma-separated list of class names or ids ('' keeps all)."""
from __future__ import annotations

from typing import Optional, Sequence


class ClassFilterError(ValueError):
    pass


def parse_class_filter(text: str, class_names: Sequence[str]) -> Optional[frozenset[int]]:
    """Class ids named by `text`, e.g. 'person, car' or '0,2'; None when `text` is empty."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    ids = set()
    for item in items:
        if item in index:
            ids.add(index[item])
        elif item.isdigit() and int(item) < len(class_names):
            ids.add(int(item))
        else:
            shown = ", ".join(class_names[:8]) + (", ..." if len(class_names) > 8 else "")
            raise ClassFilterError(
                f"class_filter: {item!r} is neither a class name of this model ({shown}) "
                f"nor a class id in 0..{len(class_names) - 1}")
    return frozenset(ids)
