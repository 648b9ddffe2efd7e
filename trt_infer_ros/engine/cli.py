"""Command line for engine building: the same options as engine_builder_node's parameters.

    python -m trt_infer_ros.engine.cli --onnx models/centernet_mobilenetv3_coco.onnx \
        --precision fp16 --timing_cache ~/.cache/trt_infer_ros/timing.cache

Options come from options.PARAMETERS (underscore or dash spelling); `--params-file build.yaml`
reads a ROS 2 parameter file (engine_builder_node: ros__parameters: ...) first, and command-line
options override it. Exit statuses: see EXIT_MEANINGS.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Callable, Optional, Sequence

from trt_infer_ros.engine.options import (PARAMETERS, BuildConfigError, BuildOptions,
                                         unknown_parameter_problems)

EXIT_OK, EXIT_BUILD_FAILED, EXIT_BAD_PARAMETERS, EXIT_NO_TENSORRT, EXIT_MISMATCH = 0, 1, 2, 3, 4
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_MEANINGS = {
    EXIT_OK: "engine built or already up to date",
    EXIT_BUILD_FAILED: "TensorRT failed to build the engine (its errors are in the log)",
    EXIT_BAD_PARAMETERS: "bad parameters (the log names each one and what to do)",
    EXIT_NO_TENSORRT: "TensorRT is not available here",
    EXIT_MISMATCH: "an existing engine does not match its settings (on_mismatch is error)",
    **{128 + s: f"interrupted by {signal.Signals(s).name}" for s in INTERRUPT_SIGNALS},
}
NODE_NAME = "engine_builder_node"

EPILOG = """\
as a ROS 2 node, every option above is a parameter of the same name:
  ros2 run trt_infer_ros engine_builder_node --ros-args -p onnx:=model.onnx -p precision:=int8 \\
      -p calibration_images:=/data/calib -p plugins:="['libmy_plugin.so']"
  ros2 launch trt_infer_ros build_engine.launch.py onnx:=model.onnx

exit statuses:
""" + "\n".join(f"  {status:3d}  {meaning}" for status, meaning in EXIT_MEANINGS.items())


def exit_meaning(status: int) -> str:
    """What an engine_builder_node exit status means (a negative one: killed by that signal)."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return EXIT_MEANINGS.get(status, "unexpected failure (see the log above)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine_builder_node",
        description="Build a TensorRT engine (+ sidecar JSON) from an ONNX model.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)     # the ROS form has no abbreviations; a typo must not pass as one
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


def help_text() -> str:
    return make_parser().format_help()


def read_params_file(path: str, node_name: str = NODE_NAME) -> dict:
    import yaml  # noqa: PLC0415
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    for key in (node_name, f"/{node_name}", "/**"):
        if key in data and "ros__parameters" in data[key]:
            return dict(data[key]["ros__parameters"])
    raise BuildConfigError([("params_file", f"{path!r} has no '{node_name}: ros__parameters:' "
                                            "section")])


def unknown_option_names(extra: Sequence[str]) -> list[str]:
    """'--precison=fp16' -> 'precison': the names of options argparse did not know."""
    return [a.lstrip("-").split("=", 1)[0].replace("-", "_") for a in extra if a.startswith("-")]


def options_from_args(argv: Optional[Sequence[str]] = None) -> BuildOptions:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        names = unknown_option_names(extra)
        if not names:
            parser.error(f"unexpected arguments: {' '.join(extra)}")
        raise BuildConfigError(unknown_parameter_problems(names))
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
    from trt_infer_ros.engine.onnx_split import SplitError  # noqa: PLC0415
    from trt_infer_ros.engine.trt_compat import TensorRTUnavailable  # noqa: PLC0415
    try:
        if options.split:
            from trt_infer_ros.engine.split_build import build_split, summary  # noqa: PLC0415
            for line in summary(build_split(options, trt=trt, log=log)):
                log(line)
            return EXIT_OK
        result = build_engine(options, trt=trt, log=log)
    except BuildConfigError as exc:
        error(str(exc))
        return EXIT_BAD_PARAMETERS
    except SplitError as exc:
        error(f"engine build parameters are not usable:\n  - cut_tensors: {exc}")
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


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, frame):
    for s in INTERRUPT_SIGNALS:          # a second Ctrl-C must not break the clean-up
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def run_interruptible(work: Callable[[], int], program: str = NODE_NAME,
                      stopped: str = "the build was stopped") -> int:
    """`work()`, ended by SIGINT/SIGTERM with one line and status 128 + signal, no traceback."""
    previous = {s: signal.signal(s, _raise_interrupted) for s in INTERRUPT_SIGNALS}
    try:
        return work()
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        status = 128 + signum
        print(f"{program}: {exit_meaning(status)}; {stopped} (exit status {status})",
              file=sys.stderr, flush=True)
        return status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _main(argv: Optional[Sequence[str]]) -> int:
    logging.basicConfig(level=logging.INFO, format="[engine_builder] %(message)s")
    try:
        options = options_from_args(argv)
    except BuildConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_PARAMETERS
    return run(options, log=lambda m: print(m, flush=True),
               error=lambda m: print(f"ERROR: {m}", file=sys.stderr, flush=True))


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_interruptible(lambda: _main(argv))


if __name__ == "__main__":
    raise SystemExit(main())
