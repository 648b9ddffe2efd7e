"""Default class names for adapters that were given none."""
from __future__ import annotations

from typing import Sequence


def default_class_names(num_classes: int | None) -> list[str]:
    """COCO names for 80-class models, numbered labels ("0", "1", ...) otherwise."""
    if num_classes is None or num_classes == 80:
        try:
            from trt_infer_ros.models.coco import COCO_CLASSES
            if num_classes is None or len(COCO_CLASSES) == num_classes:
                return list(COCO_CLASSES)
        except ImportError:
            pass
    return [str(i) for i in range(num_classes if num_classes is not None else 80)]


def resolve_class_names(class_names: Sequence[str] | None, num_classes: int | None) -> list[str]:
    return list(class_names) if class_names is not None else default_class_names(num_classes)


class LabelsError(ValueError):
    """A labels file that cannot be used; the message names the file and the problem."""


def load_labels(path) -> list[str]:
    """Class names from a labels file, index i = class id i.

    Formats: plain text with one name a line (blank lines and `#` comments skipped), or YAML /
    JSON holding a list of names, a {id: name} map (ids 0..n-1, any order), or such a map or
    list under a `names` key (as in an Ultralytics dataset YAML).
    """
    from pathlib import Path

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelsError(f"labels file {p} does not exist: check the `labels` path") from None
    except IsADirectoryError:
        raise LabelsError(f"labels path {p} is a directory: give a .txt, .yaml or .json file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"labels file {p} cannot be read as UTF-8 text ({exc})") from None
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        data = _parse_structured(p, text)
    else:
        data = [line.strip() for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    names = names_from(data, f"labels file {p}")
    if not names:
        raise LabelsError(f"labels file {p} holds no class names: write one name a line")
    return names


def _parse_structured(p, text: str):
    try:
        import yaml                       # YAML is a superset of JSON, so one parser serves both
        data = yaml.safe_load(text)
    except Exception as exc:
        raise LabelsError(f"labels file {p} is not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and "names" in data:
        data = data["names"]
    return data


def names_from(data, where: str) -> list[str]:
    """A names list from a list or an {id: name} map whose ids are 0..n-1."""
    if isinstance(data, (list, tuple)):
        return [str(n).strip() for n in data]
    if isinstance(data, dict):
        try:
            by_id = {int(k): str(v).strip() for k, v in data.items()}
        except (TypeError, ValueError):
            raise LabelsError(f"{where}: map keys must be class ids (0, 1, ...), got "
                              f"{list(data)[:3]}") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise LabelsError(f"{where}: class ids must run 0..{len(by_id) - 1} without gaps, got "
                              f"{sorted(by_id)[:10]}")
        return [by_id[i] for i in range(len(by_id))]
    raise LabelsError(f"{where}: expected a list of names or an {{id: name}} map, got "
                      f"{type(data).__name__}")
