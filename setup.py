"""ament_python package: installs the nodes as console entry points and launch/config/models under share/."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "trt_infer_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["cuda/kernels/*.cu"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "LICENSE"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.md") + glob("models/LICENSE*")),
        (f"share/{PACKAGE}/data/images", glob("data/images/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="trt_infer_ros maintainers",
    maintainer_email="maintainers@trt-infer-ros.org",
    description="Camera-topic object detection with TensorRT, CUDA graphs and DLA on ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"detector_node = {PACKAGE}.ros.entry_points:detector_node",
            f"image_source_node = {PACKAGE}.ros.entry_points:image_source_node",
            f"backbone_node = {PACKAGE}.ros.entry_points:backbone_node",
            f"head_node = {PACKAGE}.ros.entry_points:head_node",
            f"engine_builder_node = {PACKAGE}.ros.engine_builder_node:main",
            f"trt_infer_ros_int8 = {PACKAGE}.optimize.cli:main",
            f"trt_infer_ros_compress = {PACKAGE}.optimize.compress_cli:main",
            f"trt_infer_ros_bench = {PACKAGE}.bench.cli:main",
            f"trt_infer_ros_plot = {PACKAGE}.bench.plot_cli:main",
        ],
    },
)
