import threading

import numpy as np
import pytest
import torch

from mmfa_studio.engine import (
    Engine,
    InvalidMotionError,
    ModelLoadError,
    Motion,
    NoFaceFoundError,
    SourceImageError,
    resolve_precision,
)


def source_keypoints_px(engine, prepared):
    kp = prepared.encoding.keypoints[0, :, :2].float().numpy()
    return (kp + 1.0) * engine.image_size / 2 - 0.5


def test_loading_refuses_bad_checkpoints_devices_and_precisions(tmp_path, tiny_checkpoint):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Engine.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ModelLoadError, match="not a valid MMFA Studio checkpoint|not a safetensors"):
        Engine.load(junk)
    for header in (b"[]", b'{"__metadata__": "x"}',
                   b'{"__metadata__": {"format": "mmfa-studio/1", "config": "{}", "metadata": "3"}}'):
        junk.write_bytes(len(header).to_bytes(8, "little") + header)  # JSON, but not the objects expected
        with pytest.raises(ModelLoadError, match="not a valid MMFA Studio checkpoint"):
            Engine.load(junk)
    with pytest.raises(ModelLoadError, match="unknown device"):
        Engine.load(tiny_checkpoint, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            Engine.load(tiny_checkpoint, device="cuda")
    with pytest.raises(ModelLoadError, match="fp16 is for GPUs"):
        Engine.load(tiny_checkpoint, device="cpu", precision="fp16")
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("cpu")) in ("bf16", "fp32")


def test_engine_properties(engine):
    assert engine.device == "cpu" and engine.precision == "fp32"
    assert engine.image_size == 64 and engine.latent_dim == engine.config.latent_dim == 4


def test_prepare_source_crops_encodes_and_caches(engine, prepared, sample_portrait):
    assert prepared.crop.shape == (64, 64, 3) and prepared.crop.dtype == np.uint8
    assert prepared.image.shape == (512, 512, 3) and len(prepared.faces) >= 1 and prepared.face_index == 0
    assert prepared.expression.shape == (4,) and np.isfinite(prepared.expression).all()
    assert all(np.isfinite(v) for v in (prepared.pose.yaw, prepared.pose.pitch, prepared.pose.roll))
    assert engine.prepare_source(sample_portrait) is prepared  # cached
    # the same pixels as an array hit the cache too
    assert engine.prepare_source(prepared.image.copy()) is prepared


def test_prepare_source_bad_inputs(engine, tmp_path):
    with pytest.raises(SourceImageError, match="not found"):
        engine.prepare_source(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(SourceImageError, match="not an image"):
        engine.prepare_source(text)
    with pytest.raises(NoFaceFoundError, match="no face found"):
        engine.prepare_source(np.full((120, 160, 3), 128, np.uint8))
    with pytest.raises(SourceImageError, match="H×W×3 uint8"):
        engine.prepare_source(np.zeros((32, 32), np.float32))


def test_face_index_out_of_range(engine, sample_portrait):
    with pytest.raises(NoFaceFoundError, match="there is no face number 7"):
        engine.prepare_source(sample_portrait, face_index=7)


def test_zero_edit_keeps_the_source_keypoints_exactly(engine, prepared):
    frame = engine.render(prepared, Motion())
    assert frame.crop.shape == (64, 64, 3) and frame.full is None
    assert np.array_equal(frame.keypoints, source_keypoints_px(engine, prepared))
    # the absolute motion equal to the source's own pose gives the same keypoints (to float rounding)
    m = prepared.motion
    absolute = Motion(yaw=m.yaw, pitch=m.pitch, roll=m.roll, scale=m.scale, tx=float(m.translation[0]),
                      ty=float(m.translation[1]), tz=float(m.translation[2]), relative=False)
    assert np.allclose(engine.render(prepared, absolute).keypoints, frame.keypoints, atol=1e-3)
    # strength 0 of any expression = the source's expression
    z = engine.expressions.sample(3)
    zero_strength = engine.render(prepared, Motion(expression=tuple(z), expression_strength=0.0))
    assert np.allclose(zero_strength.keypoints, frame.keypoints, atol=1e-4)


def test_rendering_is_deterministic_and_batches_agree(engine, prepared):
    motions = [Motion(yaw=15), Motion(pitch=-10, roll=5), Motion(scale=1.2, tx=0.1),
               Motion(expression=tuple(engine.expressions.sample(1)))]
    a = [engine.render(prepared, m) for m in motions]
    b = [engine.render(prepared, m) for m in motions]
    assert all(np.array_equal(x.crop, y.crop) and np.array_equal(x.keypoints, y.keypoints) for x, y in zip(a, b))
    batch = engine.render_batch(prepared, motions, batch_size=3)
    assert len(batch) == 4
    for single, batched in zip(a, batch):
        assert np.abs(single.crop.astype(int) - batched.crop.astype(int)).max() <= 1
        assert np.allclose(single.keypoints, batched.keypoints, atol=1e-3)


def test_pose_edits_move_the_keypoints_as_the_conventions_say(engine, prepared):
    base = engine.render(prepared, Motion()).keypoints
    right = engine.render(prepared, Motion(tx=0.2)).keypoints
    assert np.allclose(right - base, [0.2 * engine.image_size / 2, 0.0], atol=1e-3)  # tx: +x, whole pixels
    down = engine.render(prepared, Motion(ty=-0.1)).keypoints
    assert np.allclose(down - base, [0.0, -0.1 * engine.image_size / 2], atol=1e-3)
    bigger = engine.render(prepared, Motion(scale=1.5)).keypoints
    centre = (base.mean(0) - source_keypoints_px(engine, prepared).mean(0))  # zero: same keypoints
    assert np.allclose(centre, 0)
    assert np.std(bigger) != pytest.approx(np.std(base))
    turned = engine.render(prepared, Motion(roll=30)).keypoints
    assert not np.allclose(turned, base, atol=1e-2)


def test_paste_back_changes_only_the_face_region(engine, prepared):
    frame = engine.render(prepared, Motion(yaw=20), paste_back=True)
    assert frame.full.shape == prepared.image.shape and frame.full.dtype == np.uint8
    box = prepared.transform.box  # cx, cy, side in photo pixels
    x0, y0 = int(box[0] - box[2] / 2) - 2, int(box[1] - box[2] / 2) - 2
    outside = np.ones(prepared.image.shape[:2], bool)
    outside[max(y0, 0):int(y0 + box[2]) + 5, max(x0, 0):int(x0 + box[2]) + 5] = False
    assert np.array_equal(frame.full[outside], prepared.image[outside])


def test_out_of_range_motion_is_refused(engine, prepared):
    with pytest.raises(InvalidMotionError, match=r"yaw = 120 is out of range"):
        engine.render(prepared, Motion(yaw=120))
    with pytest.raises(ValueError, match="motion 1: .*latent has 4"):
        engine.render_batch(prepared, [Motion(), Motion(expression=(1.0, 2.0))])


def test_expression_tools(engine, prepared, sample_portrait):
    z = engine.expressions.encode(sample_portrait)
    assert z.shape == (4,) and np.allclose(z, prepared.expression, atol=1e-5)  # same crop, same code
    a, b = engine.expressions.sample(1), engine.expressions.sample(2)
    assert np.array_equal(a, engine.expressions.sample(1)) and not np.array_equal(a, b)
    for mode in ("linear", "slerp"):
        path = engine.expressions.interpolate(a, b, np.linspace(0, 1, 5), mode=mode)
        assert path.shape == (5, 4)
        assert np.allclose(path[0], a, atol=1e-6) and np.allclose(path[-1], b, atol=1e-6)
    lin = engine.expressions.interpolate(a, b, [0.5])[0]
    assert np.allclose(lin, (a + b) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="3 values"):
        engine.expressions.interpolate(a, np.zeros(3), [0.5])
    assert engine.expressions.decode(a).shape == (engine.config.num_keypoints, 3)
    with pytest.raises(NoFaceFoundError):
        engine.expressions.encode(np.full((100, 100, 3), 30, np.uint8))


def test_expression_reach_is_the_largest_keypoint_movement_one_latent_makes(tiny_checkpoint):
    with Engine.load(tiny_checkpoint, device="cpu", precision="fp32") as engine:
        z = np.zeros(engine.latent_dim, np.float32)
        moves = []
        for i in range(engine.latent_dim):
            for sign in (1, -1):
                z[i] = 3.0 * sign
                change = engine.expressions.decode(z)[:, :2] - engine.expressions.decode(np.zeros_like(z))[:, :2]
                moves.append(np.linalg.norm(change, axis=1).max())
                z[i] = 0.0
        expected = max(moves) * engine.image_size / 2
        assert expected > 0 and engine.expressions.reach(3.0) == pytest.approx(expected, rel=1e-4)
        assert engine.expressions.reach(1.0) < engine.expressions.reach(3.0)
        with torch.no_grad():  # a decoder that ignores z moves nothing
            engine.model.expression_vae.decoder[-1].weight.zero_()
        assert engine.expressions.reach() == 0.0


def test_rendering_from_a_worker_thread_matches(engine, prepared):
    expected = engine.render(prepared, Motion(yaw=-12, pitch=6)).crop
    out = {}
    worker = threading.Thread(
        target=lambda: out.setdefault("crop", engine.render(prepared, Motion(yaw=-12, pitch=6)).crop))
    worker.start()
    worker.join(timeout=60)
    assert np.array_equal(out["crop"], expected)


def test_bf16_precision_renders_close_to_fp32(tiny_checkpoint, prepared):
    fast = Engine.load(tiny_checkpoint, device="cpu", precision="bf16", tracker=None)
    try:
        source = fast.prepare_crop(prepared.crop)
        frame = fast.render(source, Motion(yaw=10))
        assert fast.channels_last and frame.crop.shape == (64, 64, 3)
        exact = Engine.load(tiny_checkpoint, device="cpu", precision="fp32")
        reference = exact.render(exact.prepare_crop(prepared.crop), Motion(yaw=10))
        assert np.abs(frame.crop.astype(int) - reference.crop.astype(int)).mean() < 4
    finally:
        fast.close()


def test_detect_faces_and_prepare_crop(engine, prepared, sample_portrait):
    faces = engine.detect_faces(sample_portrait)
    assert len(faces) >= 1 and all(a.size >= b.size for a, b in zip(faces, faces[1:]))
    odd = np.ascontiguousarray(prepared.image[40:300, 60:250])  # any aligned crop, any size: resized to S×S
    source = engine.prepare_crop(odd)
    assert source.crop.shape == (64, 64, 3) and source.faces == [] and source.face_index is None
    frame = engine.render(source, Motion(yaw=5), paste_back=True)
    assert frame.full.shape == odd.shape
