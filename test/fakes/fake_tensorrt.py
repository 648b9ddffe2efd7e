"""FakeTensorRT: a recording fake of the TensorRT Python API, for tests only.

It is NOT TensorRT: it builds nothing and runs nothing. It has the names our build code calls
(Builder, INetworkDefinition via create_network, OnnxParser, IBuilderConfig, IOptimizationProfile,
ITimingCache, Runtime, ICudaEngine, EngineInspector, IPluginRegistry, calibrator and progress
monitor base classes, the enums) with the shape of a chosen TensorRT version -- 8.5, 8.6, 10.x
or 11.x -- so `hasattr` version guards see what that version has. Every call that configures a
build is appended to `fake.calls` as (name, args...) so tests can assert which calls a parameter
combination makes.

The parser reads the real ONNX file with `onnx` (inputs, outputs, one layer per node named after
the node), so layer-name patterns, dynamic inputs and DLA queries work on real graphs. A "built
engine" is JSON bytes recording the network I/O and the config, which FakeRuntime deserializes.
"""
from __future__ import annotations

import enum
import json

ENGINE_TAG = "FAKE-TENSORRT-ENGINE"
TIMING_TAG = b"FAKE-TIMING-CACHE:"

# ONNX op types the fake's DLA refuses (a plausible subset of DLA's real limits).
DEFAULT_DLA_UNSUPPORTED = ("TopK", "NonMaxSuppression", "Gather", "GatherElements", "Shape",
                           "Reshape", "Transpose", "Equal", "ReduceMax", "ArgMax", "Cast",
                           "Softmax", "Exp", "Slice", "Split", "Squeeze", "Unsqueeze")


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int(minor)


class FakeTensorRT:
    """A module-like object standing in for `tensorrt` at one version."""

    def __init__(self, version: str = "10.3.0", dla_cores: int = 0,
                 dla_unsupported: tuple = DEFAULT_DLA_UNSUPPORTED, fail_build: bool = False,
                 calibration_batches_to_pull: int = 0):
        self.__version__ = version
        self.__name__ = f"FakeTensorRT({version})"
        self.calls: list[tuple] = []
        self.dla_cores = dla_cores
        self.dla_unsupported = set(dla_unsupported)
        self.fail_build = fail_build
        self.calibration_batches_to_pull = calibration_batches_to_pull
        self.major, self.minor = _version_tuple(version)
        self._define()

    # --- recording helpers -------------------------------------------------------------------

    def record(self, name: str, *args) -> None:
        self.calls.append((name,) + args)

    def called(self, name: str) -> list[tuple]:
        """The argument tuples of every call recorded under `name`."""
        return [c[1:] for c in self.calls if c[0] == name]

    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def flags_set(self) -> list[str]:
        return [args[0].name for args in self.called("config.set_flag")]

    # --- the API -------------------------------------------------------------------------------

    def _define(self) -> None:  # noqa: C901 - one place that defines the whole fake surface
        fake = self
        major, minor = self.major, self.minor
        v86, v10, v11 = (major, minor) >= (8, 6), major >= 10, major >= 11

        flags = ["GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
                 "SAFETY_SCOPE", "DIRECT_IO", "REJECT_EMPTY_ALGORITHMS"]
        if not v11:
            flags = ["FP16", "INT8", "DEBUG", "STRICT_TYPES", "OBEY_PRECISION_CONSTRAINTS",
                     "PREFER_PRECISION_CONSTRAINTS"] + flags
        if v86:
            flags += ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
        if v10:
            flags += ["WEIGHT_STREAMING", "STRIP_PLAN"]
        if v10 and not v11:
            flags += ["BF16", "FP8"]
        self.BuilderFlag = enum.IntEnum("BuilderFlag", flags, start=0)

        net_flags = [] if v11 else ["EXPLICIT_BATCH"]
        if not v10:
            net_flags += ["EXPLICIT_PRECISION"]
        if v10:
            net_flags += ["STRONGLY_TYPED", "PREFER_JIT_PYTHON_PLUGINS"]
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                          net_flags, start=0)
        self.DataType = enum.IntEnum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL",
                                                  "UINT8", "INT64", "BF16"], start=0)
        self.float32, self.float16, self.int8 = (self.DataType.FLOAT, self.DataType.HALF,
                                                 self.DataType.INT8)
        self.int32, self.int64, self.bool = (self.DataType.INT32, self.DataType.INT64,
                                             self.DataType.BOOL)
        self.DeviceType = enum.IntEnum("DeviceType", ["GPU", "DLA"], start=0)
        self.MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM",
                                                              "DLA_LOCAL_DRAM",
                                                              "DLA_GLOBAL_DRAM"], start=0)
        self.TensorIOMode = enum.IntEnum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"], start=0)
        self.ProfilingVerbosity = enum.IntEnum("ProfilingVerbosity",
                                               ["LAYER_NAMES_ONLY", "NONE", "DETAILED"], start=0)
        self.LayerInformationFormat = enum.IntEnum("LayerInformationFormat",
                                                   ["ONELINE", "JSON"], start=0)
        self.CalibrationAlgoType = enum.IntEnum(
            "CalibrationAlgoType", ["LEGACY_CALIBRATION", "ENTROPY_CALIBRATION",
                                    "ENTROPY_CALIBRATION_2", "MINMAX_CALIBRATION"], start=0)
        Severity = enum.IntEnum("Severity", ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO",
                                             "VERBOSE"], start=0)

        class ILogger:
            pass
        ILogger.Severity = Severity
        ILogger.INTERNAL_ERROR, ILogger.ERROR, ILogger.WARNING = (
            Severity.INTERNAL_ERROR, Severity.ERROR, Severity.WARNING)
        ILogger.INFO, ILogger.VERBOSE = Severity.INFO, Severity.VERBOSE

        class Logger(ILogger):
            def __init__(self, min_severity=Severity.WARNING):
                self.min_severity = min_severity

            def log(self, severity, msg):
                pass
        self.ILogger, self.Logger = ILogger, Logger

        # --- tensors, layers, network ------------------------------------------------------

        class FakeTensor:
            def __init__(self, name, shape, dtype):
                self.name, self.shape, self.dtype = name, tuple(shape), dtype

        dtype_of = {"float32": self.float32, "float16": self.float16, "int8": self.int8,
                    "int32": self.int32, "int64": self.int64, "bool": self.bool}

        class FakeLayer:
            def __init__(self, index, name, op_type, num_outputs):
                self.index, self.name, self.type = index, name, op_type
                self.num_outputs = num_outputs
                self._precision = fake.float32

            @property
            def precision(self):
                return self._precision

            @precision.setter
            def precision(self, value):
                fake.record("layer.precision", self.name, value)
                self._precision = value

            def set_output_type(self, index, dtype):
                fake.record("layer.set_output_type", self.name, index, dtype)

        class INetworkDefinition:
            def __init__(self, flags):
                self.flags = flags
                self.inputs: list = []
                self.outputs: list = []
                self.layers: list = []

            @property
            def num_inputs(self):
                return len(self.inputs)

            @property
            def num_outputs(self):
                return len(self.outputs)

            @property
            def num_layers(self):
                return len(self.layers)

            def get_input(self, i):
                return self.inputs[i]

            def get_output(self, i):
                return self.outputs[i]

            def get_layer(self, i):
                return self.layers[i]

        class OnnxParser:
            def __init__(self, network, logger):
                fake.record("OnnxParser", network, logger)
                self.network, self.errors = network, []

            @property
            def num_errors(self):
                return len(self.errors)

            def get_error(self, i):
                return self.errors[i]

            def parse_from_file(self, path):
                fake.record("parser.parse_from_file", path)
                import onnx  # noqa: PLC0415
                from onnx import helper  # noqa: PLC0415
                try:
                    model = onnx.load(path, load_external_data=False)
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(f"ModelImporter: failed to parse {path}: {exc}")
                    return False
                graph = model.graph
                inits = {i.name for i in graph.initializer}

                def tensor(v):
                    t = v.type.tensor_type
                    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
                             for d in t.shape.dim]
                    dt = str(helper.tensor_dtype_to_np_dtype(t.elem_type))
                    return FakeTensor(v.name, shape, dtype_of.get(dt, fake.float32))
                self.network.inputs = [tensor(v) for v in graph.input if v.name not in inits]
                self.network.outputs = [tensor(v) for v in graph.output]
                self.network.layers = [
                    FakeLayer(i, n.name or f"{n.op_type}_{i}", n.op_type, len(n.output))
                    for i, n in enumerate(graph.node)]
                return True
        self.OnnxParser = OnnxParser
        self.INetworkDefinition = INetworkDefinition

        # --- profile, timing cache ---------------------------------------------------------

        class IOptimizationProfile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's names
                fake.record("profile.set_shape", name, tuple(min), tuple(opt), tuple(max))
                self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

            def get_shape(self, name):
                return self.shapes[name]

        class ITimingCache:
            def __init__(self, data: bytes):
                self.entries = 0
                if data:
                    if not bytes(data).startswith(TIMING_TAG):
                        raise RuntimeError("fake timing cache: not a timing cache")
                    self.entries = int(bytes(data)[len(TIMING_TAG):])

            def serialize(self):
                fake.record("timing_cache.serialize", self.entries)
                return TIMING_TAG + str(self.entries).encode()

        # --- builder config ----------------------------------------------------------------

        class IBuilderConfig:
            def __init__(self):
                self.flags_on: set = set()
                self.pool_limits: dict = {}
                self._default_device_type = fake.DeviceType.GPU
                self._dla_core = -1
                self.profiles: list = []
                self._timing_cache = None
                self._profiling_verbosity = fake.ProfilingVerbosity.LAYER_NAMES_ONLY
                self._calibrator = None
                self._monitor = None
                self._opt_level = 3
                self.calibration_profile = None

            def set_flag(self, flag):
                fake.record("config.set_flag", flag)
                self.flags_on.add(flag)

            def get_flag(self, flag):
                return flag in self.flags_on

            def clear_flag(self, flag):
                fake.record("config.clear_flag", flag)
                self.flags_on.discard(flag)

            def set_memory_pool_limit(self, pool, size):
                fake.record("config.set_memory_pool_limit", pool, size)
                self.pool_limits[pool] = size

            @property
            def default_device_type(self):
                return self._default_device_type

            @default_device_type.setter
            def default_device_type(self, value):
                fake.record("config.default_device_type", value)
                self._default_device_type = value

            @property
            def DLA_core(self):  # noqa: N802 - TensorRT's name
                return self._dla_core

            @DLA_core.setter
            def DLA_core(self, value):  # noqa: N802
                fake.record("config.DLA_core", value)
                self._dla_core = value

            @property
            def profiling_verbosity(self):
                return self._profiling_verbosity

            @profiling_verbosity.setter
            def profiling_verbosity(self, value):
                fake.record("config.profiling_verbosity", value)
                self._profiling_verbosity = value

            def can_run_on_DLA(self, layer):  # noqa: N802
                return layer.type not in fake.dla_unsupported

            def get_device_type(self, layer):
                if self._default_device_type == fake.DeviceType.DLA and self.can_run_on_DLA(layer):
                    return fake.DeviceType.DLA
                return fake.DeviceType.GPU

            def add_optimization_profile(self, profile):
                fake.record("config.add_optimization_profile", dict(profile.shapes))
                self.profiles.append(profile)
                return len(self.profiles) - 1

            def create_timing_cache(self, data):
                fake.record("config.create_timing_cache", bytes(data))
                return ITimingCache(bytes(data))

            def set_timing_cache(self, cache, ignore_mismatch):
                fake.record("config.set_timing_cache", cache, ignore_mismatch)
                self._timing_cache = cache
                return True

            def get_timing_cache(self):
                fake.record("config.get_timing_cache")
                return self._timing_cache

        if not v11:
            def _get_cal(self):
                return self._calibrator

            def _set_cal(self, value):
                fake.record("config.int8_calibrator", value)
                self._calibrator = value
            IBuilderConfig.int8_calibrator = property(_get_cal, _set_cal)

            def set_calibration_profile(self, profile):
                fake.record("config.set_calibration_profile", dict(profile.shapes))
                self.calibration_profile = profile
                return True
            IBuilderConfig.set_calibration_profile = set_calibration_profile
        if v10:
            def _get_mon(self):
                return self._monitor

            def _set_mon(self, value):
                fake.record("config.progress_monitor", value)
                self._monitor = value
            IBuilderConfig.progress_monitor = property(_get_mon, _set_mon)
        if v86:
            def _get_lvl(self):
                return self._opt_level

            def _set_lvl(self, value):
                fake.record("config.builder_optimization_level", value)
                self._opt_level = value
            IBuilderConfig.builder_optimization_level = property(_get_lvl, _set_lvl)
        self.IBuilderConfig = IBuilderConfig

        # --- calibrator and progress-monitor base classes ------------------------------------

        if not v11:
            def _calibrator_class(name, algo):
                def __init__(self):
                    pass

                def get_algorithm(self):
                    return algo
                return type(name, (), {"__init__": __init__, "get_algorithm": get_algorithm})
            A = self.CalibrationAlgoType
            self.IInt8Calibrator = _calibrator_class("IInt8Calibrator", A.ENTROPY_CALIBRATION_2)
            self.IInt8EntropyCalibrator2 = _calibrator_class("IInt8EntropyCalibrator2",
                                                             A.ENTROPY_CALIBRATION_2)
            self.IInt8EntropyCalibrator = _calibrator_class("IInt8EntropyCalibrator",
                                                            A.ENTROPY_CALIBRATION)
            self.IInt8MinMaxCalibrator = _calibrator_class("IInt8MinMaxCalibrator",
                                                           A.MINMAX_CALIBRATION)
            self.IInt8LegacyCalibrator = _calibrator_class("IInt8LegacyCalibrator",
                                                           A.LEGACY_CALIBRATION)
        if v10:
            class IProgressMonitor:
                def __init__(self):
                    pass
            self.IProgressMonitor = IProgressMonitor

        # --- engine, runtime ---------------------------------------------------------------

        algo_header = {"ENTROPY_CALIBRATION_2": "EntropyCalibration2",
                       "ENTROPY_CALIBRATION": "EntropyCalibration",
                       "MINMAX_CALIBRATION": "MinMaxCalibration",
                       "LEGACY_CALIBRATION": "LegacyCalibration"}

        class IHostMemory(bytes):
            pass

        class Builder:
            def __init__(self, logger):
                fake.record("Builder", logger)
                self.logger = logger

            @property
            def num_DLA_cores(self):  # noqa: N802
                return fake.dla_cores

            def create_network(self, flags=0):
                fake.record("builder.create_network", flags)
                return INetworkDefinition(flags)

            def create_builder_config(self):
                fake.record("builder.create_builder_config")
                return IBuilderConfig()

            def create_optimization_profile(self):
                fake.record("builder.create_optimization_profile")
                return IOptimizationProfile()

            def _log(self, severity, msg):
                self.logger.log(severity, msg)

            def build_serialized_network(self, network, config):
                fake.record("builder.build_serialized_network", network, config)
                monitor = getattr(config, "_monitor", None)
                if monitor is not None:
                    monitor.phase_start("Building engine", None, 2)
                    monitor.phase_start("Tactic selection", "Building engine", 4)
                    for step in range(4):
                        if not monitor.step_complete("Tactic selection", step):
                            monitor.phase_finish("Tactic selection")
                            monitor.phase_finish("Building engine")
                            self._log(Severity.ERROR, "build cancelled by the progress monitor")
                            return None
                    monitor.phase_finish("Tactic selection")
                    monitor.step_complete("Building engine", 0)
                    monitor.step_complete("Building engine", 1)
                    monitor.phase_finish("Building engine")
                calibrator = getattr(config, "_calibrator", None)
                if calibrator is not None and fake.BuilderFlag.INT8 in config.flags_on:
                    fake.record("calibrator.get_batch_size", calibrator.get_batch_size())
                    cache = calibrator.read_calibration_cache()
                    fake.record("calibrator.read_calibration_cache", cache)
                    if not cache:
                        names = [t.name for t in network.inputs]
                        pulled = 0
                        while True:
                            ptrs = calibrator.get_batch(names)
                            if not ptrs:
                                break
                            pulled += 1
                            fake.record("calibrator.get_batch", list(ptrs))
                        fake.record("calibrator.batches", pulled)
                        algo = calibrator.get_algorithm().name
                        major_ = fake.major
                        code = (major_ * 10000 if major_ >= 10 else major_ * 1000) + \
                            fake.minor * 100
                        text = f"TRT-{code}-{algo_header[algo]}\n" + "".join(
                            f"{t.name}: 3c010a14\n" for t in network.inputs)
                        calibrator.write_calibration_cache(text.encode())
                if fake.fail_build:
                    self._log(Severity.ERROR, "fake build failure requested by the test")
                    return None
                if config._timing_cache is not None:
                    config._timing_cache.entries += network.num_layers
                dla = config._default_device_type == fake.DeviceType.DLA
                if dla:
                    on_dla = [l.name for l in network.layers if config.can_run_on_DLA(l)]
                    on_gpu = [l.name for l in network.layers if not config.can_run_on_DLA(l)]
                    self._log(Severity.INFO, "---------- Layers Running on DLA ----------")
                    if on_dla:
                        self._log(Severity.INFO, "[DlaLayer] {ForeignNode[" + on_dla[0] + "..."
                                  + on_dla[-1] + "]}")
                    self._log(Severity.INFO, "---------- Layers Running on GPU ----------")
                    for name in on_gpu:
                        self._log(Severity.INFO, f"[GpuLayer] {name}")
                    self._log(Severity.INFO, "")
                profile = config.profiles[0] if config.profiles else None
                engine = {
                    "tag": ENGINE_TAG, "version": fake.__version__,
                    "dla_core": config._dla_core if dla else -1,
                    "flags": sorted(f.name for f in config.flags_on),
                    "dla_layers": sum(1 for l in network.layers if dla
                                      and config.can_run_on_DLA(l)),
                    "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name,
                                "profile": [list(s) for s in profile.shapes[t.name]]
                                if profile and t.name in profile.shapes else None}
                               for t in network.inputs],
                    "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name}
                                for t in network.outputs],
                }
                return IHostMemory(json.dumps(engine).encode())
        self.Builder = Builder

        class EngineInspector:
            def __init__(self, engine):
                self.engine = engine

            def get_engine_information(self, fmt):
                layers = [{"Name": "{ForeignNode[a...b]}", "LayerType": "DLA"}] * \
                    (1 if self.engine.data["dla_layers"] else 0)
                return json.dumps({"Layers": layers})

        class ICudaEngine:
            def __init__(self, data):
                self.data = data
                self.io = data["inputs"] + data["outputs"]
                self.n_inputs = len(data["inputs"])

            @property
            def num_io_tensors(self):
                return len(self.io)

            def get_tensor_name(self, i):
                return self.io[i]["name"]

            def _find(self, name):
                for i, t in enumerate(self.io):
                    if t["name"] == name:
                        return i, t
                raise KeyError(name)

            def get_tensor_mode(self, name):
                i, _ = self._find(name)
                return fake.TensorIOMode.INPUT if i < self.n_inputs else fake.TensorIOMode.OUTPUT

            def get_tensor_shape(self, name):
                return tuple(self._find(name)[1]["shape"])

            def get_tensor_dtype(self, name):
                return fake.DataType[self._find(name)[1]["dtype"]]

            def get_tensor_profile_shape(self, name, profile_index):
                prof = self._find(name)[1].get("profile")
                if prof is None:
                    raise RuntimeError(f"{name} has no profile")
                return tuple(tuple(s) for s in prof)

            def create_engine_inspector(self):
                return EngineInspector(self)

        class Runtime:
            def __init__(self, logger):
                fake.record("Runtime", logger)
                self.logger = logger
                self._dla = -1

            @property
            def DLA_core(self):  # noqa: N802
                return self._dla

            @DLA_core.setter
            def DLA_core(self, value):  # noqa: N802
                fake.record("runtime.DLA_core", value)
                self._dla = value

            def deserialize_cuda_engine(self, data):
                fake.record("runtime.deserialize_cuda_engine", len(data))
                try:
                    parsed = json.loads(bytes(data).decode())
                except (UnicodeDecodeError, ValueError):
                    self.logger.log(Severity.ERROR, "fake runtime: not an engine")
                    return None
                if parsed.get("tag") != ENGINE_TAG:
                    return None
                return ICudaEngine(parsed)
        self.Runtime = Runtime

        class IPluginRegistry:
            pass
        if v86:
            def load_library(self, path):
                fake.record("plugin_registry.load_library", path)
                return object()
            IPluginRegistry.load_library = load_library
        registry = IPluginRegistry()
        self.IPluginRegistry = IPluginRegistry
        self.get_plugin_registry = lambda: registry


def fake_engine_bytes(inputs, outputs, version: str = "10.3.0") -> bytes:
    """Serialized fake engine with the given I/O (list of dicts name/shape/dtype)."""
    return json.dumps({"tag": ENGINE_TAG, "version": version, "dla_core": -1, "flags": [],
                       "dla_layers": 0, "inputs": inputs, "outputs": outputs}).encode()


__all__ = ["FakeTensorRT", "ENGINE_TAG", "fake_engine_bytes"]
