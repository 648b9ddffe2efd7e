"""What runs on the DLA: before the build (the config's can-run-on-DLA query, layer by layer)
and after it (TensorRT's 'Layers running on DLA/GPU' log sections, or the engine inspector).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional


@dataclass
class DlaPlan:
    """Network layers the DLA cannot take, found before building."""

    total_layers: int
    gpu_only: list = field(default_factory=list)     # [(layer name, layer type)]

    @property
    def gpu_fraction(self) -> float:
        return len(self.gpu_only) / self.total_layers if self.total_layers else 0.0

    def lines(self, limit: int = 30) -> list[str]:
        if not self.gpu_only:
            return [f"DLA can take all {self.total_layers} layers"]
        out = [f"DLA cannot take {len(self.gpu_only)} of {self.total_layers} layers "
               f"({100 * self.gpu_fraction:.0f}%); they run on the GPU:"]
        out += [f"  {name} ({ltype})" for name, ltype in self.gpu_only[:limit]]
        if len(self.gpu_only) > limit:
            out.append(f"  ... and {len(self.gpu_only) - limit} more")
        return out


def plan_dla(network, config) -> DlaPlan:
    """Ask the builder config, layer by layer, whether the DLA can run it (config must already
    have default_device_type DLA and its DLA core set)."""
    plan = DlaPlan(total_layers=int(network.num_layers))
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not config.can_run_on_DLA(layer):
            plan.gpu_only.append((layer.name, str(getattr(layer, "type", "")).split(".")[-1]))
    return plan


@dataclass
class DlaPlacement:
    """Where the built engine's layers ended up."""

    dla_layers: int
    gpu_layers: int
    source: str                      # "log" or "inspector"
    dla_subgraphs: int = 0
    # DLA subgraphs are logged as one fused `ForeignNode` each; when the network layers they
    # hold are known (the pre-build plan), the fraction counts those instead.
    dla_network_layers: Optional[int] = None

    @property
    def gpu_fraction(self) -> float:
        dla = self.dla_layers if self.dla_network_layers is None else self.dla_network_layers
        total = dla + self.gpu_layers
        return self.gpu_layers / total if total else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["gpu_fraction"] = round(self.gpu_fraction, 4)
        return d


_DLA_HEADER = re.compile(r"Layers running on DLA", re.IGNORECASE)
_GPU_HEADER = re.compile(r"Layers running on GPU", re.IGNORECASE)


def _split_layer_list(text: str) -> list[str]:
    """'{a,b}, {c}, d' -> [['a','b'], ['c'], ['d']] flattened per group name."""
    groups, depth, current = [], 0, ""
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            if current.strip():
                groups.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        groups.append(current.strip())
    return groups


def _count_members(group: str) -> int:
    inner = group.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
        return len([x for x in _split_layer_list(inner) if x])
    return 1


def placement_from_log(lines: Iterable[str]) -> Optional[DlaPlacement]:
    """Parse TensorRT's build-log sections on layer placement.

    TensorRT 8.x/10 log `---------- Layers Running on DLA ----------` followed by one
    `[DlaLayer] {ForeignNode[first...last]}` line per DLA subgraph, then the GPU header and one
    `[GpuLayer] TYPE: name` line per GPU layer. Older releases log `Layers running on DLA:`
    followed by a single line of `{a,b,c}, {d}` groups. Returns None when the log has neither."""
    section = None
    tagged = False
    dla_groups: list[str] = []
    gpu_groups: list[str] = []
    seen = False
    for raw in lines:
        line = raw.strip()
        header = _DLA_HEADER.search(line) or _GPU_HEADER.search(line)
        if header:
            section = "dla" if _DLA_HEADER.search(line) else "gpu"
            seen, tagged = True, False
            rest = line[header.end():].strip(":- ")
            if rest:
                (dla_groups if section == "dla" else gpu_groups).extend(_split_layer_list(rest))
                section = None
            continue
        if section is None:
            continue
        tag = "[DlaLayer]" if section == "dla" else "[GpuLayer]"
        if tag in line:
            tagged = True
            item = line.split(tag, 1)[1].strip()
            (dla_groups if section == "dla" else gpu_groups).append(item)
            continue
        if tagged or not line:
            section = None if tagged or line else section
            continue
        # untagged (older) format: the one line after the header lists every group
        (dla_groups if section == "dla" else gpu_groups).extend(_split_layer_list(line))
        section = None
    if not seen:
        return None
    return DlaPlacement(dla_layers=sum(_count_members(g) for g in dla_groups),
                        gpu_layers=len(gpu_groups), source="log", dla_subgraphs=len(dla_groups))


_DLA_IO = re.compile(r"( to nvm| from nvm| copy finish)$")


def placement_from_inspector(engine_info_json: str) -> DlaPlacement:
    """Count engine layers from `EngineInspector.get_engine_information(JSON)`: DLA subgraphs
    show up as `{ForeignNode[first...last]}` layers; the nvm copies around them are DLA I/O."""
    info = json.loads(engine_info_json)
    dla = gpu = 0
    for layer in info.get("Layers", []):
        name = layer if isinstance(layer, str) else layer.get("Name", "")
        ltype = "" if isinstance(layer, str) else str(layer.get("LayerType", ""))
        if "ForeignNode" in name or ltype.upper() in ("DLA", "FOREIGNNODE"):
            dla += 1
        elif _DLA_IO.search(name):
            continue
        else:
            gpu += 1
    return DlaPlacement(dla_layers=dla, gpu_layers=gpu, source="inspector", dla_subgraphs=dla)


def fallback_warning(fraction: float, threshold: float, where: str) -> Optional[str]:
    if fraction > threshold:
        return (f"{where}: {100 * fraction:.0f}% of the layers run on the GPU, more than the "
                f"dla_fallback_warn threshold of {100 * threshold:.0f}%; each DLA<->GPU switch "
                "costs a copy -- consider splitting the model (onnx_split) so the DLA runs a clean "
                "backbone")
    return None
