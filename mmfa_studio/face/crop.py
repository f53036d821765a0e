"""Square, axis-aligned, face-centred crops (the framing of the training data), their inverse, and paste-back.

Crops are never de-rotated: the model controls roll explicitly, so a tilted head stays tilted in the crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .smoothing import OneEuroSmoother
from .types import Face, NoFaceError

# The training-data framing: the crop side is CROP_SCALE × the longer side of the face-mesh box (hairline to
# chin), its centre CROP_OFFSET × that side below/right of the box centre (negative y = up, showing some hair).
CROP_SCALE = 1.6
CROP_OFFSET = (0.0, -0.05)
# Outside the image a crop mirrors it (texture continues, no seam at the edge) and blurs that mirror with these
# Gaussian sigmas (fractions of the crop side), each reached at twice its sigma beyond the edge.
OUTSIDE_BORDER = cv2.BORDER_REFLECT_101
COLOUR_MATCH_SIZE = 256  # paste-back measures the colour offset on the crop shrunk to this side
OUTSIDE_BLUR = (0.025, 0.08)


@dataclass
class CropTransform:
    """The similarity that made a crop. matrix: 2×3, original pixel → crop pixel (pixel centres at integers);
    size: crop side in pixels; source_shape: (H, W) of the original image."""

    matrix: np.ndarray
    size: int
    source_shape: tuple[int, int]

    @property
    def inverse(self) -> np.ndarray:
        """2×3 crop pixel → original pixel."""
        return cv2.invertAffineTransform(self.matrix)

    @staticmethod
    def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        return pts[..., :2] @ matrix[:, :2].T + matrix[:, 2]

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """N×2 original pixels → N×2 crop pixels."""
        return self._apply(self.matrix, points)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """N×2 crop pixels → N×2 original pixels."""
        return self._apply(self.inverse, points)

    def resized(self, size: int) -> CropTransform:
        """The transform of the same crop resized to size × size (pixel centres at integers)."""
        f = size / self.size
        matrix = self.matrix * f
        matrix[:, 2] += 0.5 * f - 0.5
        return CropTransform(matrix, int(size), self.source_shape)

    @property
    def box(self) -> np.ndarray:
        """(cx, cy, side) of the crop square in original pixels."""
        corners = self.to_original(np.array([[-0.5, -0.5], [self.size - 0.5, self.size - 0.5]]))
        (x0, y0), (x1, y1) = corners
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0])


def crop_box(face: Face, scale: float = CROP_SCALE, offset: tuple[float, float] = CROP_OFFSET) -> np.ndarray:
    """(cx, cy, side) in pixels of the square crop around ``face`` (see CROP_SCALE/CROP_OFFSET)."""
    face_side = face.size
    cx, cy = face.centre
    return np.array([cx + offset[0] * face_side, cy + offset[1] * face_side, scale * face_side], dtype=np.float64)


def pixel_aligned_box(box: np.ndarray) -> np.ndarray:
    """The box (cx, cy, side) moved by under half a pixel and resized by under one so that its side is a whole
    number of pixels and its corner sits on a pixel edge: a crop of it at ``size = side`` copies the photo's
    pixels exactly, and pasting that crop back copies them back, with no resampling either way (each bilinear
    resampling at a fractional offset blurs the finest detail)."""
    cx, cy, side = (float(v) for v in box)
    n = max(1, round(side))
    x0, y0 = round(cx - (n - 1) / 2), round(cy - (n - 1) / 2)
    return np.array([x0 + (n - 1) / 2, y0 + (n - 1) / 2, float(n)], dtype=np.float64)


def box_transform(box: np.ndarray, size: int, source_shape: tuple[int, ...]) -> CropTransform:
    cx, cy, side = (float(v) for v in box)
    if side <= 0:
        raise ValueError(f"crop side must be positive, got {side}")
    s = size / side
    # Pixel centres at integers (OpenCV's convention, also used for landmarks): the box centre maps to the
    # crop centre (size - 1) / 2 and the box edges to the crop edges -0.5 and size - 0.5.
    matrix = np.array([[s, 0.0, (size - 1) / 2 - s * cx], [0.0, s, (size - 1) / 2 - s * cy]])
    return CropTransform(matrix, int(size), (int(source_shape[0]), int(source_shape[1])))


def crop_at(image: np.ndarray, box: np.ndarray, size: int = 256) -> tuple[np.ndarray, CropTransform]:
    """Crop the square ``box`` = (cx, cy, side) (original pixels, sub-pixel) to size×size×3 uint8.

    Where the box reaches past the image the crop shows the image mirrored at its edge, blurred more the
    further out (see :func:`_soften_outside`). Strong downscaling first area-averages the region, so an
    8000 px photo gives an un-aliased 256 px crop.
    """
    transform = box_transform(box, size, image.shape)
    m = transform.matrix
    s = m[0, 0]
    if s >= 0.5:
        crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=OUTSIDE_BORDER)
        return _soften_outside(crop, transform), transform
    h, w = image.shape[:2]
    (x0, y0), (x1, y1) = transform.to_original(np.array([[-1.0, -1.0], [size, size]]))
    pad = 2.0 / s
    ix0, iy0 = int(np.clip(np.floor(x0 - pad), 0, w - 1)), int(np.clip(np.floor(y0 - pad), 0, h - 1))
    ix1, iy1 = int(np.clip(np.ceil(x1 + pad), ix0 + 1, w)), int(np.clip(np.ceil(y1 + pad), iy0 + 1, h))
    roi = image[iy0:iy1, ix0:ix1]
    q = s * 1.25  # pre-shrink so the remaining warp downsamples by only 0.8
    nw, nh = max(1, round(roi.shape[1] * q)), max(1, round(roi.shape[0] * q))
    small = cv2.resize(roi, (nw, nh), interpolation=cv2.INTER_AREA)
    qx, qy = nw / roi.shape[1], nh / roi.shape[0]
    # small pixel x' ↔ original x = (x' + 0.5)/qx - 0.5 + ix0; compose with the crop transform
    m2 = np.array([
        [s / qx, 0.0, s * (0.5 / qx - 0.5 + ix0) + m[0, 2]],
        [0.0, s / qy, s * (0.5 / qy - 0.5 + iy0) + m[1, 2]],
    ])
    # small's edges are the image's edges wherever the crop leaves the image (the ROI is clipped there)
    crop = cv2.warpAffine(small, m2, (size, size), flags=cv2.INTER_LINEAR, borderMode=OUTSIDE_BORDER)
    return _soften_outside(crop, transform), transform


def outside_reach(transform: CropTransform) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols): how far each crop row and column lies outside the original image, in crop pixels (0 inside).

    A pixel's distance outside is the larger of its row's and its column's. Axis-aligned crops only (every crop
    this module makes)."""
    h, w = transform.source_shape
    inv = transform.inverse
    u = np.arange(transform.size, dtype=np.float64)
    x, y = inv[0, 0] * u + inv[0, 2], inv[1, 1] * u + inv[1, 2]
    s = transform.matrix[0, 0]
    rows = np.maximum(np.maximum(-0.5 - y, y - (h - 0.5)), 0.0) * s
    cols = np.maximum(np.maximum(-0.5 - x, x - (w - 0.5)), 0.0) * s
    return rows.astype(np.float32), cols.astype(np.float32)


def _soften_outside(crop: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Blur the mirrored fill outside the image more the further it reaches, so it reads as out-of-focus
    background. Repeating the edge pixels instead drew stripes (a tight 256 px portrait's shirt became vertical
    streaks) that the model then animated; a sharp mirror far out would show a second, flipped face."""
    rows, cols = outside_reach(transform)
    if rows.max() <= 0.5 and cols.max() <= 0.5:
        return crop  # inside the image: the crop is untouched
    size = transform.size
    out, small = crop, crop
    # Cheap, as this runs on every driving frame whose crop leaves the video: each blur on a grid of sigma / 2
    # (shrunk from the previous one), the weights from the rows' and columns' ramps, the blend in uint8.
    for sigma_frac in OUTSIDE_BLUR:
        sigma = sigma_frac * size
        side = max(1, size // max(1, int(sigma // 2)))
        small = cv2.resize(small, (side, side), interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(small, (0, 0), sigma * side / size, borderType=cv2.BORDER_REFLECT)
        blurred = cv2.resize(blurred, (size, size), interpolation=cv2.INTER_LINEAR)
        ramp_rows, ramp_cols = (_smoothstep(np.clip(r * np.float32(0.5 / sigma), 0.0, 1.0)) for r in (rows, cols))
        weight = np.maximum.outer(ramp_rows, ramp_cols)  # = the ramp of the larger reach (smoothstep is monotonic)
        out = cv2.blendLinear(blurred, out, weight, 1.0 - weight)
    return out


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """0 → 0 and 1 → 1 with zero slope at both ends: no edge where the blur starts or ends."""
    return t * t * (3.0 - 2.0 * t)


def crop_face(image: np.ndarray, face: Face, size: int = 256, scale: float = CROP_SCALE,
              offset: tuple[float, float] = CROP_OFFSET) -> tuple[np.ndarray, CropTransform]:
    """The aligned size×size×3 uint8 crop of ``face`` and its transform (the framing ``prepare`` uses)."""
    return crop_at(image, crop_box(face, scale, offset), size)


def select_face(faces: list[Face], index: int = 0, where: str = "image") -> Face:
    """The ``index``-th face (0 = largest); NoFaceError naming ``where`` when there is no such face."""
    if not faces:
        raise NoFaceError(f"no face found in {where}")
    if not 0 <= index < len(faces):
        raise NoFaceError(f"face {index} requested but only {len(faces)} face(s) found in {where}")
    return faces[index]


# --- paste-back ----------------------------------------------------------------------------------------------
def face_mask(size: int, feather: float = 0.15, margin: float = 0.02) -> np.ndarray:
    """size×size float32 blend mask: 1 over most of the crop, smoothly 0 at its border (rounded square).

    feather: width of the ramp as a fraction of the crop side; margin: fully transparent rim.
    """
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    edge = np.minimum(t, 1.0 - t)  # distance to the nearest border, 0…0.5
    ramp = np.clip((edge - margin) / max(feather, 1e-6), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no kink where the ramp meets 0 or 1
    return np.outer(ramp, ramp)


def paste_back(original: np.ndarray, crop: np.ndarray, transform: CropTransform, feather: float = 0.15,
               mask: np.ndarray | None = None, match_colour: bool = True) -> np.ndarray:
    """Blend a (rendered) crop back into the full-resolution ``original``; returns a new array of its shape.

    mask: optional size×size float mask in crop pixels (default :func:`face_mask`). With ``match_colour`` a
    smooth colour-offset field, measured where the mask fades out, pulls the crop's colours onto the original's
    so no seam shows at the crop border while the crop's detail is kept.
    """
    if crop.shape[:2] != (transform.size, transform.size):
        raise ValueError(f"crop is {crop.shape[:2]}, the transform expects {transform.size}×{transform.size}")
    h, w = original.shape[:2]
    size = transform.size
    corners = transform.to_original(np.array([[-0.5, -0.5], [size - 0.5, size - 0.5]]))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1 + 1), min(h, y1 + 1)
    result = original.copy()
    if x1 <= x0 or y1 <= y0:
        return result
    mask = face_mask(size, feather) if mask is None else np.asarray(mask, dtype=np.float32)
    if match_colour:
        # Measured on a small copy of the crop (the offset is smooth: 64 px carry it) and applied in crop pixels, so
        # it costs little at any photo size; warping the corrected crop is the same as correcting the warped one.
        n = min(size, COLOUR_MATCH_SIZE)
        small = transform.resized(n)
        m = small.matrix
        square = m[0, 1] == 0 and m[1, 0] == 0 and abs(m[0, 0] - m[1, 1]) <= 1e-9 * abs(m[0, 0])
        # A crop resized from a non-square region (Engine.prepare_crop) has no (cx, cy, side) box: warp directly.
        under = (crop_at(original, small.box, n)[0] if square else
                 cv2.warpAffine(original, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        shrink = (lambda a: a) if n == size else (lambda a: cv2.resize(a, (n, n), interpolation=cv2.INTER_AREA))
        offset = _colour_offset(under.astype(np.float32), shrink(crop).astype(np.float32), shrink(mask))
        if n != size:
            offset = cv2.resize(offset, (size, size), interpolation=cv2.INTER_LINEAR).reshape(crop.shape)
        crop = cv2.add(crop, offset, dtype=cv2.CV_8U)  # saturating and rounding
    inv = transform.inverse.copy()
    inv[:, 2] -= (x0, y0)
    roi_w, roi_h = x1 - x0, y1 - y0
    warped = cv2.warpAffine(crop, inv, (roi_w, roi_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, inv, (roi_w, roi_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    roi = np.ascontiguousarray(original[y0:y1, x0:x1])
    result[y0:y1, x0:x1] = cv2.blendLinear(warped, roi, alpha, 1.0 - alpha)
    return result


def _colour_offset(under: np.ndarray, pasted: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Smooth per-pixel colour offset (original − pasted) in crop pixels, measured on the mask's fade band
    (normalised convolution: the band's offsets spread smoothly over the crop)."""
    band = (4.0 * alpha * (1.0 - alpha)).astype(np.float32)  # peaks where the mask fades, 0 inside and outside
    if band.sum() < 1e-3:
        return np.zeros_like(pasted)
    h, w = alpha.shape
    sw, sh = 64, max(4, round(64 * h / w))
    small_diff = cv2.resize((under - pasted) * band[..., None], (sw, sh), interpolation=cv2.INTER_AREA)
    small_band = cv2.resize(band, (sw, sh), interpolation=cv2.INTER_AREA)
    sigma = max(sw, sh) / 6.0
    num = cv2.GaussianBlur(small_diff, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(small_band, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    offset = num / np.maximum(den, 1e-4)[..., None]
    return cv2.resize(offset, (w, h), interpolation=cv2.INTER_LINEAR).reshape(pasted.shape)


# --- online smoothing for video and webcam --------------------------------------------------------------------
@dataclass
class CropSmoother:
    """Online One-Euro smoothing of crop boxes (cx, cy, side) for video/webcam.

    Works in units of the first box's side, so the same settings suit any resolution. min_cutoff (Hz) sets
    how hard a still face is held; beta how quickly the box follows real motion.
    """

    min_cutoff: float = 0.4
    beta: float = 2.0
    _filter: OneEuroSmoother = field(init=False, repr=False)
    _unit: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._filter = OneEuroSmoother(self.min_cutoff, self.beta, d_cutoff=1.0)

    def reset(self) -> None:
        self._filter.reset()
        self._unit = None

    def __call__(self, box: np.ndarray, t: float) -> np.ndarray:
        box = np.asarray(box, dtype=np.float64)
        if self._unit is None:
            self._unit = float(box[2])
        return self._filter(box / self._unit, t) * self._unit
