"""ONNX -> TensorRT engine, from validated BuildOptions, with a sidecar next to the engine.

`build_engine(options)` does, in order:
  1. preflight: every parameter problem (options.py), the ONNX and the calibration bag read,
     then every problem that needs TensorRT (DLA cores present, version features, dynamic
     inputs without a profile, int8 without calibration data), what calibration needs
     (cuda-python or onnxruntime) and the plugin libraries loaded -- before any build starts;
  2. reuse: an existing engine whose sidecar matches is reused (unless force); a mismatching one
     is rebuilt or reported, as on_mismatch says;
  3. network + config: plugins, parser, workspace, optimization level, precision flags (none on
     TensorRT 11 / strongly typed), profile, DLA (device type, core, GPU fallback, report),
     per-layer precisions with the constraint flag, calibrator, timing cache, progress;
  4. build, write the engine, the timing cache and the sidecar.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from trt_infer_ros.engine import calibration, calibration_cache, dla_report, trt_compat
from trt_infer_ros.engine import sidecar as sidecar_mod
from trt_infer_ros.engine.device_info import DeviceInfo, current_device
from trt_infer_ros.engine.engine_loader import EngineMismatchError, io_specs
from trt_infer_ros.engine.model_facts import ModelFacts, file_sha256, read_model_facts
from trt_infer_ros.engine.options import (BuildConfigError, BuildOptions, ShapeProfile,
                                         file_problem, format_shape, match_layer_precision,
                                         path_problem)
from trt_infer_ros.engine.progress import Heartbeat, make_progress_monitor
from trt_infer_ros.file_io import write_atomic

LOG = logging.getLogger("trt_infer_ros.engine.builder")
LogFn = Callable[[str], None]


class BuildError(RuntimeError):
    """TensorRT failed to build; the message carries TensorRT's errors."""


class AccuracyGateError(BuildError):
    """The INT8 engine misses accuracy_target; it was not written."""


@dataclass
class Preflight:
    options: BuildOptions
    facts: ModelFacts
    trt: object
    builder: object
    logger: object
    device: DeviceInfo
    warnings: list = field(default_factory=list)
    plugin_handles: list = field(default_factory=list)      # kept alive until the build ends

    @property
    def strongly_typed(self) -> bool:
        return self.options.strongly_typed or trt_compat.always_strongly_typed(self.trt)

    @property
    def calibrates(self) -> bool:
        return (self.options.wants_int8 and not self.strongly_typed
                and not self.facts.has_qdq)


@dataclass
class BuildResult:
    engine_path: str
    sidecar: sidecar_mod.EngineSidecar
    built: bool                          # False: an existing matching engine was reused
    seconds: float = 0.0
    dla_plan: Optional[dla_report.DlaPlan] = None
    warnings: list = field(default_factory=list)


# --- logging ---------------------------------------------------------------------------------

def make_build_logger(trt, log: LogFn, verbose: bool = False):
    """A TensorRT logger that keeps every line (the DLA report parses them) and forwards
    warnings/errors -- and info/verbose when `verbose` -- to `log`."""
    severity = trt.ILogger.Severity

    class _BuildLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines: list[str] = []
            self.errors: list[str] = []

        def log(self, level, msg):
            msg = str(msg)
            if level != severity.VERBOSE:          # verbose lines are many; none is parsed
                self.lines.append(msg)
            if level in (severity.INTERNAL_ERROR, severity.ERROR):
                self.errors.append(msg)
                log(f"TensorRT error: {msg}")
            elif level == severity.WARNING:
                log(f"TensorRT warning: {msg}")
            elif verbose:
                log(f"TensorRT: {msg}")

    return _BuildLogger()


# --- preflight -------------------------------------------------------------------------------

def tensorrt_problems(options: BuildOptions, trt, builder, facts: ModelFacts,
                      warnings: list) -> list[tuple[str, str]]:
    """Problems that depend on the TensorRT version, the device and the ONNX contents."""
    p: list[tuple[str, str]] = []
    ver = trt_compat.version_string(trt)
    strongly = options.strongly_typed or trt_compat.always_strongly_typed(trt)
    if options.uses_dla:
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if cores == 0:
            p.append(("dla_core", f"dla_core {options.dla_core} asks for a DLA but this device has "
                                  "none (DLA cores exist on Jetson AGX/NX Orin and Xavier); set "
                                  "dla_core:=-1 to build for the GPU"))
        elif options.dla_core >= cores:
            p.append(("dla_core", f"dla_core {options.dla_core} does not exist: this device has "
                                  f"{cores} DLA core(s), 0..{cores - 1}"))
    if options.strongly_typed and not trt_compat.supports_strongly_typed(trt):
        p.append(("strongly_typed", f"TensorRT {ver} has no strongly typed networks (from 10.0); "
                                    "set strongly_typed:=false"))
    if strongly:
        why = (f"TensorRT {ver} builds only strongly typed networks"
               if trt_compat.always_strongly_typed(trt) else "strongly_typed is set")
        if options.precision == "fp16" and not facts.has_fp16:
            p.append(("precision", f"{why}, so precision comes from the ONNX, and this ONNX has "
                                   "no float16 tensors: convert it to fp16 first (e.g. ModelOpt "
                                   "AutoCast) or use precision fp32"))
        if options.wants_int8 and not facts.has_qdq:
            p.append(("precision", f"{why}, so INT8 needs Q/DQ nodes in the ONNX and this one has "
                                   "none: quantize it (trt_infer_ros.optimize QDQ export) or use "
                                   "TensorRT <= 10 with calibration"))
        if options.layer_precisions:
            p.append(("layer_precisions", f"{why}; layer types come from the ONNX and per-layer "
                                          "precision constraints are not used: remove "
                                          "layer_precisions or change the types in the ONNX"))
    elif options.wants_int8 and not facts.has_qdq and not trt_compat.supports_implicit_int8(trt):
        p.append(("precision", f"TensorRT {ver} cannot calibrate INT8; use a Q/DQ ONNX"))
    if options.layer_precisions and not strongly and \
            not trt_compat.supports_precision_constraints(trt):
        p.append(("layer_precisions", f"TensorRT {ver} has no OBEY_PRECISION_CONSTRAINTS flag"))
    if options.optimization_level >= 0 and not trt_compat.supports_optimization_level(trt):
        warnings.append(f"optimization_level {options.optimization_level} ignored: TensorRT {ver} "
                        "has no builder optimization level (from 8.6)")
    p.extend(profile_problems(options, facts))
    calibrating = options.wants_int8 and not strongly and not facts.has_qdq
    if calibrating and facts.inputs and options.has_calibration_data:
        profile = options.shape_profile()
        batch = profile.opt[0] if profile is not None else facts.inputs[0].shape[0]
        if batch > 0 and options.calibration_batch != batch:
            p.append(("calibration_batch", f"calibration batches must have the input's batch "
                                           f"size {batch} (the profile's opt shape or the "
                                           f"static ONNX input); set calibration_batch:={batch}"))
    return p


def profile_problems(options: BuildOptions, facts: ModelFacts) -> list[tuple[str, str]]:
    """Dynamic inputs need a profile; a profile must fit the input it names."""
    p: list[tuple[str, str]] = []
    if not facts.inputs:
        return p
    profile = options.shape_profile()
    names = [t.name for t in facts.inputs]
    if profile is not None:
        name = profile.input_name or names[0]
        if name not in names:
            p.append(("input_name", f"the ONNX has no input {name!r}; its inputs: "
                                    f"{', '.join(names)}"))
            return p
        tensor = facts.inputs[names.index(name)]
        if len(tensor.shape) != len(profile.opt):
            p.append(("input_shape" if options.input_shape else "opt_shape",
                      f"input {name!r} has rank {len(tensor.shape)} "
                      f"({format_shape(tensor.shape)}), the shapes given have rank "
                      f"{len(profile.opt)}"))
            return p
        for shape in (profile.min, profile.opt, profile.max):
            for axis, (have, want) in enumerate(zip(tensor.shape, shape)):
                if have >= 0 and have != want:
                    p.append(("input_shape" if options.input_shape else "opt_shape",
                              f"input {name!r} has fixed size {have} on axis {axis}, the profile "
                              f"asks for {want}; the ONNX shape is {list(tensor.shape)}"))
                    return p
    for tensor in facts.dynamic_inputs:
        if profile is None or (profile.input_name or names[0]) != tensor.name:
            p.append(("input_shape", f"input {tensor.name!r} has dynamic shape "
                                      f"{list(tensor.shape)} (-1 = dynamic); set input_shape "
                                      "(e.g. 1x3x640x640) or min_shape/opt_shape/max_shape"
                                      + (f" with input_name:={tensor.name}"
                                         if len(facts.inputs) > 1 else "")))
    return p


def read_onnx(options: BuildOptions) -> tuple[Optional[ModelFacts], list[tuple[str, str]]]:
    """The ONNX file's facts, or the problem that it is not an ONNX model. A missing or
    unreadable path is left to options.problems(), which says what the path is."""
    path = options.onnx
    if not isinstance(path, str) or not path or file_problem(path):
        return None, []
    try:
        return read_model_facts(path), []
    except Exception as exc:  # noqa: BLE001 - any decode error means "not an ONNX model"
        return None, [("onnx", f"{path!r} is not an ONNX model (onnx cannot parse it: {exc}); "
                               "give the .onnx file exported from your model")]


def bag_problems(options: BuildOptions) -> list[tuple[str, str]]:
    """Open the calibration bag, find its image topic and decode one message, so a bad bag is
    reported now and not as a crash in the middle of calibration."""
    bag = options.calibration_bag
    if not isinstance(bag, str) or not bag or path_problem(bag):
        return []
    from trt_infer_ros.engine import bag_reader  # noqa: PLC0415 - only bag users need it
    try:
        bag_reader.probe_bag(bag, options.calibration_topic)
    except bag_reader.BagError as exc:
        return [("calibration_bag", str(exc))]
    except Exception as exc:  # noqa: BLE001 - whatever the reader trips on, the bag is unusable
        return [("calibration_bag", f"{bag!r} cannot be read as a ROS 2 bag "
                                    f"({type(exc).__name__}: {exc})")]
    return []


def load_plugins(options: BuildOptions, trt) -> list:
    """Load the plugin libraries now: a library the loader refuses is a parameter problem."""
    try:
        return trt_compat.load_plugins(trt, options.plugins)
    except (OSError, RuntimeError) as exc:
        raise BuildConfigError([("plugins", f"{exc}; a plugin must be built for TensorRT "
                                            f"{trt_compat.version_string(trt)} on this machine, "
                                            "with the libraries it needs on LD_LIBRARY_PATH "
                                            "(check with ldd)")]) from None


def cuda_unavailable() -> Optional[str]:
    try:
        from trt_infer_ros.cuda.context import cuda_unavailable_reason  # noqa: PLC0415
    except ImportError as exc:
        return f"cuda-python cannot be imported ({exc})"
    return cuda_unavailable_reason()


def calibration_runtime_problems(options: BuildOptions, calibrates: bool) -> list[tuple[str, str]]:
    """What calibrating on images needs besides TensorRT: onnxruntime for the percentile
    algorithm; cuda-python and a CUDA device for TensorRT's calibrators, which read device
    memory."""
    if not calibrates or not options.has_calibration_data:
        return []
    source = "calibration_images" if options.calibration_images else "calibration_bag"
    if options.calibration_algorithm == "percentile":
        try:
            import onnxruntime  # noqa: F401, PLC0415
        except ImportError as exc:
            return [("calibration_algorithm", "percentile calibration runs the model with "
                                              f"onnxruntime, which cannot be imported ({exc}): "
                                              "pip install onnxruntime")]
        return []
    reason = cuda_unavailable()
    if reason is None:
        return []
    return [(source, f"INT8 calibration on {source} hands TensorRT batches in device memory, "
                     f"and CUDA cannot be used here: {reason}. Install cuda-python (pip install "
                     "cuda-python) on a machine with a CUDA device, or set "
                     "calibration_algorithm:=percentile (computed with onnxruntime), or remove "
                     f"{source} and give a calibration_cache made elsewhere")]


def preflight(options: BuildOptions, trt=None, device: Optional[DeviceInfo] = None,
              log: Optional[LogFn] = None) -> Preflight:
    """Every check that can fail before a build. Raises BuildConfigError (all problems of a
    stage at once) or TensorRTUnavailable."""
    log = log or LOG.info
    facts, problems = read_onnx(options)
    problems += options.problems(model_has_qdq=facts.has_qdq if facts else False)
    problems += bag_problems(options)
    if problems:
        raise BuildConfigError(problems)
    trt = trt or trt_compat.import_tensorrt()
    logger = make_build_logger(trt, log, options.verbose)
    builder = trt.Builder(logger)
    warnings: list[str] = []
    problems = tensorrt_problems(options, trt, builder, facts, warnings)
    if problems:
        raise BuildConfigError(problems)
    pre = Preflight(options, facts, trt, builder, logger, device or current_device(), warnings)
    problems = calibration_runtime_problems(options, pre.calibrates)
    if problems:
        raise BuildConfigError(problems)
    pre.plugin_handles = load_plugins(options, trt)
    for w in warnings:
        log(f"warning: {w}")
    return pre


# --- engine naming and reuse -----------------------------------------------------------------

def calibration_meta(options: BuildOptions, facts: ModelFacts, spec=None) -> dict:
    """What a calibration cache depends on (its companion .meta.json)."""
    meta = {"onnx_sha256": facts.sha256, "algorithm": options.calibration_algorithm,
            "model_type": options.model_type,
            "input_spec": repr(spec) if spec is not None else None}
    if options.calibration_algorithm in ("percentile", "legacy"):
        meta["percentile"] = options.calibration_percentile
    return meta


def default_engine_path(options: BuildOptions, facts: ModelFacts, trt_version: str,
                        device: DeviceInfo) -> str:
    key_source = json.dumps({"settings": options.settings_record(), "onnx": facts.sha256,
                             "trt": trt_version, "cc": device.compute_capability},
                            sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:10]
    stem = os.path.splitext(os.path.basename(options.onnx))[0]
    where = f"dla{options.dla_core}" if options.uses_dla else "gpu"
    directory = options.cache_dir or os.path.dirname(os.path.abspath(options.onnx))
    return os.path.join(directory, f"{stem}.{options.precision}.{where}.{key}.engine")


def engine_path_for(options: BuildOptions, facts: ModelFacts, trt, device: DeviceInfo) -> str:
    return options.engine or default_engine_path(options, facts, trt_compat.version_string(trt),
                                                 device)


def expected_calibration_sha(pre: Preflight) -> Optional[str]:
    path = pre.options.calibration_cache
    if pre.calibrates and path and os.path.isfile(path) and not pre.options.has_calibration_data:
        return file_sha256(path)
    return None


def existing_engine_mismatches(path: str, pre: Preflight) -> Optional[list]:
    """None when there is no engine at `path`; else the list of sidecar mismatches."""
    if not os.path.isfile(path):
        return None
    try:
        recorded = sidecar_mod.read_sidecar(path)
    except sidecar_mod.SidecarError as exc:
        return [sidecar_mod.Mismatch("sidecar", None, str(exc))]
    return sidecar_mod.compare(
        recorded, engine_sha256=file_sha256(path),
        tensorrt_version=trt_compat.version_string(pre.trt), gpu_name=pre.device.gpu_name,
        compute_capability=pre.device.compute_capability, dla_core=pre.options.dla_core,
        onnx_sha256=pre.facts.sha256, build_settings=pre.options.settings_record(),
        calibration_cache_sha256=expected_calibration_sha(pre))


# --- configuration steps ---------------------------------------------------------------------

def set_precision(pre: Preflight, config) -> list[str]:
    """Precision flags; returns the names set. None on strongly typed builds (and TensorRT 11)."""
    trt, options = pre.trt, pre.options
    if pre.strongly_typed:
        return []
    wanted = {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"], "best": ["FP16", "INT8"]}
    names = list(wanted[options.precision])
    if options.precision == "int8" and options.uses_dla:
        names.append("FP16")       # DLA layers that cannot run int8 may run fp16, not fp32
    for _, prec in options.layer_overrides():
        if prec == "fp16" and "FP16" not in names:
            names.append("FP16")
    for name in names:
        config.set_flag(getattr(trt.BuilderFlag, name))
    return names


def add_profile(pre: Preflight, builder, network, config):
    """An optimization profile for the dynamic inputs, or None when the network is static."""
    dynamic = [network.get_input(i) for i in range(network.num_inputs)
               if any(int(d) < 0 for d in network.get_input(i).shape)]
    if not dynamic:
        return None
    profile_opts: ShapeProfile = pre.options.shape_profile()
    profile = builder.create_optimization_profile()
    name = profile_opts.input_name or network.get_input(0).name
    profile.set_shape(name, profile_opts.min, profile_opts.opt, profile_opts.max)
    config.add_optimization_profile(profile)
    return profile


def set_dla(pre: Preflight, network, config, log: LogFn) -> dla_report.DlaPlan:
    trt, options = pre.trt, pre.options
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(options.dla_core)
    if options.gpu_fallback:
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    plan = dla_report.plan_dla(network, config)
    for line in plan.lines():
        log(line)
    if plan.gpu_only and not options.gpu_fallback:
        names = ", ".join(n for n, _ in plan.gpu_only[:10])
        raise BuildConfigError([("gpu_fallback", f"gpu_fallback is off but DLA cannot run "
                                                 f"{len(plan.gpu_only)} layer(s) ({names}); set "
                                                 "gpu_fallback:=true or split the model")])
    warning = dla_report.fallback_warning(plan.gpu_fraction, options.dla_fallback_warn,
                                          "before build")
    if warning:
        log(f"warning: {warning}")
    return plan


def set_layer_precisions(pre: Preflight, network, config) -> dict[str, str]:
    """Apply per-layer overrides (layer precision and its output types) and the constraint flag;
    returns {layer name: precision}."""
    trt = pre.trt
    overrides = pre.options.layer_overrides()
    if not overrides:
        return {}
    applied: dict[str, str] = {}
    used_patterns = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        prec = match_layer_precision(layer.name, overrides)
        if prec is None:
            continue
        used_patterns.update(pattern for pattern, _ in overrides
                             if fnmatch.fnmatchcase(layer.name, pattern))
        dtype = trt_compat.trt_dtype(trt, prec)
        layer.precision = dtype
        for j in range(layer.num_outputs):
            layer.set_output_type(j, dtype)
        applied[layer.name] = prec
    unused = [pattern for pattern, _ in overrides if pattern not in used_patterns]
    if unused:
        sample = ", ".join(network.get_layer(i).name for i in range(min(network.num_layers, 8)))
        raise BuildConfigError([("layer_precisions", f"pattern {pat!r} matches no layer; layer "
                                                     f"names look like: {sample}")
                                for pat in unused])
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return applied


def attach_calibrator(pre: Preflight, config, profile, log: LogFn,
                      preprocess=None, input_spec=None):
    """Attach an INT8 calibrator: a matching cache is reused, else images are calibrated on."""
    trt, options, facts = pre.trt, pre.options, pre.facts
    spec = input_spec
    if spec is None and options.has_calibration_data:
        profile_opts = options.shape_profile()
        spec = calibration.input_spec_for(options.model_type, options.onnx,
                                          profile_opts.opt if profile_opts else None)
    meta = calibration_meta(options, facts, spec)
    cache_path = options.calibration_cache
    reuse, why = (False, "")
    if cache_path:
        if options.has_calibration_data:
            reuse, why = calibration_cache.cache_matches(cache_path, options.calibration_algorithm,
                                                         meta)
        else:   # cache only: its meta cannot know the preprocessing; check the model and algo
            check = {k: meta[k] for k in ("onnx_sha256", "algorithm")}
            reuse, why = calibration_cache.cache_matches(cache_path,
                                                         options.calibration_algorithm, check)
        log(why)
    if not reuse and not options.has_calibration_data:
        raise BuildConfigError([("calibration_cache", f"{why}; and there are no calibration "
                                                      "images to make a new one: set "
                                                      "calibration_images or calibration_bag")])
    batches = None
    preset = None
    if not reuse:
        images = calibration.image_source(options.calibration_images, options.calibration_bag,
                                          options.calibration_topic)
        batches = calibration.CalibrationBatches(images, spec, options.calibration_count,
                                                 options.calibration_batch, preprocess)
        if options.calibration_algorithm == "percentile":
            log(f"percentile calibration ({options.calibration_percentile}) with onnxruntime on "
                f"up to {options.calibration_count} images")
            ranges = calibration.percentile_ranges(options.onnx, batches,
                                                   options.calibration_percentile,
                                                   facts.inputs[0].name if facts.inputs else None)
            cache = calibration_cache.CalibrationCache.from_dynamic_ranges(
                trt_compat.version_code(trt), "EntropyCalibration2", ranges)
            preset = cache.to_bytes()
            if cache_path:
                calibration_cache.write_cache(cache_path, preset, meta)
            batches = None
    core = calibration.CalibratorCore(batches, cache_path, meta, reuse_cache=reuse,
                                      preset_cache=preset)
    calibrator = calibration.create_calibrator(trt, options.calibration_algorithm, core,
                                               quantile=options.calibration_percentile / 100.0)
    config.int8_calibrator = calibrator
    if profile is not None and hasattr(config, "set_calibration_profile"):
        config.set_calibration_profile(profile)
    return calibrator


def load_timing_cache(trt, config, path: str, log: LogFn):
    data = b""
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
        log(f"timing cache: read {len(data)} bytes from {path}")
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)
    return cache


def save_timing_cache(config, path: str, log: LogFn) -> None:
    if not path:
        return
    cache = config.get_timing_cache()
    data = bytes(cache.serialize())
    write_atomic(path, data)
    log(f"timing cache: wrote {len(data)} bytes to {path}")


def check_accuracy_gate(options: BuildOptions, data: bytes, trt, path: str, log: LogFn) -> None:
    """accuracy_target: measure the INT8 engine against FP32 before it replaces anything."""
    if options.accuracy_target <= 0 or not options.wants_int8:
        return
    from trt_infer_ros.optimize.gate import check_accuracy  # noqa: PLC0415 - gated builds only
    try:
        result = check_accuracy(options, data, trt, log)
    except ValueError as exc:       # unreadable validation images, no reference boxes
        raise AccuracyGateError(f"the accuracy gate cannot measure the engine: {exc}; the "
                                "engine was not written") from exc
    log(str(result))
    if not result.passed:
        kept = " (the existing engine is kept)" if os.path.isfile(path) else ""
        raise AccuracyGateError(f"{result}: the engine was not written{kept}; keep sensitive "
                                "layers in FP16 (trt_infer_ros_int8 search gives "
                                "layer_precisions) or lower accuracy_target")


# --- the build -------------------------------------------------------------------------------

def build_engine(options: BuildOptions, trt=None, device: Optional[DeviceInfo] = None,
                 log: Optional[LogFn] = None, preprocess=None, input_spec=None,
                 heartbeat_s: float = 15.0) -> BuildResult:
    """Build (or reuse) the engine `options` describe. See the module docstring."""
    log = log or LOG.info
    pre = preflight(options, trt, device, log)
    trt, builder, logger = pre.trt, pre.builder, pre.logger
    path = engine_path_for(options, pre.facts, trt, pre.device)

    mismatches = existing_engine_mismatches(path, pre)
    if mismatches == [] and not options.force:
        log(f"engine {path} is up to date (sidecar matches); not rebuilding")
        return BuildResult(path, sidecar_mod.read_sidecar(path), built=False,
                           warnings=pre.warnings)
    if mismatches:
        if options.on_mismatch == "error" and not options.force:
            raise EngineMismatchError(path, mismatches)
        log(f"engine {path} is stale, rebuilding: " + "; ".join(str(m) for m in mismatches))

    network = builder.create_network(trt_compat.network_creation_flags(trt, pre.strongly_typed))
    parser = trt_compat.parse_onnx(trt, network, logger, options.onnx)
    config = builder.create_builder_config()
    if options.workspace_mib > 0:
        trt_compat.set_workspace(config, trt, options.workspace_mib << 20)
    if options.optimization_level >= 0 and trt_compat.supports_optimization_level(trt):
        config.builder_optimization_level = int(options.optimization_level)
    if hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    flags = set_precision(pre, config)
    if options.sparse_weights:          # 2:4-pruned weights run on sparse tensor cores
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
        flags.append("SPARSE_WEIGHTS")
    profile = add_profile(pre, builder, network, config)
    plan = set_dla(pre, network, config, log) if options.uses_dla else None
    applied = set_layer_precisions(pre, network, config)
    calibrator = attach_calibrator(pre, config, profile, log, preprocess, input_spec) \
        if pre.calibrates else None
    load_timing_cache(trt, config, options.timing_cache, log)
    monitor = make_progress_monitor(trt, log)
    if monitor is not None:
        config.progress_monitor = monitor

    log(f"building {path} from {options.onnx}: TensorRT {trt_compat.version_string(trt)}, "
        f"precision {options.precision}{' (strongly typed)' if pre.strongly_typed else ''}, "
        f"flags {flags or 'none'}, "
        + (f"DLA core {options.dla_core}" if options.uses_dla else "GPU")
        + (f", {len(applied)} layer precision override(s)" if applied else ""))
    start = time.monotonic()
    if monitor is not None:
        serialized = builder.build_serialized_network(network, config)
    else:
        with Heartbeat(log, heartbeat_s):
            serialized = builder.build_serialized_network(network, config)
    seconds = time.monotonic() - start
    if calibrator is not None:
        calibrator.core.release()
    if serialized is None:
        errors = "\n  ".join(logger.errors[-20:]) or "(TensorRT logged no error)"
        raise BuildError(f"TensorRT failed to build {options.onnx!r}:\n  {errors}")
    save_timing_cache(config, options.timing_cache, log)
    data = bytes(serialized)
    check_accuracy_gate(options, data, trt, path, log)
    write_atomic(path, data)

    runtime = trt.Runtime(logger)
    if options.uses_dla:
        runtime.DLA_core = int(options.dla_core)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise BuildError(f"the engine just built could not be deserialized: {logger.errors[-5:]}")
    inputs, outputs = io_specs(engine, trt)

    placement = None
    warnings = list(pre.warnings)
    if options.uses_dla:
        placement = dla_report.placement_from_log(logger.lines)
        if placement is None and hasattr(engine, "create_engine_inspector"):
            inspector = engine.create_engine_inspector()
            placement = dla_report.placement_from_inspector(
                inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        if placement is not None:
            if plan is not None and placement.dla_subgraphs:
                placement.dla_network_layers = plan.total_layers - len(plan.gpu_only)
            log(f"DLA placement ({placement.source}): {placement.dla_layers} layer(s) on DLA "
                f"in {placement.dla_subgraphs} subgraph(s), {placement.gpu_layers} on the GPU")
            warning = dla_report.fallback_warning(placement.gpu_fraction,
                                                  options.dla_fallback_warn, "after build")
            if warning:
                warnings.append(warning)
                log(f"warning: {warning}")

    calib_sha = None
    if options.calibration_cache and os.path.isfile(options.calibration_cache) \
            and pre.calibrates:
        calib_sha = file_sha256(options.calibration_cache)
    record = sidecar_mod.EngineSidecar(
        tensorrt_version=trt_compat.version_string(trt), gpu_name=pre.device.gpu_name,
        compute_capability=pre.device.compute_capability, dla_core=int(options.dla_core),
        onnx_path=os.path.abspath(options.onnx), onnx_sha256=pre.facts.sha256,
        engine_sha256=hashlib.sha256(data).hexdigest(), build_settings=options.settings_record(),
        calibration_cache_sha256=calib_sha, inputs=inputs, outputs=outputs,
        plugins=[os.path.abspath(p) for p in options.plugins],
        dla_summary=({"plan_gpu_only": len(plan.gpu_only), "plan_total": plan.total_layers,
                      "placement": placement.as_dict() if placement else None}
                     if plan is not None else None),
        build_seconds=round(seconds, 3))
    sidecar_mod.write_sidecar(path, record)
    log(f"engine written: {path} ({len(data) / 2**20:.1f} MiB, {seconds:.1f} s) + sidecar")
    del parser
    return BuildResult(path, record, built=True, seconds=seconds, dla_plan=plan,
                       warnings=warnings)
