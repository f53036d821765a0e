"""load_image: every kind of photo a user may drop in becomes H×W×3 uint8 RGB, or a clear ImageError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mmfa_studio.face import ImageError, load_image


def _gradient(h: int = 60, w: int = 80) -> np.ndarray:
    """An RGB test image whose orientation is recognisable: red grows to the right, green downwards."""
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 40)]).astype(np.uint8)


def test_rgb_png_round_trip(tmp_path):
    img = _gradient()
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (60, 80, 3)
    np.testing.assert_array_equal(out, img)


def test_grayscale_becomes_rgb(tmp_path):
    gray = _gradient()[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.jpg", quality=95)
    out = load_image(tmp_path / "g.jpg")
    assert out.shape == (60, 80, 3)
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).max() == 0  # channels equal
    assert np.abs(out[..., 0].astype(int) - gray).mean() < 3


def test_rgba_composited_on_white(tmp_path):
    rgba = np.dstack([_gradient(), np.full((60, 80), 255, np.uint8)])
    rgba[:, :40, 3] = 0  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = load_image(tmp_path / "t.png")
    assert out.shape == (60, 80, 3)
    assert (out[:, :40] == 255).all()
    np.testing.assert_array_equal(out[:, 40:], _gradient()[:, 40:])


def test_16_bit_png(tmp_path):
    img16 = (_gradient().astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "d.png"), cv2.cvtColor(img16, cv2.COLOR_RGB2BGR))
    assert cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    out = load_image(tmp_path / "d.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _gradient())


def test_16_bit_grayscale_png(tmp_path):
    gray16 = (np.linspace(0, 65535, 80, dtype=np.uint16)[None, :].repeat(30, 0))
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    out = load_image(tmp_path / "g16.png")
    assert out.shape == (30, 80, 3) and out[0, 0, 0] == 0 and out[0, -1, 0] == 255


@pytest.mark.parametrize("orientation, expected", [
    (6, lambda a: np.rot90(a, -1)),  # stored rotated: viewers turn it 90° clockwise
    (8, lambda a: np.rot90(a, 1)),
    (3, lambda a: np.rot90(a, 2)),
    (2, lambda a: a[:, ::-1]),
])
def test_exif_orientation_applied(tmp_path, orientation, expected):
    img = _gradient()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(img).save(tmp_path / "e.jpg", quality=98, exif=exif.tobytes())
    out = load_image(tmp_path / "e.jpg")
    want = expected(img)
    assert out.shape == want.shape
    assert np.abs(out.astype(int) - want).mean() < 3


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is not an image at all" * 10, "not an image"),
    (bytes(range(256)) * 40, "not an image"),
])
def test_corrupt_files_raise_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_truncated_file_raises(tmp_path, fmt):
    path = tmp_path / f"cut.{fmt}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut"):
        load_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
