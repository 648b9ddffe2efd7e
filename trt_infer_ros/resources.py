"""Where the installed package keeps its data (models, photos, config)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "trt_infer_ros"
DEFAULT_MODEL_FILE = "centernet_mobilenetv3_coco.onnx"


def share_dir() -> Path:
    """share/trt_infer_ros of an installed package, else the source checkout's root."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parent.parent


def default_model_path() -> Path:
    return share_dir() / "models" / DEFAULT_MODEL_FILE


def sample_images_dir() -> Path:
    return share_dir() / "data" / "images"


def fastdds_camera_profile() -> Path:
    """The Fast DDS profile for camera frames on one host (config/fastdds_camera_frames.xml)."""
    return share_dir() / "config" / "fastdds_camera_frames.xml"


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/trt_infer_ros (~/.cache/trt_infer_ros): measurements and derived models
    that later starts reuse."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / PACKAGE
