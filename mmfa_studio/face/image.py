"""Robust image loading: any photo a user drops in becomes H×W×3 uint8 RGB, or a clear ImageError."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """A missing, unreadable, corrupt or unsupported image; the message names the file."""


# The largest photo decoded: 100 megapixels (a 9000×9000 photo has 81). The size is read from the file's header
# before any pixel is decoded, so a decompression bomb (a 2.7 MB PNG of 30000×30000, 2.7 GB of pixels) is
# refused in milliseconds instead of taking 40 s and 6 GB.
MAX_PIXELS = 100_000_000


# EXIF orientation tag → (rotate k×90° counter-clockwise, then flip left-right), as np.rot90/np.fliplr.
_EXIF_ORIENTATION = {2: (0, True), 3: (2, False), 4: (2, True), 5: (1, True), 6: (3, False), 7: (3, True),
                     8: (1, False)}


def _exif_orientation(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - no EXIF (or unreadable EXIF) means "as stored"
        return 1


def _looks_truncated(data: bytes) -> bool:
    """A JPEG without its end-of-image marker decodes to a grey bottom half: treat it as corrupt."""
    if data[:2] == b"\xff\xd8":
        return data.rfind(b"\xff\xd9") < 0
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def to_rgb8(array: np.ndarray, background: int = 255) -> np.ndarray:
    """Any decoded pixel array (gray/BGR/BGRA, 8/16-bit or float) → H×W×3 uint8 RGB.

    Transparent pixels are composited onto a white background (portraits with a removed background).
    """
    img = array
    if img.dtype == np.uint16:
        img = ((img.astype(np.float32) / 257.0) + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)[..., :3], img[:, :, 1]
        img = np.dstack(img)
        channels = 4
    if channels == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        bgr = img[:, :, :3].astype(np.float32) * alpha + background * (1.0 - alpha)
        return cv2.cvtColor((bgr + 0.5).astype(np.uint8), cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a photo as H×W×3 uint8 RGB.

    Handles EXIF rotation, grayscale, RGBA/LA (composited on white), 16-bit and float images.
    Raises ImageError naming ``path`` for a missing, corrupt, truncated or non-image file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{path}: empty file")
    check_pixel_count(data, path)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        decoded = _decode_with_pillow(path)
    if decoded is None or decoded.size == 0:
        raise ImageError(f"{path}: not an image or corrupt")
    if decoded.shape[0] * decoded.shape[1] > MAX_PIXELS:  # a format whose header Pillow could not read
        raise ImageError(_too_large(path, decoded.shape[1], decoded.shape[0]))
    if _looks_truncated(data):
        raise ImageError(f"{path}: image file is truncated or corrupt")
    try:
        rgb = to_rgb8(decoded)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None
    rotate, flip = _EXIF_ORIENTATION.get(_exif_orientation(path), (0, False))
    if flip:
        rgb = np.fliplr(rgb)
    if rotate:
        rgb = np.rot90(rgb, rotate)
    return np.ascontiguousarray(rgb)


def check_pixel_count(data: bytes, path: str | os.PathLike[str]) -> None:
    """``ImageError`` if the image in ``data`` declares more than :data:`MAX_PIXELS`, read from its header
    only (Pillow's lazy open decodes no pixels). Formats Pillow does not know are checked after decoding."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own DecompressionBombWarning: we decide here
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:  # over twice Pillow's limit: certainly over ours
        raise ImageError(f"{path}: the image is too large to decode "
                         f"(over {MAX_PIXELS // 1_000_000} megapixels)") from None
    except Exception:  # noqa: BLE001 - not readable by Pillow: left to the decoders, checked after
        return
    if width * height > MAX_PIXELS:
        raise ImageError(_too_large(path, width, height))


def _too_large(path: str | os.PathLike[str], width: int, height: int) -> str:
    return (f"{path}: {width}×{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
            f"{MAX_PIXELS // 1_000_000}; scale the photo down")


def _decode_with_pillow(path: Path) -> np.ndarray | None:
    """Formats OpenCV cannot read (GIF, some TIFF flavours): decode the first frame with Pillow, as BGR(A)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            im = im.convert("RGBA") if ("A" in im.getbands() or im.mode == "P") else im.convert("RGB")
            arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image"
        return None
    return cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
