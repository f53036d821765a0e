"""evaluate: metric functions on known inputs, the report's keys and null reasons, the CLI's bad inputs."""

import json

import numpy as np
import pytest

from mmfa_studio.cli import main
from mmfa_studio.eval.evaluate import KEYS, RECON_KEYS, ClipResult, summarise
from mmfa_studio.eval.metrics import cosine, l1, psnr, ssim


def test_pixel_metrics_on_known_inputs():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 51, np.uint8)  # 0.2 in [0, 1] units
    assert l1(a, b) == pytest.approx(0.2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 51**2))
    assert psnr(a, a) == float("inf")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, 255 - img) < 0.1
    assert cosine(np.array([1.0, 0]), np.array([0.0, 2])) == pytest.approx(0.0)


def test_summary_has_exactly_the_documented_keys_and_weights_by_frames():
    full = {k: 1.0 for k in KEYS}
    half = {k: 3.0 for k in KEYS}
    results = [
        ClipResult("a.mp4", 1, full, {k: 2.0 for k in RECON_KEYS}),
        ClipResult("b.mp4", 3, half, {k: 2.0 for k in RECON_KEYS}),
        ClipResult("c.mp4", 0, {k: None for k in KEYS}, {k: None for k in RECON_KEYS}, ["no face found"]),
    ]
    report = summarise(results, {"aed": "dlib missing"})
    for key in KEYS + ("frames", "clips"):
        assert key in report
    assert report["l1"] == pytest.approx((1 * 1 + 3 * 3) / 4)  # frame-weighted
    assert report["pose_error_deg"] == pytest.approx(2.0)  # median over clips
    assert report["frames"] == 4 and report["clips"] == 2
    assert report["unavailable"] == {"aed": "dlib missing"}
    assert [c["clip"] for c in report["per_clip"]] == ["a.mp4", "b.mp4", "c.mp4"]
    assert report["per_clip"][2]["notes"] == ["no face found"]
    json.dumps(report)  # serialisable as is


def test_evaluate_refuses_missing_or_empty_data(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path)]) == 2
    assert "no videos" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_one_real_clip_end_to_end(shared_data, tiny_checkpoint, tmp_path, capsys):
    """The whole pipeline on a short real clip with the tiny random model: every key present, values sane."""
    data = tmp_path / "clips"
    data.mkdir()
    (data / "clip.mp4").symlink_to(shared_data / "videos" / "liveportrait__d18.mp4")
    out = tmp_path / "report.json"
    rc = main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(data), "--frames", "2",
               "--device", "cpu", "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["clips"] == 1 and report["frames"] == 2 and report["motion"] == "tracker"
    assert report["pose_calibration"] is None  # the tiny model has none: its pose edits are model angles
    assert 0 < report["l1"] < 1 and report["psnr"] > 0
    assert 0 < report["baseline_copy_source"]["l1"] < report["l1"]  # a random model is worse than copying
    for region in ("mouth_l1", "eyes_l1"):  # the driver's mouth and eyes, measured by its mesh
        assert 0 < report["baseline_copy_source"][region] < report[region]
    for key in KEYS:
        assert key in report and (report[key] is not None or key in report["unavailable"] or key in ("akd",))


def test_an_unreadable_clip_is_reported_not_fatal(tmp_path, tiny_checkpoint):
    from mmfa_studio.engine import Engine
    from mmfa_studio.eval.evaluate import EvalSettings, Evaluator

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    engine = Engine.load(tiny_checkpoint, device="cpu", precision="fp32")
    try:
        result = Evaluator(engine, EvalSettings(frames_per_clip=2)).evaluate_clip(bad)
    finally:
        engine.close()
    assert result.frames == 0 and result.notes[0].startswith("unreadable:")
    assert all(v is None for v in result.model.values())


def test_driving_motion_is_read_as_reenactment_reads_it(tiny_checkpoint, sample_portrait):
    """motion="tracker": the tracker's change since the source plus the model's expression (relative);
    motion="model", or no tracked face: the model's absolute reading."""
    from dataclasses import replace

    from mmfa_studio.engine import Engine
    from mmfa_studio.engine.reenact import tracked_change
    from mmfa_studio.eval.evaluate import EvalSettings, Evaluator

    with pytest.raises(ValueError, match="motion must be"):
        EvalSettings(motion="webcam")
    engine = Engine.load(tiny_checkpoint, device="cpu", precision="fp32")
    try:
        face = engine.detect_faces(sample_portrait)[0]
        moved = replace(face, landmarks=face.landmarks[:, :2] + [6.0, -3.0])
        source = engine.prepare_source(sample_portrait)
        crop = source.crop
        read = engine.read_crop_motion(crop)
        tracker = Evaluator(engine, EvalSettings(motion="tracker"))
        m = tracker._driving_motion(crop, source, face, moved)
        assert m == replace(tracked_change(face, moved, engine.image_size), expression=tuple(read.expression))
        assert m.relative and (m.tx, m.ty) == pytest.approx((12.0 / 64, -6.0 / 64))
        for motion in (tracker._driving_motion(crop, source, face, None),
                       Evaluator(engine, EvalSettings(motion="model"))._driving_motion(crop, source, face, moved)):
            assert not motion.relative and motion.yaw == pytest.approx(read.yaw, abs=1e-3)
    finally:
        engine.close()


def test_spread_frames_are_the_evenly_spaced_ones_without_holding_the_whole_clip(tmp_path, sample_portrait):
    import tracemalloc

    from engine.clips import face_clip  # tests/engine/clips.py
    from mmfa_studio.engine import VideoFileSource
    from mmfa_studio.eval.evaluate import read_spread_frames

    clip = face_clip(tmp_path / "clip.mp4", sample_portrait, frames=40, audio=False, size=160)
    with VideoFileSource(clip) as source:
        every = list(source)
    expected = [every[i] for i in np.linspace(0, len(every) - 1, 5).round().astype(int)]
    frame_bytes = every[0].nbytes
    del every
    tracemalloc.start()
    try:
        picked = read_spread_frames(clip, 4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(picked) == 5 and all(np.array_equal(a, b) for a, b in zip(picked, expected))
    assert peak < 15 * frame_bytes  # 5 picks and a few in flight, not all 40
    assert len(read_spread_frames(clip, 60)) == 40  # a short clip: every frame


def test_expression_following_figures_and_their_summary():
    from mmfa_studio.eval.evaluate import Following, LargeTurns

    driver = [0.0, 0.1, 0.2, 0.3, 0.4]
    half = Following(driver, [0.05 * i for i in range(5)])  # follows at half the driver's change
    assert half.figures()["r"] == pytest.approx(1.0) and half.figures()["gain"] == pytest.approx(0.5)
    still = Following(driver, [0.0] * 5)  # copying the source
    assert still.figures() == {"r": 0.0, "gain": 0.0, "frames": 5}
    assert Following([0.1] * 4, [0.2] * 4).figures()["r"] is None  # a driver that never moves says nothing
    full = {k: 1.0 for k in KEYS}
    a = ClipResult("a.mp4", 5, dict(full), {k: 2.0 for k in RECON_KEYS}, mouth=half, eyes=still,
                   large_turns=LargeTurns(2, {k: 1.0 for k in RECON_KEYS}, {k: 2.0 for k in RECON_KEYS}))
    b = ClipResult("b.mp4", 5, dict(full), {k: 2.0 for k in RECON_KEYS}, mouth=still, eyes=still)
    report = summarise([a, b], {})
    assert report["expression_following"]["mouth"]["frames"] == 10
    assert report["expression_following"]["mouth"]["gain"] == pytest.approx(0.25)  # pooled over both clips
    turns = report["large_turn"]
    assert turns["frames"] == 2 and turns["clips"] == 1 and turns["lpips"] == 1.0
    assert turns["baseline_copy_source"]["lpips"] == 2.0 and turns["lpips_gain_over_copy"] == pytest.approx(0.5)
    assert report["per_clip"][1]["large_turn"]["frames"] == 0
    json.dumps(report)


def test_large_turns_drive_the_most_frontal_frame_by_the_turned_ones(tiny_checkpoint, sample_portrait):
    """Source = the frame with the smallest |yaw| + |pitch|; driving = the frames ≥ 12° from it; each compared
    with its own real frame, beside copying the frontal one."""
    from dataclasses import replace

    from mmfa_studio.engine import Engine
    from mmfa_studio.eval.evaluate import EvalSettings, Evaluator
    from mmfa_studio.face import HeadPose

    engine = Engine.load(tiny_checkpoint, device="cpu", precision="fp32")
    try:
        crop = engine.prepare_source(sample_portrait).crop
        face = engine.tracker.detect(crop)[0]
        posed = lambda yaw, pitch: (replace(face, pose=HeadPose(yaw, pitch, 0.0)), None)
        crops = [np.roll(crop, 3 * i, axis=1) for i in range(4)]  # four different "frames"
        measured = [posed(20, 0), posed(2, 1), posed(8, 0), posed(-15, 0)]
        evaluator = Evaluator(engine, EvalSettings(frames_per_clip=3, controls=False))
        turns = evaluator._large_turns(crops, measured, "clip")
        assert turns.frames == 2  # 18° and 17° from the frontal frame; 6° is not a large turn
        assert turns.baseline["l1"] == pytest.approx(np.mean([np.abs(crops[1] / 255.0 - crops[i] / 255.0).mean()
                                                              for i in (0, 3)]), abs=1e-6)
        assert turns.model["l1"] is not None
        assert evaluator._large_turns(crops[:2], measured[1:3], "clip").frames == 0
    finally:
        engine.close()


def test_expression_from_a_photo_is_measured_against_the_photo_beside_copying():
    from mmfa_studio.eval.evaluate import FromPhoto
    from mmfa_studio.face.measures import ExpressionMeasures

    photo = FromPhoto(photo=ExpressionMeasures(eye_open=0.3, mouth_open=0.4),
                      output=ExpressionMeasures(eye_open=0.27, mouth_open=0.3),
                      source=ExpressionMeasures(eye_open=0.3, mouth_open=0.0))
    assert photo.errors("mouth_open") == pytest.approx({"output": 0.25, "copy": 1.0})
    assert photo.errors("eye_open") == pytest.approx({"output": 0.1, "copy": 0.0})
    full = {k: 1.0 for k in KEYS}
    report = summarise([ClipResult("a.mp4", 3, dict(full), {k: 2.0 for k in RECON_KEYS}, from_photo=photo),
                        ClipResult("b.mp4", 3, dict(full), {k: 2.0 for k in RECON_KEYS})], {})
    assert report["expression_from_photo"]["clips"] == 1
    assert report["expression_from_photo"]["mouth_open_relative_error"] == pytest.approx(0.25)
    assert report["expression_from_photo"]["baseline_copy_source"]["mouth_open_relative_error"] == pytest.approx(1.0)
    assert report["per_clip"][0]["expression_from_photo"]["photo"]["mouth_open"] == 0.4
    json.dumps(report)
