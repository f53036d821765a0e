"""The render at the photo's resolution (issue 18): the output size, the detail render's agreement with the model's
own blend, and a face pasted back into a large photo that keeps the photo's fine detail."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mmfa_studio.engine import Engine, InvalidOutputSizeError, Motion
from mmfa_studio.engine.detail import DetailParts, render_detail
from mmfa_studio.eval.metrics import detail_kept, face_hull_mask
from mmfa_studio.face import crop_at, load_image, paste_back, pixel_aligned_box


@pytest.fixture(scope="module")
def large_photo(sample_portrait) -> np.ndarray:
    """The sample at 1024 px with a fine grain, so there is detail a 256-px render cannot keep."""
    image = cv2.resize(load_image(sample_portrait), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    grain = np.random.default_rng(0).normal(0, 6, image.shape[:2])[..., None]
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def test_the_output_size_is_checked(tiny_checkpoint):
    for bad in (32, 100, 4096, 512.0, True):
        with pytest.raises(InvalidOutputSizeError, match="output size"):
            Engine.load(tiny_checkpoint, device="cpu", precision="fp32", output_size=bad)
    engine = Engine.load(tiny_checkpoint, device="cpu", precision="fp32", output_size=None)
    assert engine.output_size == engine.image_size


def test_frames_come_at_the_output_size(engine, prepared):
    assert engine.output_size == 512 and prepared.detail is not None
    assert prepared.detail.shape[0] == round(prepared.transform.box[2])  # the photo's own resolution
    frame = engine.render(prepared, Motion(yaw=10), paste_back=True)
    assert frame.crop.shape == (engine.image_size, engine.image_size, 3)
    assert frame.output.shape == (512, 512, 3) and prepared.output_crop.shape == (512, 512, 3)
    assert frame.full.shape == prepared.image.shape
    # keypoints in output pixels are the crop's, scaled about pixel centres; the output transform agrees
    factor = 512 / engine.image_size
    assert np.allclose(frame.output_keypoints, (frame.keypoints + 0.5) * factor - 0.5)
    photo_points = prepared.transform.to_original(frame.keypoints)
    assert np.allclose(prepared.output_transform.to_original(frame.output_keypoints), photo_points, atol=1e-6)
    # detail=False (live video) renders the model's crop only
    live = engine.render(prepared, Motion(yaw=10), detail=False)
    assert live.detail is None and np.array_equal(live.crop, frame.crop)


def test_the_detail_render_is_the_models_blend_at_any_size(engine, prepared):
    """At the model's own size, the detail render from the model's crop reproduces the model's image."""
    motion = engine.pose_calibration.to_model_motion(Motion(yaw=-15, pitch=8))
    with torch.inference_mode():
        result = engine.model.render(prepared.encoding, engine.target_motion(prepared, [motion]), all_scales=False)
        model_image = engine._to_uint8(result.image)[0].astype(int)
        parts = DetailParts.of(result)
    bilinear = render_detail(prepared.crop, parts, interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(bilinear - model_image).mean() < 0.5 and np.abs(bilinear - model_image).max() <= 2
    bicubic = render_detail(prepared.crop, parts).astype(int)  # the default: sharper between pixels
    assert np.abs(bicubic - model_image).mean() < 2.0


def test_a_pixel_aligned_crop_at_its_own_size_copies_the_photo_and_pastes_back_unchanged(large_photo):
    box = pixel_aligned_box(np.array([500.3, 470.8, 612.6]))
    assert box[2] == 613 and (box[0] - 306) % 1 == 0
    crop, transform = crop_at(large_photo, box, int(box[2]))
    x0, y0 = int(box[0] - 306), int(box[1] - 306)
    assert np.array_equal(crop, large_photo[y0:y0 + 613, x0:x0 + 613])
    assert np.abs(paste_back(large_photo, crop, transform).astype(int) - large_photo.astype(int)).max() <= 1


def test_a_face_pasted_into_a_large_photo_keeps_its_detail(large_photo):
    """The bundled model at zero edit: the 256-px path loses most of the grain, the detail render keeps it."""
    kept = {}
    for size in (None, 512):
        engine = Engine.load(device="cpu", precision="fp32", output_size=size)
        source = engine.prepare_source(large_photo)
        mask = face_hull_mask(large_photo.shape, source.faces[source.face_index].landmarks)
        kept[size] = detail_kept(engine.render(source, Motion(), paste_back=True).full, large_photo, mask)
        engine.close()
    assert kept[None] < 0.3 and kept[512] >= 0.9, kept
