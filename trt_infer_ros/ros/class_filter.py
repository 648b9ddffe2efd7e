"""The class_filter parameter: a comma-separated list of class names or ids ('' keeps all)."""
from __future__ import annotations

import re
from typing import Optional, Sequence


class ClassFilterError(ValueError):
    pass


# ASCII digits only: str.isdigit() and int() also take '²', '٣' or '𝟑', which nobody means as ids.
CLASS_ID = re.compile(r"[0-9]{1,6}")


def parse_class_filter(text: str, class_names: Sequence[str]) -> Optional[frozenset[int]]:
    """Class ids named by `text`, e.g. 'person, car' or '0,2'; None when `text` is empty.

    Every item must be a class name of the model or an ASCII class id; an empty item (',,',
    a trailing comma, only spaces) is refused rather than read as "all classes".
    """
    if text == "":
        return None
    index = {name: i for i, name in enumerate(class_names)}
    ids = set()
    for position, raw in enumerate(text.split(",")):
        item = raw.strip()
        if not item:
            raise ClassFilterError(
                f"class_filter: item {position + 1} of {text[:40]!r} is empty; list class "
                "names or ids separated by commas, or set '' to keep all classes")
        if item in index:
            ids.add(index[item])
        elif CLASS_ID.fullmatch(item) and int(item) < len(class_names):
            ids.add(int(item))
        else:
            shown = ", ".join(class_names[:8]) + (", ..." if len(class_names) > 8 else "")
            raise ClassFilterError(
                f"class_filter: {item[:40]!r} is neither a class name of this model ({shown}) "
                f"nor a class id in 0..{len(class_names) - 1}")
    return frozenset(ids)
