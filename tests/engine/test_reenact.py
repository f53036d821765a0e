from dataclasses import replace

import numpy as np
import pytest

from mmfa_studio.engine import ModelMotion, Motion, NoFaceFoundError, Reenactor, SyntheticSource, open_frame_source
from mmfa_studio.engine.reenact import tracked_change
from mmfa_studio.face import HeadPose


@pytest.fixture(scope="module")
def driving_frames():
    return list(SyntheticSource(fps=10, duration=0.6))  # the sample portrait moving: 6 frames


def test_relative_first_frame_is_the_source_itself(engine, prepared, driving_frames):
    with Reenactor(engine, prepared, smoothing=None) as re:
        first = re.process(driving_frames[0])
        assert first.face_found and re.has_reference
        m = first.motion
        assert m.relative and (m.yaw, m.pitch, m.roll, m.scale, m.tx, m.ty, m.tz) == (0, 0, 0, 1, 0, 0, 0)
        assert np.allclose(m.expression, prepared.expression, atol=1e-6)  # z_src + (z_ref − z_ref)
        zero = engine.render(prepared, Motion())
        assert np.allclose(first.frame.keypoints, zero.keypoints, atol=1e-3)
        later = [re.process(f) for f in driving_frames[1:]]
    assert all(r.face_found and r.frame.crop.shape == (64, 64, 3) for r in later)
    # the synthetic head rolls and moves: the box shift shows in the translation
    assert any(abs(r.motion.tx) > 1e-3 or abs(r.motion.ty) > 1e-3 for r in later)


def test_absolute_and_transfer_options(engine, prepared, driving_frames):
    with Reenactor(engine, prepared, mode="absolute", smoothing=None) as re:
        r = re.process(driving_frames[2])
        assert not r.motion.relative and r.motion.yaw == pytest.approx(r.driving_pose.yaw, abs=1e-4)
        assert np.allclose(r.motion.expression, r.driving_expression, atol=1e-6)
    with Reenactor(engine, prepared, transfer="pose", smoothing=None) as re:
        assert re.process(driving_frames[1]).motion.expression is None
    with Reenactor(engine, prepared, transfer="expression", smoothing=None) as re:
        re.process(driving_frames[0])
        m = re.process(driving_frames[3]).motion
        assert (m.yaw, m.pitch, m.roll, m.scale, m.tx, m.ty, m.tz) == (0, 0, 0, 1, 0, 0, 0) and m.expression is not None


def test_holding_the_position_keeps_the_head_in_place_while_turns_follow(engine, prepared, driving_frames):
    """follow_position=False: no shift or zoom (relative) or the source's own (absolute); turns still follow."""
    with Reenactor(engine, prepared, smoothing=None) as follow, \
            Reenactor(engine, prepared, smoothing=None, follow_position=False) as hold:
        moved = [follow.process(f).motion for f in driving_frames]
        held = [hold.process(f).motion for f in driving_frames]
    assert any(abs(m.tx) > 1e-3 or abs(m.ty) > 1e-3 for m in moved)  # the synthetic head moves across the frame
    for m, h in zip(moved, held):
        assert (h.scale, h.tx, h.ty, h.tz) == (1.0, 0.0, 0.0, 0.0)
        assert (h.yaw, h.pitch, h.roll) == pytest.approx((m.yaw, m.pitch, m.roll), abs=0.5)
    with Reenactor(engine, prepared, mode="absolute", smoothing=None) as absolute:
        absolute.configure(follow_position=False)
        a = absolute.process(driving_frames[2]).motion
    own = prepared.motion
    assert a.scale == pytest.approx(own.scale, abs=1e-5) and a.tx == pytest.approx(float(own.translation[0]), abs=1e-5)


def test_missing_face_repeats_the_last_frame_and_reference_resets(engine, prepared, driving_frames):
    blank = np.full((240, 320, 3), 90, np.uint8)
    # pose_from="model": the model reads the same frame identically twice; the video-mode tracker's second look
    # at a frame may differ by a fraction of a degree.
    with Reenactor(engine, prepared, smoothing=0.5, paste_back=True, pose_from="model") as re:
        none_yet = re.process(blank)
        assert not none_yet.face_found and none_yet.frame.full.shape == prepared.image.shape
        good = re.process(driving_frames[1])
        lost = re.process(blank)
        assert not lost.face_found and lost.driving_pose is None
        assert np.array_equal(lost.frame.crop, good.frame.crop)
        with pytest.raises(NoFaceFoundError, match="reference"):
            re.set_reference(blank)
        re.set_reference(driving_frames[4])
        after = re.process(driving_frames[4])
        assert after.motion.yaw == pytest.approx(0, abs=1e-6)  # the reference itself: no change
        re.set_reference(None)
        assert not re.has_reference


def test_smoothing_damps_a_jittering_driver(engine, prepared, driving_frames):
    jitter = [driving_frames[0], driving_frames[3]] * 4  # the head jumps back and forth every frame

    def swings(smoothing):
        with Reenactor(engine, prepared, smoothing=smoothing, fps=30) as re:
            motions = [re.process(f).motion for f in jitter]
        tail = motions[2:]
        return np.ptp([m.roll for m in tail]), np.ptp([m.tx for m in tail]) + np.ptp([m.ty for m in tail])

    raw_roll, raw_shift = swings(None)
    smooth_roll, smooth_shift = swings(1.0)
    assert raw_shift > 0
    assert smooth_shift < 0.5 * raw_shift and smooth_roll <= raw_roll


def test_bad_options_are_refused(engine, prepared):
    for kwargs, message in [({"mode": "sideways"}, "mode must be"), ({"transfer": "all"}, "transfer must be"),
                            ({"smoothing": 3.0}, "smoothing = 3")]:
        with pytest.raises(ValueError, match=message):
            Reenactor(engine, prepared, **kwargs)


def test_reenact_a_file_source(engine, prepared, ntsc_clip):
    with open_frame_source(ntsc_clip) as frames, Reenactor(engine, prepared, fps=frames.fps) as re:
        results = [re.process(f) for f in frames]
    assert len(results) == 12 and all(r.face_found for r in results)


def test_configure_changes_settings_live_and_keeps_the_reference(engine, prepared, driving_frames):
    with Reenactor(engine, prepared, smoothing=None) as re:
        re.process(driving_frames[0])  # becomes the neutral reference
        re.configure(transfer="pose", smoothing=0.5)
        assert re.has_reference and re.transfer == "pose" and re.smoothing == 0.5
        m = re.process(driving_frames[3]).motion
        assert m.expression is None  # the new transfer applies at once
        re.configure(transfer="expression", smoothing=None)
        m = re.process(driving_frames[0]).motion  # the reference frame again: no pose change
        assert (m.yaw, m.pitch, m.roll) == (0, 0, 0)
        re.configure(mode="absolute", paste_back=True)  # settings not given stay as they were
        assert (re.mode, re.transfer, re.smoothing, re.paste_back) == ("absolute", "expression", 0.0, True)
        re.configure(smoothing=0.3)
        assert (re.mode, re.transfer, re.smoothing, re.paste_back) == ("absolute", "expression", 0.3, True)
        with pytest.raises(ValueError, match="mode"):
            re.configure(mode="sideways")


def test_relative_head_turns_come_from_the_tracker_unless_asked_for_the_model(engine, prepared, driving_frames):
    """The bundled motion encoder reads few of a driver's turns (model card), so the tracker's angles drive them."""
    with Reenactor(engine, prepared, smoothing=None) as re:
        assert re.pose_from == "tracker"
        re.set_reference(driving_frames[0])
        reference = re._reference
        reading = re._read(driving_frames[3])
        tracked = reading.face.pose.as_array() - reference.face.pose.as_array()
        m = re.motion_for(reading)
        assert np.allclose([m.yaw, m.pitch, m.roll], tracked, atol=1e-4)
        change = tracked_change(reference.face, reading.face, reference.size)  # placement from the tracker too
        assert (m.scale, m.tx, m.ty, m.tz) == pytest.approx((change.scale, change.tx, change.ty, 0.0))
        re.configure(pose_from="model")
        m = re.motion_for(reading)
        read = reading.motion.pose.as_array() - reference.motion.pose.as_array()
        assert np.allclose([m.yaw, m.pitch, m.roll], read, atol=1e-4)
        with pytest.raises(ValueError, match="pose_from"):
            re.configure(pose_from="webcam")


def test_tracked_change_reads_zoom_shift_and_turns(engine, driving_frames):
    face = engine.tracker.detect(driving_frames[0])[0]
    assert tracked_change(face, face, 200.0) == ModelMotion()  # no movement: the zero edit (model angles)
    turned_and_shifted = replace(face, landmarks=face.landmarks[:, :2] + [10.0, -4.0],
                                 pose=HeadPose(face.pose.yaw + 5, face.pose.pitch, face.pose.roll - 3))
    change = tracked_change(face, turned_and_shifted, 200.0)
    assert change.relative and change.expression is None
    assert (change.yaw, change.pitch, change.roll) == pytest.approx((5.0, 0.0, -3.0), abs=1e-4)
    assert (change.tx, change.ty, change.tz) == pytest.approx((2 * 10.0 / 200, 2 * -4.0 / 200, 0.0), abs=1e-9)
    zoomed = replace(face, landmarks=1.25 * face.landmarks[:, :2])
    assert tracked_change(face, zoomed, 200.0).scale == pytest.approx(1.25, rel=1e-9)
    assert tracked_change(face, replace(turned_and_shifted, pose=None), 200.0) is None


def test_landmark_expression_ignores_the_heads_rigid_movement(engine, prepared, driving_frames):
    """expression_from='tracker': the synthetic driver's head moves rigidly, so the keypoint shift is tiny."""
    with Reenactor(engine, prepared, smoothing=None) as re:
        assert re.expression_from == "tracker"
        re.set_reference(driving_frames[0])
        reading = re._read(driving_frames[3])
        shift = re.keypoint_shift_for(reading)
        assert shift.shape == (prepared.encoding.keypoints.shape[1], 2)
        assert np.abs(shift).max() < 0.02  # normalised units: under 1 % of the crop
        assert re.process(driving_frames[3]).face_found  # renders with the shift
        for kwargs in ({"transfer": "pose"}, {"expression_from": "model"}):
            re.configure(**kwargs)
            assert re.keypoint_shift_for(reading) is None
            re.configure(transfer="both", expression_from="tracker")
        with pytest.raises(ValueError, match="expression_from"):
            re.configure(expression_from="webcam")


def test_landmark_expression_moves_the_keypoints_near_a_dropped_jaw(engine, driving_frames):
    from mmfa_studio.engine.reenact import LandmarkExpression
    from mmfa_studio.face.pose import canonical_face

    face = engine.tracker.detect(driving_frames[0])[0]
    size = driving_frames[0].shape[1]
    chin, forehead = face.landmarks[152, :2], face.landmarks[10, :2]
    expression = LandmarkExpression(face, np.stack([chin, forehead]), size)
    jaw = canonical_face().points[:, 1] > canonical_face().points[13, 1]  # below the upper lip
    drop = 0.05 * face.size
    dropped = face.landmarks.copy()
    dropped[jaw, 1] += drop
    shift = expression.keypoint_shift(face, replace(face, landmarks=dropped))
    full = 2 * drop / size  # the drop in normalised units
    assert 0.6 * full < shift[0, 1] < 1.1 * full and abs(shift[0, 0]) < 0.1 * full  # the chin's keypoint drops
    assert np.abs(shift[1]).max() < 0.1 * full  # the forehead's stays


def test_settings_are_one_validated_frozen_object(engine, prepared, driving_frames):
    from dataclasses import FrozenInstanceError

    from mmfa_studio.engine import ReenactSettings

    settings = ReenactSettings(transfer="pose", smoothing=None)
    assert settings.smoothing == 0.0 and settings.mode == "relative"
    with pytest.raises(FrozenInstanceError):
        settings.mode = "absolute"
    with pytest.raises(ValueError, match="unknown reenactment setting"):
        settings.with_changes(speed=2)
    with pytest.raises(ValueError, match="pose_from must be"):
        ReenactSettings(pose_from="webcam")
    with Reenactor(engine, prepared, settings) as re, \
            Reenactor(engine, prepared, transfer="pose", smoothing=None) as old:
        assert re.settings == old.settings == settings  # keyword arguments build the same settings
        assert re.process(driving_frames[1]).motion == old.process(driving_frames[1]).motion
        re.configure(settings.with_changes(mode="absolute"))
        assert re.mode == "absolute" and re.transfer == "pose"
        with pytest.raises(ValueError, match="mode must be"):
            re.configure(mode="sideways")
        assert re.settings.mode == "absolute"  # a refused change keeps the settings


def test_the_pipelined_stream_gives_what_frame_by_frame_gives(engine, prepared, driving_frames):
    """process_stream tracks frame n + 1 on another thread while n renders: the same results, in order, and
    stopping the stream early leaves nothing running."""
    with Reenactor(engine, prepared, smoothing=0.5) as one_by_one:
        expected = [one_by_one.process(f) for f in driving_frames]
    with Reenactor(engine, prepared, smoothing=0.5) as streamed:
        results = list(streamed.process_stream(iter(driving_frames)))
        assert len(results) == len(driving_frames)
        for a, b in zip(expected, results):
            assert a.face_found == b.face_found and a.motion == b.motion
            assert np.array_equal(a.frame.crop, b.frame.crop)
        stream = streamed.process_stream(driving_frames)
        next(stream)
        stream.close()  # early stop: the tracking thread is joined
        blank = np.zeros_like(driving_frames[0])
        assert [r.face_found for r in streamed.process_stream([driving_frames[0], blank])] == [True, False]


def test_a_failing_driver_surfaces_from_the_stream(engine, prepared, driving_frames):
    def frames():
        yield driving_frames[0]
        raise OSError("the camera went away")

    with Reenactor(engine, prepared) as re, pytest.raises(OSError, match="went away"):
        list(re.process_stream(frames()))


def test_a_stream_with_too_few_timestamps_says_so(engine, prepared, driving_frames):
    with Reenactor(engine, prepared) as re:
        assert len(list(re.process_stream(driving_frames[:2], timestamps=[0.0, 0.04]))) == 2
        with pytest.raises(ValueError, match="fewer timestamps than frames"):
            list(re.process_stream(driving_frames[:3], timestamps=[0.08]))


def test_default_smoothing_lets_a_blink_and_speech_through_and_steadies_jitter():
    """Default smoothing damps a still driver's jitter, but passes a blink (a tenth of a second) and a mouth that
    opens and closes five times a second: with slower speed terms it had cut a real driver's blink following
    from gain 0.79 to 0.50 (model card, stop 35)."""
    from mmfa_studio.engine.reenact import ReenactSettings, motion_smoothers

    fps, rng = 30.0, np.random.default_rng(0)
    times = np.arange(90) / fps

    def passed(group: str, signal: np.ndarray) -> np.ndarray:
        smoother = motion_smoothers(ReenactSettings().smoothing)[group]
        return np.array([smoother(np.array([v]), t)[0] for v, t in zip(signal, times)])

    blink = np.full(len(times), 0.30)
    blink[45:48] = [0.15, 0.05, 0.15]  # shut for one frame, as a real blink at 30 fps
    assert 0.30 - passed("eyes", blink).min() >= 0.7 * (0.30 - 0.05)
    jitter = 0.30 + rng.normal(0.0, 0.01, len(times))
    assert np.diff(passed("eyes", jitter)[30:]).std() < 0.7 * np.diff(jitter[30:]).std()

    speech = np.sin(2 * np.pi * 5.0 * times)  # the expression code's σ units, 5 Hz
    assert np.ptp(passed("expression", speech)[30:]) >= 0.8 * np.ptp(speech[30:])
