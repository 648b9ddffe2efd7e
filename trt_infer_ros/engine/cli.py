"""Command line for engine building: the same options as engine_builder_node's parameters.

    python -m trt_infer_ros.engine.cli --onnx models/centernet_mobilenetv3_coco.onnx \
        --precision fp16 --timing_cache ~/.cache/trt_infer_ros/timing.cache

Options come from options.PARAMETERS (underscore or dash spelling); `--params-file build.yaml`
reads a ROS 2 parameter file (engine_builder_node: ros__parameters: ...) first, and command-line
options override it. Exit status: 0 built or up to date, 2 bad parameters, 3 TensorRT missing,
4 existing engine mismatched (on_mismatch error), 1 build failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Optional, Sequence

from trt_infer_ros.engine.options import PARAMETERS, BuildConfigError, BuildOptions

EXIT_OK, EXIT_BUILD_FAILED, EXIT_BAD_PARAMETERS, EXIT_NO_TENSORRT, EXIT_MISMATCH = 0, 1, 2, 3, 4
NODE_NAME = "engine_builder_node"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine_builder_node",
        description="Build a TensorRT engine (+ sidecar JSON) from an ONNX model.")
    parser.add_argument("--params-file", default="", help="ROS 2 parameter YAML to read first")
    for p in PARAMETERS:
        names = [f"--{p.name}"] + ([f"--{p.name.replace('_', '-')}"] if "_" in p.name else [])
        help_text = p.description + (f" [default: {p.default!r}]" if p.default not in ("", [])
                                     else "")
        if p.type is bool:
            parser.add_argument(*names, dest=p.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        elif p.type is list:
            parser.add_argument(*names, dest=p.name, action="extend", nargs="+", default=None,
                                help=help_text)
        else:
            parser.add_argument(*names, dest=p.name, type=p.type, default=None,
                                choices=p.choices, help=help_text)
    return parser


def read_params_file(path: str, node_name: str = NODE_NAME) -> dict:
    import yaml  # noqa: PLC0415
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    for key in (node_name, f"/{node_name}", "/**"):
        if key in data and "ros__parameters" in data[key]:
            return dict(data[key]["ros__parameters"])
    raise BuildConfigError([("params_file", f"{path!r} has no '{node_name}: ros__parameters:' "
                                            "section")])


def options_from_args(argv: Optional[Sequence[str]] = None) -> BuildOptions:
    args = make_parser().parse_args(argv)
    values: dict = {}
    if args.params_file:
        values.update(read_params_file(args.params_file))
    for p in PARAMETERS:
        given = getattr(args, p.name)
        if given is not None:
            values[p.name] = given
    return BuildOptions.from_mapping(values)


def run(options: BuildOptions, log: Callable[[str], None],
        error: Callable[[str], None], trt=None) -> int:
    """Build and map every outcome to an exit status with a message a new user can act on."""
    from trt_infer_ros.engine.builder import BuildError, build_engine  # noqa: PLC0415
    from trt_infer_ros.engine.engine_loader import EngineMismatchError  # noqa: PLC0415
    from trt_infer_ros.engine.trt_compat import TensorRTUnavailable  # noqa: PLC0415
    try:
        result = build_engine(options, trt=trt, log=log)
    except BuildConfigError as exc:
        error(str(exc))
        return EXIT_BAD_PARAMETERS
    except TensorRTUnavailable as exc:
        error(f"cannot build: {exc}")
        return EXIT_NO_TENSORRT
    except EngineMismatchError as exc:
        error(str(exc))
        return EXIT_MISMATCH
    except BuildError as exc:
        error(str(exc))
        return EXIT_BUILD_FAILED
    state = "built" if result.built else "up to date"
    log(f"engine {state}: {result.engine_path}")
    for warning in result.warnings:
        log(f"warning: {warning}")
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[engine_builder] %(message)s")
    try:
        options = options_from_args(argv)
    except BuildConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_PARAMETERS
    return run(options, log=lambda m: print(m, flush=True),
               error=lambda m: print(f"ERROR: {m}", file=sys.stderr, flush=True))


if __name__ == "__main__":
    raise SystemExit(main())
