"""Benchmarks of the nodes as users run them (graph benchmark) and of the runners one model can
use (precision/accelerator comparison). Commands: trt_infer_ros_bench, trt_infer_ros_plot."""
