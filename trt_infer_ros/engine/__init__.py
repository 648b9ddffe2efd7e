"""Offline: ONNX -> TensorRT engine (+ sidecar), calibration, timing cache, DLA, ONNX split.

options        validated build parameters, shared by engine_builder_node and the CLI
trt_compat     TensorRT 8.5 .. 11 differences, decided with hasattr
model_facts    what the ONNX says before TensorRT sees it (hash, I/O, Q/DQ, fp16)
device_info    GPU name and compute capability (cuda-python)
builder        preflight checks, network/config set-up, build, engine + sidecar output
progress       IProgressMonitor logging (TensorRT >= 10), heartbeat before that
calibration    image batches through the adapter's preprocessing, INT8 calibrators,
               percentile calibration with onnxruntime
calibration_cache  TensorRT's calibration cache text format, reuse checks
bag_reader     rosbag2 sqlite3 / MCAP images through the rosbags library, bounded and checked
sidecar        the JSON written next to every engine, and comparing it
engine_loader  the one place that checks and deserializes engines (runners use it)
dla_report     layers DLA cannot take, where layers ended up, fallback warnings
onnx_split     backbone/head split at named tensors, cut suggestions
cli            the command line (python -m trt_infer_ros.engine.cli)
"""
