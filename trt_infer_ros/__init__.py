"""trt_infer_ros: camera-topic object detection on TensorRT, onnxruntime or tinygrad."""

__version__ = "0.1.0"
