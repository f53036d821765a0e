import json
import math

import numpy as np
import pytest

from mmfa_studio.engine import MOTION_RANGES, KeyframeAnimation, Motion, parse_expression_list


@pytest.mark.parametrize("field", sorted(MOTION_RANGES))
def test_each_out_of_range_field_is_named_with_its_range(field):
    low, high = MOTION_RANGES[field]
    for bad in (high + 1, low - 1, math.nan):
        with pytest.raises(ValueError, match=rf"^{field} = .* out of range \[{low:g}, {high:g}\]"):
            Motion(**{field: bad}).validate()
    Motion(**{field: high}).validate()  # the ends themselves are allowed


def test_expression_checks():
    with pytest.raises(ValueError, match="3 values; this model's latent has 4"):
        Motion(expression=(0.0, 1.0, 2.0)).validate(latent_dim=4)
    with pytest.raises(ValueError, match=r"expression\[1\] = 50"):
        Motion(expression=(0.0, 50.0)).validate()
    with pytest.raises(ValueError, match="empty"):
        Motion(expression=()).validate()
    assert Motion(expression=np.array([1, 2], dtype=np.float32)).expression == (1.0, 2.0)  # arrays normalised


def test_dict_round_trip_and_refusals():
    m = Motion(yaw=12.5, scale=1.2, tz=-0.1, expression=(0.5, -1.0), expression_strength=0.7, relative=False)
    assert Motion.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    assert Motion.from_dict({}) == Motion()
    with pytest.raises(ValueError, match="unknown motion field.*yawn"):
        Motion.from_dict({"yawn": 3})
    with pytest.raises(ValueError, match="yaw must be a number"):
        Motion.from_dict({"yaw": "left"})
    with pytest.raises(ValueError, match="relative must be true or false"):
        Motion.from_dict({"relative": 1})


def test_lerp_ends_midpoints_and_one_sided_expression():
    a = Motion(yaw=-10, scale=0.5, expression=(1.0, 0.0))
    b = Motion(yaw=30, scale=2.0, expression=(0.0, 1.0), expression_strength=0.0)
    assert Motion.lerp(a, b, 0.0) == a and Motion.lerp(a, b, 1.0) == b
    mid = Motion.lerp(a, b, 0.5)
    assert mid.yaw == pytest.approx(10) and mid.scale == pytest.approx(1.0)  # scale is geometric
    assert mid.expression == pytest.approx((0.5, 0.5)) and mid.expression_strength == pytest.approx(0.5)
    slerp = Motion.lerp(a, b, 0.5, "slerp")
    assert np.linalg.norm(slerp.expression) == pytest.approx(1.0)  # on the arc between two unit latents
    # source expression (None) → latent: the latent is faded in by its strength
    fade = Motion.lerp(Motion(), Motion(expression=(2.0, 2.0)), 0.25)
    assert fade.expression == (2.0, 2.0) and fade.expression_strength == pytest.approx(0.25)
    with pytest.raises(ValueError, match="linear' or 'slerp"):
        Motion.lerp(a, b, 0.5, "cubic")


def test_keyframes_parse_sample_and_refuse(tmp_path):
    data = {"fps": 10, "keyframes": [{"time": 0, "motion": {}}, {"time": 1.0, "motion": {"yaw": 20}},
                                     {"time": 2.0, "motion": {"yaw": -20, "pitch": 4}}]}
    anim = KeyframeAnimation.from_json(data)
    assert anim.frame_count == 21 and anim.total_duration == 2.0
    assert anim.motion_at(0.5).yaw == pytest.approx(10)
    assert anim.motion_at(1.5).yaw == pytest.approx(0) and anim.motion_at(1.5).pitch == pytest.approx(2)
    assert anim.motion_at(99).yaw == -20  # held after the last keyframe
    motions = anim.motions()
    assert len(motions) == 21 and motions[10].yaw == pytest.approx(20)
    assert KeyframeAnimation.from_json(data["keyframes"]).fps == 25  # a bare list works too
    for bad, message in [
        ({"keyframes": []}, "at least one keyframe"),
        ([{"time": 1}, {"time": 1}], "increase strictly"),
        ([{"time": 0, "motion": {"yaw": "x"}}], "keyframe 0: yaw must be a number"),
        ([{"motion": {}}], "keyframe 0 must be an object with a 'time'"),
        ({"keyframes": [{"time": 0}], "speed": 2}, "unknown key"),
        ({"keyframes": [{"time": 0}], "fps": 0}, "fps = 0 is out of range"),
        ([{"time": 0, "motion": {"yaw": 10**400}}], "keyframe 0: yaw must be a number"),  # no float holds it
        ([{"time": 0, "motion": {"expression": [10**400]}}], "expression must be a list of numbers"),
        ([{"time": 10**400}], "keyframe 0: time must be a number"),
        ({"keyframes": [{"time": 0}], "duration": 10**400}, "duration must be a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            KeyframeAnimation.from_json(bad)
    with pytest.raises(ValueError, match=r"keyframe 1 \(time 1 s\): yaw = 120"):
        KeyframeAnimation.from_json([{"time": 0}, {"time": 1, "motion": {"yaw": 120}}]).validate()
    broken = tmp_path / "k.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        KeyframeAnimation.load(broken)


def test_parse_expression_list():
    assert parse_expression_list("0.5, -1,2e-1") == (0.5, -1.0, 0.2)
    with pytest.raises(ValueError, match=r"item 2 \('x'\) is not a number"):
        parse_expression_list("1,x")


def test_a_motion_read_from_a_face_is_clamped_into_the_valid_ranges():
    """A tracker reading past the typed ranges (here a far translation) must not abort evaluate or reenact."""
    from mmfa_studio.motion import EXPRESSION_LIMIT, MOTION_RANGES, Motion

    m = Motion.clamped(yaw=120.0, pitch=-3.0, roll=0.0, scale=9.0, tx=2.7, ty=-5.0, tz=0.1,
                       expression=[25.0, -0.5], relative=False)
    assert (m.yaw, m.tx, m.ty, m.scale) == (MOTION_RANGES["yaw"][1], MOTION_RANGES["tx"][1], MOTION_RANGES["ty"][0],
                                            MOTION_RANGES["scale"][1])
    assert m.pitch == -3.0 and m.expression == (EXPRESSION_LIMIT, -0.5) and not m.relative
    assert m.validate(latent_dim=2) is m


def test_motion_py_is_torch_free_even_when_it_interpolates_latents():
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from mmfa_studio.motion import KeyframeAnimation, Keyframe, Motion; "
            "a = KeyframeAnimation((Keyframe(0, Motion(expression=(1.0, 0.0))),"
            " Keyframe(1, Motion(expression=(0.0, 1.0)))), interpolation='slerp'); a.motion_at(0.5); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    root = str(Path(__file__).resolve().parents[2])  # this checkout's package, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_latent_interpolation_agrees_with_the_models():
    import torch

    from mmfa_studio.model import interpolate
    from mmfa_studio.motion import interpolate_latents

    rng = np.random.default_rng(1)
    z0, z1 = rng.normal(size=(1, 6)), rng.normal(size=(1, 6))
    ts = np.linspace(0, 1, 7)
    for mode in ("linear", "slerp"):
        ours = interpolate_latents(z0, z1, ts, mode)
        theirs = interpolate(torch.as_tensor(z0).expand(7, -1), torch.as_tensor(z1).expand(7, -1),
                             torch.as_tensor(ts), mode)
        assert np.allclose(ours, theirs.numpy(), atol=1e-12)
        assert np.array_equal(ours[0], z0[0]) and np.array_equal(ours[-1], z1[0])  # exact at both ends


def test_field_groups_and_ranges_are_read_off_motion():
    from dataclasses import replace

    from mmfa_studio.motion import POSE_FIELDS, SHIFT_FIELDS, TURN_FIELDS, ModelMotion

    assert TURN_FIELDS == ("yaw", "pitch", "roll") and SHIFT_FIELDS == ("tx", "ty", "tz")
    assert POSE_FIELDS == (*TURN_FIELDS, "scale", *SHIFT_FIELDS)
    assert list(MOTION_RANGES) == [*POSE_FIELDS, "expression_strength"] and MOTION_RANGES["roll"] == (-180.0, 180.0)
    model = Motion(yaw=5, expression=(1.0,)).as_model_angles()
    assert isinstance(model, ModelMotion) and model.turn == (5, 0.0, 0.0) and model != Motion(yaw=5, expression=(1.0,))
    assert ModelMotion().is_identity() and replace(model, yaw=0.0).expression == (1.0,)
