"""Pose calibration: fitting the inverse response, applying it to commanded edits only, storing it in a checkpoint."""

import numpy as np
import pytest

from mmfa_studio.checkpoint import read_info, save_with_metadata
from mmfa_studio.engine import Engine, ModelLoadError, ModelMotion, Motion, Reenactor, SyntheticSource
from mmfa_studio.engine.calibration import METADATA_KEY, PoseCalibration
from mmfa_studio.engine.target import TargetLayout, pack_targets

# A model that turns yaw by 0.7 of the angle up to 20°, then less and less (the bundled model's kind of response).
RESPONSE = {"yaw": {-30: -12.0, -20: -14.0, -10: -7.0, 10: 7.0, 20: 14.0, 30: 16.0, 40: 16.2}}


def test_fit_inverts_the_response_up_to_the_models_reach():
    cal = PoseCalibration.fit(RESPONSE)
    assert cal.yaw == ((-14.0, -20.0), (-7.0, -10.0), (0.0, 0.0), (7.0, 10.0), (14.0, 20.0), (16.0, 30.0))
    assert cal.to_model(7, 0, 0) == (10.0, 0.0, 0.0)  # pitch and roll: no table, identity
    assert cal.to_model(3.5, 5, -4)[0] == pytest.approx(5.0)
    assert cal.to_model(15, 0, 0)[0] == pytest.approx(25.0)
    # Past the reach the model angle stays at the farthest one that still turned the face further: the -30° that
    # turned less than -20° and the +40° that added only 0.2° are not used.
    assert cal.to_model(-25, 0, 0)[0] == -20.0 and cal.to_model(45, 0, 0)[0] == 30.0
    assert PoseCalibration().is_identity and PoseCalibration().to_model(12, -3, 4) == (12, -3, 4)
    assert cal.reach("yaw") == (-14.0, 16.0) and cal.reach("pitch") is None
    with pytest.raises(ValueError, match="does not turn yaw at any measured negative angle"):
        PoseCalibration.fit({"yaw": {-10: 0.1, 10: 7.0}})


def test_bad_tables_are_refused_in_one_line():
    for table, message in ((((0, 0), (5, 4), (4, 8)), "increase"), (((1, 1), (5, 4)), r"\(0, 0\)")):
        with pytest.raises(ValueError, match=message):
            PoseCalibration(yaw=table)
    for data in ([1, 2], {"tilt": []}, {"yaw": [[0, 0], ["a", 3]]}, {"yaw": 5}):
        with pytest.raises(ValueError, match="pose calibration"):
            PoseCalibration.from_dict(data)
    cal = PoseCalibration.fit(RESPONSE)
    assert PoseCalibration.from_dict(cal.to_dict()) == cal


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tiny_checkpoint):
    """The tiny model with a calibration that asks for twice the yaw and half the pitch."""
    path = tmp_path_factory.mktemp("cal") / "calibrated.safetensors"
    table = {"yaw": [[-45, -90], [0, 0], [45, 90]], "pitch": [[-90, -45], [0, 0], [90, 45]]}
    save_with_metadata(tiny_checkpoint, path, {METADATA_KEY: table})
    assert read_info(path).config == read_info(tiny_checkpoint).config
    eng = Engine.load(path, device="cpu", precision="fp32")
    yield eng
    eng.close()


def test_commanded_edits_are_calibrated_and_model_angles_are_not(engine, calibrated, sample_portrait):
    plain, cal = engine.prepare_source(sample_portrait), calibrated.prepare_source(sample_portrait)
    asked = calibrated.render(cal, Motion(yaw=10, pitch=20, roll=5)).keypoints
    assert np.allclose(asked, engine.render(plain, Motion(yaw=20, pitch=10, roll=5)).keypoints, atol=1e-4)
    raw = calibrated.render(cal, ModelMotion(yaw=10, pitch=20, roll=5)).keypoints
    assert np.allclose(raw, engine.render(plain, Motion(yaw=10, pitch=20, roll=5)).keypoints, atol=1e-4)
    assert not np.allclose(raw, asked, atol=1e-2)
    m = cal.motion  # an absolute pose is in model angles already
    absolute = Motion(yaw=m.yaw + 10, pitch=m.pitch, roll=m.roll, scale=m.scale, tx=float(m.translation[0]),
                      ty=float(m.translation[1]), tz=float(m.translation[2]), relative=False)
    assert np.allclose(calibrated.render(cal, absolute).keypoints, engine.render(plain, absolute).keypoints, atol=1e-3)
    # the CUDA-graph path packs the same model angles
    model_motion = calibrated.pose_calibration.to_model_motion(Motion(yaw=10, pitch=20))
    packed = pack_targets(cal.motion, [model_motion], TargetLayout.of(cal.encoding))[0]
    assert packed[:2] == pytest.approx([m.yaw + 20, m.pitch + 10], abs=1e-4)


def test_reenactment_takes_the_drivers_turns_uncalibrated(engine, calibrated, sample_portrait):
    frames = list(SyntheticSource(fps=10, duration=0.4))
    outputs = []
    for eng in (engine, calibrated):
        with Reenactor(eng, eng.prepare_source(sample_portrait), smoothing=None) as re:
            outputs.append([re.process(f) for f in frames])
    assert any(abs(r.motion.yaw) > 0.5 for r in outputs[0])  # the driver turns, so a calibration would show
    for a, b in zip(*outputs):
        assert np.allclose(a.frame.keypoints, b.frame.keypoints, atol=1e-3)


def test_a_bad_calibration_in_a_checkpoint_is_a_load_error(tmp_path, tiny_checkpoint):
    path = tmp_path / "bad.safetensors"
    save_with_metadata(tiny_checkpoint, path, {METADATA_KEY: {"yaw": [[0, 0], [10, -5]]}})
    with pytest.raises(ModelLoadError, match="bad.safetensors: bad pose calibration"):
        Engine.load(path, device="cpu", precision="fp32")
