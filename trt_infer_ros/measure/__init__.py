"""Measuring without ROS: latency statistics, power (tegrastats on Jetson, NVML elsewhere),
operation counts of ONNX models, and the reports and plots the benchmarks write."""
