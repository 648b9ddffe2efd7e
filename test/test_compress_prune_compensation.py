"""Channel pruning with statistics from frames: a removed channel's mean (or its prediction from the
kept channels) moves into its consumers, so removing channels that carry a constant changes
nothing, while dropping them shifts everything downstream."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compress_graphs import run, small_detector
from trt_infer_ros.optimize.channel_stats import measure_channels
from trt_infer_ros.optimize.prune_structured import (RIDGE, analyze, apply, choose,
                                                     downstream_importance)

FLOAT32_EPS = np.finfo(np.float32).eps
# products summed on small_detector's deepest path (width 8): stem 3x3x3, depthwise 3x3,
# project 8, down 3x3x8, fuse 16, head 8
PATH_TERMS = 27 + 9 + 8 + 72 + 16 + 8


def _constant_channels(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """small_detector with the lowest channels of each group made constant over any input: their
    producing filters zeroed (the output is the bias) and every 3x3 tap that reads them reduced
    to the centre, so zero padding does not make the border differ. Returns the model and the
    constant channels per group's producing output."""
    inits = {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer}
    constant = {"s0": [1, 5], "g2": [2], "q0": [0, 6], "f0": [3, 4]}
    for c in constant["s0"]:                    # stem, project and SE gate share this group
        for name in ("w0", "w1", "wse2"):
            inits[name][c] = 0
        centre = inits["wd"][c, 0, 1, 1]
        inits["wd"][c] = 0
        inits["wd"][c, 0, 1, 1] = centre
        centre = inits["w2"][:, c, 1, 1].copy()
        inits["w2"][:, c] = 0
        inits["w2"][:, c, 1, 1] = centre
    inits["wse1"][constant["g2"]] = 0
    inits["w2"][constant["q0"]] = 0
    inits["w3"][constant["f0"]] = 0
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.initializer[:]
    out.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    return out, constant


@pytest.mark.parametrize("covariance", [False, True])
def test_removing_constant_channels_keeps_the_outputs(covariance):
    model, constant = _constant_channels(small_detector(seed=3))
    rng = np.random.default_rng(0)
    frames = [rng.random((1, 3, 16, 16)).astype(np.float32) * 2 - 1 for _ in range(6)]
    stats = measure_channels(model, frames, covariance=covariance)
    plan = choose(model, analyze(model), 0.25, stats=stats)
    for tensor, channels in constant.items():      # the constant channels are ranked lowest
        assert set(plan.removed[plan.layout[tensor][0][0]]) == set(channels)
    folded, dropped = apply(model, plan, stats), apply(model, plan)
    x = rng.random((1, 3, 16, 16)).astype(np.float32) * 2 - 1
    reference = run(model, x)
    for name in ("heat", "box"):
        scale = float(np.abs(reference[name]).max())
        # float32 rounding of the sums along the deepest path is the only difference the folding
        # may leave: at most one rounding per product summed, relative to the output's scale
        tolerance = PATH_TERMS * FLOAT32_EPS * scale
        folded_error = float(np.abs(run(folded, x)[name] - reference[name]).max())
        dropped_error = float(np.abs(run(dropped, x)[name] - reference[name]).max())
        assert folded_error <= tolerance, (name, folded_error, tolerance)
        assert dropped_error > 100 * tolerance, (name, dropped_error, tolerance)


def test_removed_channel_predicted_from_kept_ones():
    """A removed channel that is a linear function of kept channels is reproduced by moving its
    weights onto them: the consumer's output does not change."""
    model = small_detector(seed=1)
    inits = {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer}
    # the fuse conv reads c0 = concat(r0, q2); make down's channel 0 twice its channel 1
    inits["w2"][0], inits["b2"][0] = inits["w2"][1] * 2, inits["b2"][1] * 2
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    rng = np.random.default_rng(2)
    frames = [rng.random((1, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    stats = measure_channels(model, frames, ["c0"], covariance=True)
    plan = analyze(model)
    space = plan.layout["q0"][0][0]
    plan.spaces[space].keep = np.arange(1, plan.spaces[space].size)
    plan.removed[space] = np.array([0])
    x = rng.random((1, 3, 16, 16)).astype(np.float32)
    reference = run(model, x)["heat"]
    error = float(np.abs(run(apply(model, plan, stats), x)["heat"] - reference).max())
    mean_only = measure_channels(model, frames, ["c0"])
    error_mean = float(np.abs(run(apply(model, plan, mean_only), x)["heat"] - reference).max())
    scale = float(np.abs(reference).max())
    # the fit's ridge (RIDGE of the kept channels' variance) shrinks the prediction by about
    # that fraction; replacing the channel by its mean alone leaves its whole variation out
    assert error <= RIDGE * scale
    assert error_mean > 100 * RIDGE * scale


def test_global_ranking_counts_tied_channels_one_by_one():
    """Constant (and dead) channels all score 0; a global cut must still remove the asked
    number, and only channels scoring no more than every kept one."""
    model, _ = _constant_channels(small_detector(seed=3))
    rng = np.random.default_rng(0)
    frames = [rng.random((1, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    stats = measure_channels(model, frames)
    plan = choose(model, analyze(model), 0.2, global_ranking=True, stats=stats)
    total = sum(plan.spaces[s].size for s in plan.prunable())
    assert plan.channels_removed() == int(0.2 * total)
    removed, kept = [], []
    for sid in plan.prunable():
        score = downstream_importance(model, plan, sid, stats)
        removed += list(score[plan.removed[sid]])
        kept += list(score[plan.spaces[sid].keep])
    assert max(removed) <= min(kept)
