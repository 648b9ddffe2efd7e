"""The detection pipeline cut in two: a backbone stage and a head stage (ROS-free).

BackboneStage: image -> preprocess -> backbone model -> feature tensors by name + transform.
HeadStage: feature tensors + transform -> head model -> decode, class filter, NMS -> detections
in source pixels. Both use DetectionPipeline's own stages (`prepare_input`,
`finish_detections`), so the pair returns what the whole model returns through
DetectionPipeline, up to the runtimes' own arithmetic.

The model adapter (input spec, decoding, class names) always comes from the whole model's ONNX;
the two runners run the backbone and head files (ONNX or engines) from `engine/split_cache.py`
or the engine builder's split build.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from trt_infer_ros.backends.factory import create_runner
from trt_infer_ros.engine.model_facts import input_facts
from trt_infer_ros.models.registry import create_adapter
from trt_infer_ros.models.spec import Detections, ImageTransform
from trt_infer_ros.pipeline.detector import finish_detections, prepare_input
from trt_infer_ros.pipeline.settings import DetectionSettings
from trt_infer_ros.transport.bundle import TensorSpec


class BackboneStage:
    def __init__(self, adapter, runner) -> None:
        spec, shape = adapter.input_spec, tuple(runner.input_shape)
        if len(shape) == 4 and all(d > 0 for d in shape) and shape != spec.shape:
            raise ValueError(f"the backbone input is {list(shape)} but the "
                             f"{adapter.model_type} preprocessing produces {list(spec.shape)}")
        self.adapter, self.runner = adapter, runner
        self.output_specs: Optional[dict] = None      # known after the first frame

    def __call__(self, image: np.ndarray, encoding: str,
                 outputs: Optional[Mapping[str, np.ndarray]] = None) -> tuple[dict, ImageTransform]:
        """Features by name and the letterbox. `outputs`: arrays to write the features into
        (a shared-memory slot's views), used where the runner can (`run_into`)."""
        tensor, transform = prepare_input(self.adapter, self.runner, image, encoding)
        if outputs is not None and hasattr(self.runner, "run_into"):
            results = self.runner.run_into(tensor, outputs)
        else:
            results = self.runner.run(tensor)
        features = dict(zip(self.runner.output_names, results))
        # The layout of the next frame's slot: the backbone's input size is fixed.
        self.output_specs = {n: TensorSpec(a.shape, a.dtype) for n, a in features.items()}
        return features, transform

    def close(self) -> None:
        self.runner.close()


class CutMismatch(ValueError):
    """The backbone sends other tensors than this head takes (the two were given different cuts
    or models)."""


class HeadStage:
    """`settings` is read on every call (live tuning); `nonfinite_dropped` as in
    DetectionPipeline."""

    def __init__(self, adapter, runner, settings: Optional[DetectionSettings] = None,
                 input_names: Optional[Sequence[str]] = None,
                 model_path: Optional[str] = None) -> None:
        self.adapter, self.runner = adapter, runner
        self.settings = settings if settings is not None else DetectionSettings()
        self.nonfinite_dropped = 0
        # The head's inputs are the cut tensors (split_model keeps their order).
        # Unknown (a head engine given without its cut): every tensor of the bundle is fed.
        names = input_names or getattr(runner, "input_names", None)
        self.input_names = list(names) if names else None
        declared = declared_inputs(model_path) if model_path else None
        self._declared = declared if declared and not self.missing_inputs(declared) else None

    def missing_inputs(self, names) -> list:
        """Head inputs a bundle with tensors `names` lacks."""
        return [n for n in self.input_names or () if n not in names]

    def __call__(self, features: Mapping[str, np.ndarray],
                 transform: ImageTransform) -> Detections:
        missing = self.missing_inputs(features)
        if missing:
            raise CutMismatch(f"the backbone sends tensors {sorted(features)} but this head "
                              f"takes {self.input_names}: give backbone_node and head_node the "
                              f"same model_path and cut_tensors")
        wrong = self._wrong_shapes(features)
        if wrong:
            raise CutMismatch(f"the backbone sends {', '.join(wrong)}: give backbone_node and "
                              f"head_node the same model_path and input_size")
        outputs = self.run_model(features)
        result, dropped = finish_detections(self.adapter, outputs, transform, self.settings)
        self.nonfinite_dropped += dropped
        return result

    def run_model(self, features: Mapping[str, np.ndarray]) -> list:
        """The head model's raw outputs for the cut tensors `features`."""
        names = self.input_names or list(features)
        first_name = self.runner.input_name if self.runner.input_name in names else names[0]
        first = features[first_name]
        rest = {n: features[n] for n in names if n != first_name}
        return self.runner.run(first, rest) if rest else self.runner.run(first)

    def blank_features(self) -> Optional[dict]:
        """Zero tensors for every head input as its model file declares them (a warm-up before
        the first bundle); None where the file does not fix them (an engine, a dynamic
        dimension)."""
        if self._declared is None:
            return None
        return {n: np.zeros(shape, dtype) for n, (shape, dtype) in self._declared.items()}

    def _wrong_shapes(self, features: Mapping[str, np.ndarray]) -> list:
        return [f"{n} as {list(features[n].shape)} (this head takes {list(shape)})"
                for n, (shape, _) in (self._declared or {}).items()
                if n in features and tuple(features[n].shape) != shape]

    def close(self) -> None:
        self.runner.close()


def declared_inputs(model_path: str) -> Optional[dict]:
    """{input name: (shape, numpy dtype)} as an ONNX file declares its inputs; None for
    another file (an engine) or where a dimension is left open."""
    if not str(model_path).lower().endswith(".onnx"):
        return None
    import onnx

    inputs = input_facts(onnx.load(model_path, load_external_data=False).graph)
    if any(not t.shape or min(t.shape) < 0 or t.dtype.startswith("onnx:") for t in inputs):
        return None
    return {t.name: (t.shape, np.dtype(t.dtype)) for t in inputs}


def _adapter(model_path: str, model_type: str, adapter_kwargs: dict):
    return create_adapter(model_type, model_path, **adapter_kwargs)


def build_backbone(model_path: str, backbone_path: str, model_type: str = "auto",
                   backend: str = "auto", device: Optional[str] = None,
                   **adapter_kwargs) -> BackboneStage:
    """`model_path`: the whole model's ONNX (input spec); `backbone_path`: what runs."""
    runner = create_runner(backend, backbone_path, device=device)
    try:
        return BackboneStage(_adapter(model_path, model_type, adapter_kwargs), runner)
    except Exception:
        runner.close()
        raise


def build_head(model_path: str, head_path: str, model_type: str = "auto",
               backend: str = "auto", device: Optional[str] = None,
               settings: Optional[DetectionSettings] = None,
               input_names: Optional[Sequence[str]] = None, **adapter_kwargs) -> HeadStage:
    runner = create_runner(backend, head_path, device=device)
    try:
        adapter = _adapter(model_path, model_type, adapter_kwargs)
        if hasattr(adapter, "set_output_names"):
            adapter.set_output_names(runner.output_names)
        return HeadStage(adapter, runner, settings, input_names, head_path)
    except Exception:
        runner.close()
        raise
