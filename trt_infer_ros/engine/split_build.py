"""One command, two engines: the backbone and the head of one ONNX (engine_builder `split`).

The ONNX is cut (engine/split_cache.py: the given cut or the suggested one), then the backbone
is built with every option as given (DLA core, GPU fallback, precision, calibration on the
camera images it takes) and the head on the GPU. The head's inputs are feature maps, not images,
so image calibration cannot feed it: an int8/best request builds the head in fp16.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace


from trt_infer_ros.engine.options import BuildOptions
from trt_infer_ros.engine.split_cache import split_files


@dataclass
class SplitBuildResult:
    backbone: object            # BuildResult
    head: object
    cut_tensors: tuple


def _beside(engine: str, part: str) -> str:
    if not engine:
        return ""                # the builder names it from the part's ONNX and settings
    root, ext = os.path.splitext(engine)
    return f"{root}.{part}{ext or '.engine'}"


def build_split(options: BuildOptions, trt=None, device=None, log=None,
                **build_kwargs) -> SplitBuildResult:
    from trt_infer_ros.engine.builder import build_engine

    log = log or print
    cache = options.cache_dir or os.path.dirname(os.path.abspath(options.onnx))
    files = split_files(options.onnx, options.cut_tensors, cache)
    log(f"split {options.onnx} at {', '.join(files.cut_tensors)}"
        f"{' (reused)' if files.reused else ''}: {files.backbone}, {files.head}")
    backbone_options = replace(options, onnx=files.backbone, split=False, cut_tensors=[],
                               engine=_beside(options.engine, "backbone"))
    head_precision = "fp16" if options.precision in ("int8", "best") else options.precision
    if head_precision != options.precision:
        log(f"head: {options.precision} needs image calibration, which cannot feed feature "
            "maps; the head is built in fp16")
    head_options = replace(options, onnx=files.head, split=False, cut_tensors=[],
                           engine=_beside(options.engine, "head"), dla_core=-1,
                           precision=head_precision, input_name="", input_shape="",
                           min_shape="", opt_shape="", max_shape="", calibration_images="",
                           calibration_bag="", calibration_topic="", calibration_cache="",
                           layer_precisions=[])
    backbone = build_engine(backbone_options, trt=trt, device=device, log=log, **build_kwargs)
    head = build_engine(head_options, trt=trt, device=device, log=log, **build_kwargs)
    return SplitBuildResult(backbone, head, files.cut_tensors)


def summary(result: SplitBuildResult) -> list:
    """What the CLI prints after a split build: the node parameters that run it."""
    return [f"backbone engine: {result.backbone.engine_path}",
            f"head engine:     {result.head.engine_path}",
            f"run them: backbone_node -p backbone_model:={result.backbone.engine_path}, "
            f"head_node -p head_model:={result.head.engine_path} "
            f"-p cut_tensors:={','.join(result.cut_tensors)}"]
