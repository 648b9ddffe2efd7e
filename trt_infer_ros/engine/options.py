"""Validated engine-build options: one table of parameters shared by the ROS node and the CLI.

Every option is described once in `PARAMETERS` (name, type, default, range or choices, help);
the node declares its ROS parameters from it and the CLI builds its argparse options from it.
`BuildOptions.validate()` checks everything that can be checked without TensorRT and raises
`BuildConfigError` listing every problem, each naming the parameter and what to do about it.
Checks that need TensorRT (DLA cores present, version-dependent features) live in builder.py
and run before any build.
"""
from __future__ import annotations

import importlib.util

import difflib
import fnmatch
import os
import re
import stat
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Sequence

from trt_infer_ros.file_io import same_file

PRECISIONS = ("fp32", "fp16", "int8", "best")
CALIBRATION_ALGORITHMS = ("entropy2", "minmax", "percentile", "legacy")
LAYER_PRECISIONS = ("fp32", "fp16", "int8")
ON_MISMATCH = ("error", "rebuild")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# TensorRT dimensions are int32 before 10, and an input tensor must hold fewer than 2^31 elements
MAX_DIMENSION = MAX_ELEMENTS = 2**31 - 1


@dataclass(frozen=True)
class ParamDef:
    """One build option, as the node declares it and the CLI parses it."""

    name: str
    type: type                      # str, int, float, bool or list (a list of strings)
    default: Any
    description: str
    choices: Optional[tuple[str, ...]] = None
    int_range: Optional[tuple[int, int]] = None
    float_range: Optional[tuple[float, float]] = None


PARAMETERS: tuple[ParamDef, ...] = (
    ParamDef("onnx", str, "", "ONNX model to build (required)."),
    ParamDef("engine", str, "", "Engine output path. Empty: <cache_dir>/<model>.<precision>.<device>"
             ".<key>.engine, so a changed setting never reuses a stale engine."),
    ParamDef("cache_dir", str, "", "Directory for engines when `engine` is empty "
             "(default: next to the ONNX file)."),
    ParamDef("precision", str, "fp16", "fp32, fp16, int8 or best (fp16+int8). On TensorRT 11 and "
             "with strongly_typed the types come from the ONNX and this is checked against it.",
             choices=PRECISIONS),
    ParamDef("strongly_typed", bool, False, "Build a strongly typed network (Q/DQ or fp16 ONNX; "
             "TensorRT >= 10, always on in 11)."),
    ParamDef("workspace_mib", int, 1024, "Builder workspace limit in MiB (0: TensorRT default).",
             int_range=(0, 1 << 20)),
    ParamDef("input_name", str, "", "Input the shape profile applies to (empty: the first input)."),
    ParamDef("input_shape", str, "", "Static input shape, e.g. 1x3x640x640 (for dynamic ONNX "
             "inputs); same as min=opt=max."),
    ParamDef("min_shape", str, "", "Smallest input shape of the profile, e.g. 1x3x320x320."),
    ParamDef("opt_shape", str, "", "Input shape TensorRT optimizes for."),
    ParamDef("max_shape", str, "", "Largest input shape of the profile."),
    ParamDef("dla_core", int, -1, "DLA core to build for (-1: GPU). Jetson AGX/NX Orin have 2.",
             int_range=(-1, 15)),
    ParamDef("gpu_fallback", bool, True, "Let layers DLA cannot run fall back to the GPU "
             "(off: the build fails if any layer cannot run on DLA)."),
    ParamDef("dla_fallback_warn", float, 0.25, "Warn when more than this fraction of the layers "
             "runs on the GPU in a DLA build.", float_range=(0.0, 1.0)),
    ParamDef("timing_cache", str, "", "Timing cache file: read before the build (if present), "
             "written back after it."),
    ParamDef("calibration_algorithm", str, "entropy2", "INT8 calibration: entropy2, minmax, "
             "percentile (our per-tensor activation percentile, computed with onnxruntime) "
             "or legacy.", choices=CALIBRATION_ALGORITHMS),
    ParamDef("calibration_percentile", float, 99.99, "Percentile of |activation| used by the "
             "percentile algorithm (and the legacy calibrator's quantile).",
             float_range=(50.0, 100.0)),
    ParamDef("calibration_images", str, "", "Directory of calibration images (jpg/png/bmp)."),
    ParamDef("calibration_bag", str, "", "ROS 2 bag (directory, .db3 or .mcap) with "
             "sensor_msgs/Image or CompressedImage messages for calibration."),
    ParamDef("calibration_topic", str, "", "Image topic in calibration_bag (empty: the only "
             "image topic)."),
    ParamDef("calibration_count", int, 300, "How many images to calibrate on.",
             int_range=(1, 100000)),
    ParamDef("calibration_batch", int, 1, "Calibration batch size; must equal the input's batch "
             "size (static ONNX batch or opt_shape's).", int_range=(1, 256)),
    ParamDef("calibration_cache", str, "", "Calibration cache file: reused when it matches "
             "(same ONNX, algorithm, preprocessing), else rewritten."),
    ParamDef("model_type", str, "", "Model adapter whose preprocessing feeds calibration "
             "(yolov8, yolov5, yolox, centernet, end2end; empty: detected from the ONNX)."),
    ParamDef("layer_precisions", list, [], "Per-layer precision overrides 'pattern=precision' "
             "(fnmatch on layer names, precision fp32/fp16/int8); sets the precision-constraint "
             "flag."),
    ParamDef("plugins", list, [], "Plugin libraries (.so) to load; nothing else loads code."),
    ParamDef("optimization_level", int, -1, "Builder optimization level 0-5 (TensorRT >= 8.6; "
             "-1: TensorRT default 3).", int_range=(-1, 5)),
    ParamDef("sparse_weights", bool, False, "Let TensorRT use sparse tensor cores (Ampere and "
             "later, Orin) for layers whose weights hold the 2:4 pattern "
             "(trt_infer_ros_compress sparsify --pattern 2:4)."),
    ParamDef("on_mismatch", str, "rebuild", "What to do when an existing engine's sidecar does not "
             "match: rebuild it, or error.", choices=ON_MISMATCH),
    ParamDef("force", bool, False, "Rebuild even when a matching engine exists."),
    ParamDef("verbose", bool, False, "Forward TensorRT's verbose log."),
    ParamDef("split", bool, False, "Build two engines from the ONNX for backbone_node and "
             "head_node: the backbone (DLA core, GPU fallback, this precision) and the head "
             "(GPU; fp16 where the backbone is int8). `engine` then names the backbone; the "
             "head goes beside it."),
    ParamDef("cut_tensors", list, [], "Tensors to cut at with split (empty: the suggested cut; "
             "python -m trt_infer_ros.engine.onnx_split --suggest-only shows it)."),
    ParamDef("accuracy_target", float, 0.0, "INT8/best builds: the least agreement with the FP32 "
             "model (mAP@0.5:0.95 with the FP32 detections as ground truth) on validation_images "
             "or validation_bag; an engine that misses it is not written (0: no gate).",
             float_range=(0.0, 1.0)),
    ParamDef("validation_images", str, "", "Directory of held-out images for accuracy_target "
             "(not the calibration images)."),
    ParamDef("validation_bag", str, "", "ROS 2 bag with held-out images for accuracy_target."),
    ParamDef("validation_topic", str, "", "Image topic in validation_bag (empty: the only one)."),
)

PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)


class BuildConfigError(ValueError):
    """Bad build parameters. `problems` is a list of (parameter, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        lines = [f"  - {name}: {message}" for name, message in self.problems]
        super().__init__("engine build parameters are not usable:\n" + "\n".join(lines))

    @property
    def parameters(self) -> list[str]:
        return [name for name, _ in self.problems]


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x640x640' (also ',' or ' ' separated, or [1,3,640,640]) -> (1, 3, 640, 640)."""
    cleaned = text.strip().strip("[]()")
    parts = [p for p in re.split(r"[x,\s]+", cleaned) if p]
    if not parts:
        raise ValueError("empty shape")
    dims = tuple(int(p) for p in parts)
    if any(d <= 0 for d in dims):
        raise ValueError(f"dimensions must be positive, got {text!r}")
    if any(d > MAX_DIMENSION for d in dims):
        raise ValueError(f"a dimension of {text!r} is larger than TensorRT's limit "
                         f"{MAX_DIMENSION}")
    elements = 1
    for d in dims:
        elements *= d
    if elements > MAX_ELEMENTS:
        raise ValueError(f"{text!r} has {elements} elements; a TensorRT input holds at most "
                         f"{MAX_ELEMENTS}")
    return dims


def format_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def parse_layer_precisions(items: Sequence[str]) -> list[tuple[str, str]]:
    """['backbone.*=fp16', 'head/conv*=fp32'] -> [(pattern, precision), ...] (order kept)."""
    out = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"{item!r} is not 'pattern=precision'")
        pattern, precision = item.rsplit("=", 1)
        pattern, precision = pattern.strip(), precision.strip().lower()
        if not pattern:
            raise ValueError(f"{item!r} has an empty layer-name pattern")
        if precision not in LAYER_PRECISIONS:
            raise ValueError(f"{item!r}: precision must be one of {', '.join(LAYER_PRECISIONS)}")
        out.append((pattern, precision))
    return out


def match_layer_precision(layer_name: str, overrides: Sequence[tuple[str, str]]) -> Optional[str]:
    """The precision of the last override whose pattern matches `layer_name`, else None."""
    found = None
    for pattern, precision in overrides:
        if fnmatch.fnmatchcase(layer_name, pattern):
            found = precision
    return found


# --- what is wrong with a path (each message says what the path actually is) -----------------

def path_problem(path: str) -> Optional[str]:
    """Why `path` cannot be used at all, or None when it exists and can be read."""
    if not os.path.lexists(path):
        return (f"not found: {path!r}; check the path (relative paths are taken from the "
                "current directory)")
    if not os.path.exists(path):
        return f"{path!r} is a broken symbolic link (it points to {os.readlink(path)!r})"
    if not os.access(path, os.R_OK):
        return f"{path!r} cannot be read (permission denied for this user)"
    return None


def file_problem(path: str, expected: str = "a file") -> Optional[str]:
    """Why `path` is not a readable, non-empty regular file, or None."""
    problem = path_problem(path)
    if problem:
        return problem
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return f"{path!r} is a directory, not {expected}"
    if not stat.S_ISREG(mode):
        return f"{path!r} is not a regular file (a device, pipe or socket), not {expected}"
    if os.path.getsize(path) == 0:
        return f"{path!r} is empty (0 bytes), not {expected}"
    return None


def directory_problem(path: str, expected: str = "a directory") -> Optional[str]:
    """Why `path` is not a readable directory, or None."""
    problem = path_problem(path)
    if problem:
        return problem
    if not os.path.isdir(path):
        return f"{path!r} is a file, not {expected}"
    if not os.access(path, os.X_OK):
        return f"{path!r} cannot be listed (permission denied for this user)"
    return None


# e_machine of the host, for an early "built for another CPU" message
_HOST_ELF_MACHINE = {"x86_64": 62, "aarch64": 183, "arm64": 183}.get(os.uname().machine)
_ELF_MACHINES = {3: "x86", 40: "32-bit ARM", 62: "x86_64", 183: "aarch64"}


def image_directory_problem(path: str) -> Optional[str]:
    """Why `path` is not a readable directory with at least one image, or None."""
    problem = directory_problem(path, "a directory of images")
    if problem:
        return problem
    if not any(f.lower().endswith(IMAGE_SUFFIXES) for f in os.listdir(path)):
        return f"no .jpg/.png/.bmp images in {path!r}"
    return None


def plugin_problem(path: str) -> Optional[str]:
    """Why `path` is not a shared library this machine can load, or None (ELF header only)."""
    problem = file_problem(path, "a plugin library (.so)")
    if problem:
        return problem
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return (f"{path!r} is not a shared library (no ELF header); a plugin must be a "
                "compiled .so built against your TensorRT")
    order = "little" if header[5] == 1 else "big"
    if int.from_bytes(header[16:18], order) != 3:          # ET_DYN: shared object
        return f"{path!r} is an ELF file but not a shared library (an executable or object file)"
    machine = int.from_bytes(header[18:20], order)
    if _HOST_ELF_MACHINE is not None and machine != _HOST_ELF_MACHINE:
        built_for = _ELF_MACHINES.get(machine, f"ELF machine {machine}")
        return (f"{path!r} is a shared library for {built_for}, not for this machine "
                f"({os.uname().machine}); build the plugin here")
    return None


def closest_parameter(name: str) -> Optional[str]:
    found = difflib.get_close_matches(name, PARAMETER_NAMES, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_parameter_problems(names) -> list[tuple[str, str]]:
    """One problem per unknown parameter name, with the closest real name when there is one."""
    problems = []
    for name in names:
        close = closest_parameter(name)
        hint = (f"did you mean {close!r}?" if close else
                f"known parameters: {', '.join(PARAMETER_NAMES)}")
        problems.append((name, f"unknown parameter; {hint}"))
    return problems


def _has_type(value, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value)
    return isinstance(value, kind)


def type_problems(values: dict) -> list[tuple[str, str]]:
    """Values of the wrong type (parameter files reach here without the ROS descriptors)."""
    problems = []
    for p in PARAMETERS:
        if not _has_type(values[p.name], p.type):
            kind = "list of strings" if p.type is list else p.type.__name__
            problems.append((p.name, f"{values[p.name]!r} is not a {kind}"))
    return problems


def range_problems(values: dict) -> list[tuple[str, str]]:
    """Values outside the table's ranges or choices (the CLI has no descriptors to check them)."""
    problems = []
    for p in PARAMETERS:
        value = values[p.name]
        bounds = p.int_range or p.float_range
        if bounds and not bounds[0] <= value <= bounds[1]:
            problems.append((p.name, f"{value} is outside the allowed range "
                                     f"{bounds[0]}..{bounds[1]} ({p.description})"))
        if p.choices and value not in p.choices:
            problems.append((p.name, f"{value!r} is not one of {', '.join(p.choices)}"))
    return problems


@dataclass
class ShapeProfile:
    """min/opt/max shapes of one input."""

    input_name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass
class BuildOptions:
    """Everything one engine build needs; field names are the parameter names."""

    onnx: str = ""
    engine: str = ""
    cache_dir: str = ""
    precision: str = "fp16"
    strongly_typed: bool = False
    workspace_mib: int = 1024
    input_name: str = ""
    input_shape: str = ""
    min_shape: str = ""
    opt_shape: str = ""
    max_shape: str = ""
    dla_core: int = -1
    gpu_fallback: bool = True
    dla_fallback_warn: float = 0.25
    timing_cache: str = ""
    calibration_algorithm: str = "entropy2"
    calibration_percentile: float = 99.99
    calibration_images: str = ""
    calibration_bag: str = ""
    calibration_topic: str = ""
    calibration_count: int = 300
    calibration_batch: int = 1
    calibration_cache: str = ""
    model_type: str = ""
    layer_precisions: list = field(default_factory=list)
    plugins: list = field(default_factory=list)
    optimization_level: int = -1
    sparse_weights: bool = False
    on_mismatch: str = "rebuild"
    force: bool = False
    verbose: bool = False
    split: bool = False
    cut_tensors: list = field(default_factory=list)
    accuracy_target: float = 0.0
    validation_images: str = ""
    validation_bag: str = ""
    validation_topic: str = ""

    @classmethod
    def from_mapping(cls, values: dict) -> "BuildOptions":
        """Options from a {name: value} mapping (unknown names are an error)."""
        unknown = sorted(set(values) - set(PARAMETER_NAMES))
        if unknown:
            raise BuildConfigError(unknown_parameter_problems(unknown))
        # lists drop empty strings: ROS parameter files write "none" as [""] (an empty YAML
        # list has no type)
        return cls(**{k: ([x for x in v if x != ""] if isinstance(v, (list, tuple)) else v)
                      for k, v in values.items()})

    def as_dict(self) -> dict:
        return asdict(self)

    # --- derived values -------------------------------------------------------------------

    @property
    def uses_dla(self) -> bool:
        return self.dla_core >= 0

    @property
    def wants_int8(self) -> bool:
        return self.precision in ("int8", "best")

    @property
    def has_calibration_data(self) -> bool:
        return bool(self.calibration_images or self.calibration_bag)

    def layer_overrides(self) -> list[tuple[str, str]]:
        return parse_layer_precisions(self.layer_precisions)

    def shape_profile(self) -> Optional[ShapeProfile]:
        """The min/opt/max profile the options ask for, or None when they give no shape."""
        if self.input_shape:
            shape = parse_shape(self.input_shape)
            return ShapeProfile(self.input_name, shape, shape, shape)
        if self.min_shape or self.opt_shape or self.max_shape:
            return ShapeProfile(self.input_name, parse_shape(self.min_shape),
                                parse_shape(self.opt_shape), parse_shape(self.max_shape))
        return None

    # --- validation -----------------------------------------------------------------------

    def problems(self, model_has_qdq: bool = False) -> list[tuple[str, str]]:
        """Every problem found without TensorRT, as (parameter, message-with-remedy) pairs.

        `model_has_qdq`: the ONNX carries Q/DQ nodes (explicit quantization needs no calibration).
        """
        p = type_problems(self.as_dict())
        if p:
            return p        # the checks below assume the types are right
        p = range_problems(self.as_dict())
        if not self.onnx:
            p.append(("onnx", "no ONNX model given; set onnx:=/path/to/model.onnx "
                              "(e.g. models/centernet_mobilenetv3_coco.onnx)"))
        else:
            problem = file_problem(self.onnx, "an ONNX model file")
            if problem:
                p.append(("onnx", problem))
        if self.uses_dla and self.precision == "fp32" and not self.strongly_typed:
            p.append(("precision", "DLA runs only fp16 or int8; use precision fp16, int8 or best "
                                   "with dla_core, or dla_core -1 for an fp32 GPU engine"))
        if self.cut_tensors and not self.split:
            p.append(("cut_tensors", "cut_tensors applies to split builds only; set split:=true "
                                     "for backbone and head engines, or leave cut_tensors empty "
                                     "for one whole-model engine"))
        p.extend(self._shape_problems())
        p.extend(self._calibration_problems())
        p.extend(self._accuracy_gate_problems())
        if self.wants_int8 and not model_has_qdq and not self.strongly_typed \
                and not self.has_calibration_data \
                and not (self.calibration_cache and os.path.isfile(self.calibration_cache)):
            cache_note = (f" (calibration_cache {self.calibration_cache!r} does not exist yet)"
                          if self.calibration_cache and not os.path.exists(self.calibration_cache)
                          else "")
            p.append(("calibration_images", f"precision {self.precision} needs INT8 calibration data "
                      f"and none was given{cache_note}: set calibration_images:=<dir of images> "
                      "or calibration_bag:=<rosbag2>, or an existing calibration_cache, or use a "
                      "Q/DQ-quantized ONNX, or precision fp16"))
        try:
            self.layer_overrides()
        except ValueError as exc:
            p.append(("layer_precisions", f"{exc}; write entries as 'pattern=fp32|fp16|int8'"))
        else:
            if any(prec == "int8" for _, prec in self.layer_overrides()) and not self.wants_int8 \
                    and not self.strongly_typed:
                p.append(("layer_precisions", "an int8 layer override needs precision int8 or best "
                                              "(INT8 must be enabled for the layer to use it)"))
        p.extend(("plugins", problem) for problem in map(plugin_problem, self.plugins) if problem)
        p.extend(self._output_path_problems())
        return p

    def _output_path_problems(self) -> list[tuple[str, str]]:
        """Files the build reads if present and writes: they must not be directories."""
        p: list[tuple[str, str]] = []
        if self.cache_dir and os.path.exists(self.cache_dir) and not os.path.isdir(self.cache_dir):
            p.append(("cache_dir", f"{self.cache_dir!r} is a file, not a directory"))
        p.extend(self._clobber_problems())
        for name in ("engine", "timing_cache", "calibration_cache"):
            path = getattr(self, name)
            if path and os.path.isdir(path):
                p.append((name, f"{path!r} is a directory; give a file path"))
            elif path and os.path.exists(path):
                problem = file_problem(path)
                if problem and "is empty" not in problem:      # an empty cache is rewritten
                    p.append((name, problem))
        return p

    def _clobber_problems(self) -> list[tuple[str, str]]:
        """Outputs that are the ONNX model or one another: one write would destroy the other."""
        p: list[tuple[str, str]] = []
        earlier = [("onnx", self.onnx)] if self.onnx else []
        for name in ("engine", "timing_cache", "calibration_cache"):
            path = getattr(self, name)
            if not path:
                continue
            other = next((n for n, q in earlier if same_file(path, q)), None)
            if other is not None:
                what = "the ONNX model" if other == "onnx" else f"the {other} file"
                p.append((name, f"{path!r} is {what}; the build would overwrite it: give "
                                "another path"))
            else:
                earlier.append((name, path))
        return p

    def _shape_problems(self) -> list[tuple[str, str]]:
        p: list[tuple[str, str]] = []
        if self.input_shape and (self.min_shape or self.opt_shape or self.max_shape):
            p.append(("input_shape", "give either input_shape (static) or min_shape/opt_shape/"
                                     "max_shape (dynamic), not both"))
            return p
        if self.input_shape:
            try:
                parse_shape(self.input_shape)
            except ValueError as exc:
                p.append(("input_shape", f"{exc}; write it like 1x3x640x640"))
            return p
        given = {n: getattr(self, n) for n in ("min_shape", "opt_shape", "max_shape")}
        if not any(given.values()):
            return p
        missing = [n for n, v in given.items() if not v]
        if missing:
            p.append((missing[0], "a dynamic profile needs all of min_shape, opt_shape and "
                                  f"max_shape; missing: {', '.join(missing)}"))
            return p
        shapes = {}
        for name, text in given.items():
            try:
                shapes[name] = parse_shape(text)
            except ValueError as exc:
                p.append((name, f"{exc}; write it like 1x3x640x640"))
        if len(shapes) < 3:
            return p
        mn, op, mx = shapes["min_shape"], shapes["opt_shape"], shapes["max_shape"]
        if not len(mn) == len(op) == len(mx):
            p.append(("min_shape", f"min/opt/max have different ranks: {self.min_shape}, "
                                   f"{self.opt_shape}, {self.max_shape}"))
            return p
        if any(a > b for a, b in zip(mn, op)):
            p.append(("min_shape", f"min_shape {self.min_shape} is larger than opt_shape "
                                   f"{self.opt_shape} in some dimension; need min <= opt <= max"))
        if any(a > b for a, b in zip(op, mx)):
            p.append(("opt_shape", f"opt_shape {self.opt_shape} is larger than max_shape "
                                   f"{self.max_shape} in some dimension; need min <= opt <= max"))
        return p

    def _calibration_problems(self) -> list[tuple[str, str]]:
        p: list[tuple[str, str]] = []
        images_problem = self.calibration_images and image_directory_problem(
            self.calibration_images)
        if images_problem:
            p.append(("calibration_images", images_problem))
        bag_problem = self.calibration_bag and (
            path_problem(self.calibration_bag) if os.path.isdir(self.calibration_bag)
            else file_problem(self.calibration_bag, "a rosbag2 directory, .db3 or .mcap file"))
        if bag_problem:         # its contents are checked by the builder's preflight
            p.append(("calibration_bag", bag_problem))
        if self.calibration_images and self.calibration_bag:
            p.append(("calibration_images", "give calibration_images or calibration_bag, not both"))
        # int8 needs data or a cache -- unless the ONNX carries its own Q/DQ scales, which the
        # builder checks once it has read the model (strongly typed builds never calibrate).
        return p

    def _accuracy_gate_problems(self) -> list[tuple[str, str]]:
        if self.accuracy_target <= 0:
            return []
        if not self.wants_int8:
            return [("accuracy_target", f"the accuracy gate measures INT8 against FP32; precision "
                                        f"{self.precision} has no INT8: set precision int8 or "
                                        "best, or accuracy_target 0")]
        missing = [m for m in ("tinygrad", "pycocotools") if importlib.util.find_spec(m) is None]
        if missing:
            return [("accuracy_target", f"the accuracy gate needs {' and '.join(missing)} "
                                        "(pip install -r requirements.txt; tinygrad needs Python "
                                        "3.11 or later), or accuracy_target 0")]
        if bool(self.validation_images) == bool(self.validation_bag):
            return [("validation_images", "accuracy_target needs held-out images: set "
                                          "validation_images:=<dir> or validation_bag:=<bag> "
                                          "(one of them)")]
        if self.validation_images:
            problem = image_directory_problem(self.validation_images)
            if problem:
                return [("validation_images", problem)]
        elif path_problem(self.validation_bag):
            return [("validation_bag", path_problem(self.validation_bag))]
        return []

    def validate(self, model_has_qdq: bool = False) -> "BuildOptions":
        problems = self.problems(model_has_qdq)
        if problems:
            raise BuildConfigError(problems)
        return self

    def settings_record(self) -> dict:
        """The settings that change what gets built (recorded in the sidecar, hashed into the
        default engine name). Paths of inputs are recorded by content hash elsewhere."""
        keep = ("precision", "strongly_typed", "workspace_mib", "input_name", "input_shape",
                "min_shape", "opt_shape", "max_shape", "dla_core", "gpu_fallback",
                "calibration_algorithm", "calibration_percentile", "calibration_count",
                "calibration_batch", "calibration_topic", "model_type", "layer_precisions",
                "optimization_level")
        record = {k: getattr(self, k) for k in keep}
        record["plugins"] = [os.path.basename(p) for p in self.plugins]
        record["calibration_source"] = ("images" if self.calibration_images else
                                        "bag" if self.calibration_bag else
                                        "cache" if self.calibration_cache else "")
        return record


def option_fields() -> list[str]:
    return [f.name for f in fields(BuildOptions)]
