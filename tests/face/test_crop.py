"""Crop transforms, paste-back without seams, online smoothing, expression measures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmfa_studio.face import (
    CropSmoother,
    Face,
    OneEuroSmoother,
    box_transform,
    crop_at,
    expression_measures,
    face_mask,
    paste_back,
)
from mmfa_studio.face.crop import outside_reach


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, colourful test picture (sums of sinusoids) — no seams of its own."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.005, 0.03), rng.uniform(0.005, 0.03), rng.uniform(0, 6)
        chans.append(128 + 90 * np.sin(fx * x + ph) * np.cos(fy * y))
    return np.clip(np.dstack(chans), 0, 255).astype(np.uint8)


def test_transform_round_trip_and_geometry():
    t = box_transform(np.array([300.0, 200.0, 128.0]), 256, (480, 640))
    pts = np.array([[300.0, 200.0], [236.0, 136.0], [10.0, 470.0]])
    np.testing.assert_allclose(t.to_original(t.to_crop(pts)), pts, atol=1e-9)
    # the box centre maps to the crop centre (pixel centres at integers → (size-1)/2)
    np.testing.assert_allclose(t.to_crop(pts[:1]), [[127.5, 127.5]], atol=1e-9)
    np.testing.assert_allclose(t.box, [300.0, 200.0, 128.0], atol=1e-9)


def test_crop_pixels_match_the_box():
    img = _textured(400, 500)
    crop, t = crop_at(img, np.array([249.5, 199.5, 128.0]), 128)  # 1:1 scale, integer aligned
    np.testing.assert_array_equal(crop, img[136:264, 186:314])
    crop2, _ = crop_at(img, np.array([249.5, 199.5, 256.0]), 128)  # 2:1 downscale
    assert np.abs(crop2.astype(int) - img[72:328, 122:378][::2, ::2]).mean() < 4


def test_strong_downscale_uses_the_same_geometry():
    """The area-averaging path for big photos gives the same picture as a plain warp, only less aliased."""
    img = _textured(3000, 3000, seed=1)
    box = np.array([1500.3, 1410.7, 2100.0])
    crop, t = crop_at(img, box, 256)
    import cv2

    plain = cv2.warpAffine(cv2.GaussianBlur(img, (0, 0), 3), t.matrix, (256, 256), flags=cv2.INTER_LINEAR)
    assert np.abs(crop.astype(int) - plain).mean() < 3


@pytest.mark.parametrize("side", [100.0, 1000.0])  # a plain warp, and the area-averaging path for big boxes
def test_crop_outside_the_image_is_a_blurred_mirror_not_streaks(side):
    """Below the image the crop continues the picture (mirrored, softened), it does not repeat its last row."""
    scale = side / 100.0
    img = cv2.resize(np.dstack([np.linspace(0, 250, 100)[:, None].repeat(100, 1)] * 3).astype(np.uint8),
                     None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)  # a top-to-bottom ramp
    crop, t = crop_at(img, np.array([50.0, 80.0, 100.0]) * scale, 100)  # reaches 30 % below the image
    rows, cols = outside_reach(t)
    assert (cols.max() == 0 and rows[:69].max() == 0 and rows[71:].min() > 0
            and rows.max() == pytest.approx(29.5, abs=0.6))
    band = crop[72:].astype(float)
    assert band.std(axis=0).min() > 5  # every column varies: no streaks
    inside = crop[:68].astype(float)
    plain = cv2.resize(img, (100, 100), interpolation=cv2.INTER_AREA)[30:98] if scale > 1 else img[30:98]
    assert np.abs(inside - plain).mean() < 2  # inside the image nothing changed


def test_outside_reach_is_zero_for_a_crop_inside_the_image():
    rows, cols = outside_reach(box_transform(np.array([50.0, 50.0, 60.0]), 64, (100, 100)))
    assert rows.max() == 0 and cols.max() == 0


def test_paste_back_of_an_unchanged_crop_restores_the_image():
    img = _textured(600, 800)
    crop, t = crop_at(img, np.array([400.0, 300.0, 300.0]), 256)
    out = paste_back(img, crop, t)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() < 0.5
    assert np.abs(out.astype(int) - img).max() < 25  # resampling twice, only where the texture is sharp


def test_paste_back_of_a_crop_resized_from_a_non_square_region():
    """Engine.prepare_crop's transform scales x and y apart: colour matching must compare the same pixels."""
    from mmfa_studio.face import CropTransform

    h, w, s = 260, 190, 64
    img = _textured(h, w, seed=3)
    crop = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
    t = CropTransform(np.array([[s / w, 0, 0.5 * s / w - 0.5], [0, s / h, 0.5 * s / h - 0.5]]), s, (h, w))
    out = paste_back(img, crop, t).astype(int)
    plain = paste_back(img, crop, t, match_colour=False).astype(int)
    assert np.abs(out - img).mean() < np.abs(plain - img).mean() + 0.5  # matching adds no colour error


def test_paste_back_has_no_seam_with_a_colour_shifted_crop():
    img = _textured(600, 800, seed=3)
    box = np.array([400.0, 300.0, 300.0])
    crop, t = crop_at(img, box, 256)
    rendered = np.clip(crop.astype(int) + [30, -20, 25], 0, 255).astype(np.uint8)  # a renderer's colour drift
    out = paste_back(img, rendered, t).astype(float)
    naive = paste_back(img, rendered, t, match_colour=False).astype(float)
    # inside: the crop's content is used
    centre = out[280:320, 380:420]
    assert np.abs(centre - img[280:320, 380:420]).mean() < 30
    # seam: compare the pasted image with the original along the crop's border ring and just inside it
    ring = np.zeros(img.shape[:2], bool)
    ring[150:450, 250:550] = True
    ring[175:425, 275:525] = False
    err_matched = np.abs(out - img)[ring].mean()
    err_naive = np.abs(naive - img)[ring].mean()
    assert err_matched < 3.0
    assert err_matched < 0.3 * err_naive
    # no step anywhere: the largest horizontal gradient is the picture's own, not a seam's
    grad = np.abs(np.diff(out, axis=1)).max()
    assert grad < np.abs(np.diff(img.astype(float), axis=1)).max() + 8


def test_paste_back_partly_outside_and_wrong_size():
    img = _textured(200, 200)
    crop, t = crop_at(img, np.array([20.0, 180.0, 120.0]), 64)
    out = paste_back(img, crop, t)
    assert out.shape == img.shape
    with pytest.raises(ValueError):
        paste_back(img, crop[:32], t)


def test_face_mask_is_zero_at_the_border_and_one_inside():
    m = face_mask(128)
    assert m[0].max() == 0 and m[:, -1].max() == 0
    assert m[64, 64] == pytest.approx(1.0)


def test_one_euro_reduces_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroSmoother(min_cutoff=0.3, beta=0.01)
    t = np.arange(300) / 30.0
    noisy = 100 + rng.normal(0, 2.0, 300)
    out = np.array([f(np.array([v]), ti)[0] for v, ti in zip(noisy, t)])
    assert out[60:].std() < 0.4 * noisy[60:].std()
    ramp = 100 + 200 * t  # fast, steady motion: beta cuts the lag
    lags = []
    for beta in (0.0, 0.01):
        g = OneEuroSmoother(min_cutoff=0.3, beta=beta)
        out = np.array([g(np.array([v]), ti)[0] for v, ti in zip(ramp, t)])
        lags.append(np.abs(out[60:] - ramp[60:]).max())
    assert lags[1] < 0.5 * lags[0]
    # constant input stays exactly constant, repeated timestamps do not crash
    f.reset()
    assert f(np.array([5.0, 6.0]), 0.0).tolist() == [5.0, 6.0]
    assert np.allclose(f(np.array([5.0, 6.0]), 0.0), [5.0, 6.0])


def test_crop_smoother_is_scale_free():
    rng = np.random.default_rng(1)
    for unit in (100.0, 1000.0):
        s = CropSmoother()
        boxes = np.array([500, 400, unit]) + rng.normal(0, 0.01 * unit, (120, 3))
        out = np.array([s(b, i / 30) for i, b in enumerate(boxes)])
        assert out[30:, 0].std() < 0.4 * boxes[30:, 0].std()


def _face_with(landmarks: np.ndarray) -> Face:
    return Face(box=np.array([*landmarks.min(0), *landmarks.max(0)]), landmarks=landmarks, score=1.0)


def test_expression_measures_from_landmarks():
    from mmfa_studio.face.pose import MESH_INDEX_OF_68, canonical_face

    pts = canonical_face().points[:, :2] * 100 + 300
    base = expression_measures(_face_with(pts))
    assert 0.1 < base.eye_open < 0.6
    closed = pts.copy()
    for top, bottom in ((159, 145), (386, 374)):
        closed[top] = closed[bottom] = (pts[top] + pts[bottom]) / 2
    assert expression_measures(_face_with(closed)).eye_open < 0.5 * base.eye_open
    opened = pts.copy()
    opened[14] += [0, 40]
    assert expression_measures(_face_with(opened)).mouth_open > base.mouth_open + 0.3
    # the 68-point scheme measures the same thing
    m68 = expression_measures(_face_with(pts[MESH_INDEX_OF_68]))
    assert m68.eye_open == pytest.approx(base.eye_open, rel=0.35)
    with pytest.raises(ValueError):
        expression_measures(_face_with(pts[:10]))
