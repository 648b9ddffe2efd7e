"""engine_builder_node: ROS parameters in, a TensorRT engine + sidecar out, then exit.

    ros2 run trt_infer_ros engine_builder_node --ros-args -p onnx:=model.onnx -p precision:=int8 \
        -p calibration_images:=/data/calib -p dla_core:=0
    ros2 launch trt_infer_ros build_engine.launch.py onnx:=model.onnx

The same entry point is a plain command-line tool when given options instead of --ros-args
(`engine_builder_node --onnx model.onnx --precision fp16`, see trt_infer_ros.engine.cli);
`--help` prints the parameters in either form. Parameters are declared from
trt_infer_ros.engine.options.PARAMETERS with type, range/choices and description; a parameter
the node does not have is an error naming the closest real one. Exit statuses: cli.EXIT_MEANINGS
(0 built / up to date, 1 build failed, 2 bad parameters, 3 no TensorRT, 4 mismatch, 130/143
interrupted).
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from trt_infer_ros.engine import cli
from trt_infer_ros.engine.options import (PARAMETERS, BuildConfigError, BuildOptions, ParamDef,
                                         unknown_parameter_problems)


def _descriptor(p: ParamDef):
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    types = {str: ParameterType.PARAMETER_STRING, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, bool: ParameterType.PARAMETER_BOOL,
             list: ParameterType.PARAMETER_STRING_ARRAY}
    d = ParameterDescriptor(description=p.description, type=types[p.type], read_only=True)
    if p.int_range is not None:
        d.integer_range = [IntegerRange(from_value=p.int_range[0], to_value=p.int_range[1],
                                        step=1)]
    if p.float_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(p.float_range[0]),
                                                     to_value=float(p.float_range[1]))]
    if p.choices is not None:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    return d


def declare_build_parameters(node) -> BuildOptions:
    """Declare every build parameter on `node` and return the options they hold."""
    from rclpy.parameter import Parameter
    values = {}
    for p in PARAMETERS:
        default = Parameter.Type.STRING_ARRAY if p.type is list else p.default
        value = node.declare_parameter(p.name, default, _descriptor(p)).value
        values[p.name] = list(value) if p.type is list and value is not None else \
            ([] if p.type is list else value)
    return BuildOptions.from_mapping(values)


def undeclared_overrides(node) -> list[str]:
    """Parameters given to the node (-p, parameter files) that it does not have: rclpy keeps
    them aside silently, so a misspelled name would otherwise change nothing."""
    overrides = getattr(node, "_parameter_overrides", {})
    return sorted(name for name in overrides if not node.has_parameter(name))


def ros_argument_problems(args: Sequence[str]) -> list[tuple[str, str]]:
    """The -p arguments rcl cannot parse: it reads each value as YAML."""
    import yaml  # noqa: PLC0415
    problems = []
    for flag, item in zip(args, args[1:]):
        if flag not in ("-p", "--param"):
            continue
        if ":=" not in item:
            problems.append((item, f"'{flag} {item}' is not name:=value"))
            continue
        name, value = item.split(":=", 1)
        try:
            yaml.safe_load(value)
        except yaml.YAMLError:
            problems.append((name, f"the value {value!r} is not valid YAML, which is how ROS "
                                   f"reads -p values; quote it: -p '{name}:=\"{value}\"'"))
    return problems


def init_rclpy(args: Sequence[str]) -> None:
    """rclpy.init without its signal handlers (run_interruptible owns SIGINT/SIGTERM); a ROS
    argument rcl refuses becomes a BuildConfigError naming it."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # noqa: BLE001 - rclpy raises its RCLError for any refused argument
        problems = ros_argument_problems(args) or [("--ros-args", f"rcl refused them: {exc}")]
        raise BuildConfigError(problems) from None


def run_node(args: Optional[Sequence[str]] = None, trt=None) -> int:
    import rclpy
    from rclpy.exceptions import ParameterException
    args = list(args or [cli.NODE_NAME])
    try:
        init_rclpy(args)
    except BuildConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return cli.EXIT_BAD_PARAMETERS
    node = rclpy.create_node(cli.NODE_NAME)
    logger = node.get_logger()
    try:
        try:
            options = declare_build_parameters(node)
            unknown = undeclared_overrides(node)
            if unknown:
                raise BuildConfigError(unknown_parameter_problems(unknown))
        except (ParameterException, BuildConfigError) as exc:
            logger.error(f"bad parameter: {exc}")
            return cli.EXIT_BAD_PARAMETERS
        status = cli.run(options, log=logger.info, error=logger.error, trt=trt)
        (logger.info if status == cli.EXIT_OK else logger.error)(
            f"engine_builder_node exits with status {status}: {cli.exit_meaning(status)}")
        return status
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _wants_ros(argv: Sequence[str]) -> bool:
    if "--ros-args" in argv:
        return True
    if any(a.startswith("--") for a in argv):
        return False
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True


def _wants_help(argv: Sequence[str]) -> bool:
    return "-h" in argv or "--help" in argv


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _wants_help(argv):
        print(cli.help_text())
        return cli.EXIT_OK
    if not _wants_ros(argv):
        return cli.main(argv)
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        print(f"ERROR: --ros-args given but rclpy cannot be imported ({exc}); source your ROS "
              "setup, or pass the options as --onnx ... --precision ... instead",
              file=sys.stderr)
        return cli.EXIT_BAD_PARAMETERS
    return cli.run_interruptible(lambda: run_node([cli.NODE_NAME] + argv))


if __name__ == "__main__":
    sys.exit(main())
