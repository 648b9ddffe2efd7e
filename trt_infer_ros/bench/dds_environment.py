"""The environment a benchmarked process gets for one DDS transport choice.

Names are Fast DDS's builtin transport modes (`FASTDDS_BUILTIN_TRANSPORTS`: DEFAULT, SHM,
UDPv4, LARGE_DATA) plus CAMERA_FRAMES, this package's participant profile for frames on one host
(config/fastdds_camera_frames.xml through `FASTDDS_DEFAULT_PROFILES_FILE`).
"""
from __future__ import annotations

import os

from trt_infer_ros.resources import fastdds_camera_profile

PROFILES = {"CAMERA_FRAMES": fastdds_camera_profile}
# Fast DDS's BuiltinTransports modes that carry data (NONE carries nothing).
BUILTIN_TRANSPORTS = ("DEFAULT", "DEFAULTv6", "SHM", "UDPv4", "UDPv6", "LARGE_DATA",
                      "LARGE_DATAv6", "P2P")
TRANSPORTS = BUILTIN_TRANSPORTS + tuple(PROFILES)


def dds_environment(transport: str, base=None) -> dict:
    """A copy of `base` (os.environ) set up for `transport`; the two settings never mix. An
    unknown name is refused: Fast DDS would fall back to its default with only a log line."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown DDS transport {transport!r}; one of {', '.join(TRANSPORTS)}")
    env = dict(os.environ if base is None else base)
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if transport in PROFILES:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILES[transport]())
    else:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = transport
    return env


def describe(env=None) -> str:
    """One line naming the transport settings in `env`."""
    env = os.environ if env is None else env
    if env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        return f"Fast DDS profile {env['FASTDDS_DEFAULT_PROFILES_FILE']}"
    return f"FASTDDS_BUILTIN_TRANSPORTS={env.get('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT')}"
