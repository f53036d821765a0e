"""Motion → render target: the eager path and the CUDA-graph path share one definition and give the same numbers.

The CUDA graph itself needs a GPU; what it captures (``_GraphStep``: one packed row → target → render) runs
anywhere, so it is checked here against eager rendering on the CPU.
"""

import numpy as np
import pytest
import torch

from mmfa_studio.engine import ModelMotion, Motion
from mmfa_studio.engine.core import _GraphStep
from mmfa_studio.engine.detail import DetailParts, render_detail
from mmfa_studio.engine.target import TargetLayout, pack_targets

FIELDS = ("yaw", "pitch", "roll", "scale", "translation", "delta")


def _motions_and_shifts(engine, prepared):
    k = prepared.encoding.keypoints.shape[1]
    rng = np.random.default_rng(0)
    z = tuple(float(v) for v in engine.expressions.sample(3))
    motions = [Motion(), Motion(yaw=12, pitch=-7, roll=3, scale=1.2, tx=0.05, ty=-0.03, tz=0.01),
               Motion(expression=z, expression_strength=0.6), ModelMotion(yaw=-20, expression=z),
               Motion(yaw=5, pitch=4, roll=-3, scale=0.9, tx=-0.1, ty=0.2, tz=0.0, relative=False)]
    shifts = [None, rng.normal(0, 0.02, (k, 2))]
    pairs = [(m, o) for m in motions for o in shifts]
    return [engine.pose_calibration.to_model_motion(m) for m, _ in pairs], [o for _, o in pairs]


def _graph_target(step, prepared, motion, shift):
    step.row.copy_(torch.from_numpy(pack_targets(prepared.motion, [motion], step.layout, [shift])))
    return step.target()


def test_eager_and_graph_paths_give_the_same_target(engine, prepared):
    motions, shifts = _motions_and_shifts(engine, prepared)
    step = _GraphStep(engine, prepared, torch.device("cpu"))
    with torch.inference_mode():
        eager = engine.target_motion(prepared, motions, shifts)
        for i, (motion, shift) in enumerate(zip(motions, shifts)):
            graphed = _graph_target(step, prepared, motion, shift)
            for name in FIELDS:
                a, b = getattr(eager, name)[i:i + 1], getattr(graphed, name)
                assert a.dtype == b.dtype and a.shape == b.shape, name
                assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (i, name)
        # The zero edit is exactly the source's own target on both paths.
        own = prepared.encoding.own_motion
        zero = ModelMotion()
        for target in (engine.target_motion(prepared, [zero]), _graph_target(step, prepared, zero, None)):
            for name in FIELDS:
                assert torch.equal(getattr(target, name), getattr(own, name)), name


def test_a_keypoint_shift_moves_the_keypoints_by_itself_on_both_paths(engine, prepared):
    motions, shifts = _motions_and_shifts(engine, prepared)
    step = _GraphStep(engine, prepared, torch.device("cpu"))
    half = engine.image_size / 2  # normalised units span 2 across the crop
    for motion, shift in zip(motions, shifts):
        eager = engine.render(prepared, motion, keypoint_shift=shift)
        with torch.inference_mode():
            step.row.copy_(torch.from_numpy(pack_targets(prepared.motion, [motion], step.layout, [shift])))
            crop, keypoints, parts = step()
        assert np.allclose(keypoints[0].numpy(), eager.keypoints, atol=1e-4)
        assert np.abs(crop[0].numpy().astype(int) - eager.crop.astype(int)).max() <= 1
        detail = render_detail(prepared.detail, DetailParts.from_tensors(parts))  # the graph keeps its parts
        assert np.abs(detail.astype(int) - eager.detail.astype(int)).max() <= 1
        if shift is not None:
            plain = engine.render(prepared, motion).keypoints
            assert np.allclose(eager.keypoints - plain, shift * half, atol=1e-3)


def test_a_target_takes_model_angles_only(engine, prepared):
    layout = TargetLayout.of(prepared.encoding)
    assert layout.width == 8 + engine.latent_dim + 2 * engine.config.num_keypoints
    with pytest.raises(TypeError, match="ModelMotion"):
        pack_targets(prepared.motion, [Motion(yaw=10)], layout)  # the user's degrees skip the calibration: refused
    with pytest.raises(ValueError, match="2 keypoint shifts for 1 motions"):
        pack_targets(prepared.motion, [ModelMotion()], layout, [None, None])
