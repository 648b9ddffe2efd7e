"""argparse types shared by the package's commands: a value out of range, an unknown name or a
missing file is refused with one sentence (argparse's usage line and exit status 2), before any
work starts."""
from __future__ import annotations

import argparse
import math
from typing import Callable, Optional


def number(kind: type, low: float, high: Optional[float] = None, low_inclusive: bool = True,
           high_inclusive: bool = True) -> Callable[[str], float]:
    """`kind` (int or float), finite, from `low` to `high` (each end in or out of the range)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        in_range = (math.isfinite(value) and (value >= low if low_inclusive else value > low)
                    and (high is None or (value <= high if high_inclusive else value < high)))
        if not in_range:
            bound = f"{'>=' if low_inclusive else '>'} {low:g}"
            if high is not None:
                bound += f" and {'<=' if high_inclusive else '<'} {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bound}")
        return value
    return parse


def names(choices: tuple, what: str) -> Callable[[str], str]:
    """A comma-separated list of `choices`, returned normalised ('a,b')."""
    def parse(text: str) -> str:
        given = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in given if v not in choices]
        if not given or unknown:
            raise argparse.ArgumentTypeError(
                f"{what}: {', '.join(unknown) or 'none given'}; choose from {', '.join(choices)}")
        return ",".join(given)
    return parse


def size(text: str) -> str:
    """WIDTHxHEIGHT with positive sides, or 'native'."""
    from trt_infer_ros.bench.frames import parse_size
    try:
        parsed = parse_size(text.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return "native" if parsed is None else f"{parsed[0]}x{parsed[1]}"


def sizes(text: str) -> str:
    """A comma-separated list of WIDTHxHEIGHT ('native' is not a size to send)."""
    given = [v.strip() for v in text.split(",") if v.strip()]
    if not given:
        raise argparse.ArgumentTypeError("no size given, e.g. 1280x720")
    return ",".join(_size_to_send(value) for value in given)


def _size_to_send(value: str) -> str:
    try:
        normalised = size(value)
    except argparse.ArgumentTypeError:
        normalised = "native"
    if normalised == "native":
        raise argparse.ArgumentTypeError(f"size {value!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    return normalised


def model_file(text: str) -> str:
    """A readable file; an .onnx one must parse as ONNX (an engine is read by its runtime)."""
    from trt_infer_ros.engine.model_facts import read_model_facts
    from trt_infer_ros.engine.options import file_problem

    problem = file_problem(text, "a model file")
    if problem:
        raise argparse.ArgumentTypeError(problem)
    if text.lower().endswith(".onnx"):
        try:
            read_model_facts(text)
        except Exception as err:  # noqa: BLE001 - any decode error means "not an ONNX model"
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an ONNX model (onnx cannot parse it: {err})") from None
    return text


def directory(text: str) -> str:
    from trt_infer_ros.engine.options import directory_problem

    problem = directory_problem(text, "a directory of images")
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def assignment(text: str) -> str:
    """NAME=VALUE (a node parameter)."""
    name, equals, _ = text.partition("=")
    if not equals or not name.strip() or " " in name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. backend=onnxruntime")
    return text
