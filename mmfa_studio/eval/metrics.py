"""Per-frame metrics on uint8 RGB images of equal size (H×W×3).

Each optional backend (LPIPS weights, dlib face embeddings, SSIM from scikit-image) reports why it is missing
instead of being silently dropped: :class:`Unavailable` carries the reason into the JSON output.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Unavailable:
    """A metric backend that could not be loaded, and why."""

    reason: str


def l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute error in [0, 1] intensity units."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)


def region_l1(output: np.ndarray, target: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """Mean absolute error (in [0, 1] units) inside the target's mouth and eyes (``face.regions``, grown by its
    margin), keys ``mouth_l1`` and ``eyes_l1``. ``landmarks``: the target's mesh (≥ 468 points, crop pixels)."""
    import torch

    from ..face.anchors import pixels_to_units
    from ..face.regions import REGIONS, region_errors, region_masks

    size = target.shape[0]
    points = torch.as_tensor(pixels_to_units(landmarks, size), dtype=torch.float32)[None]
    as_batch = lambda image: torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    errors = region_errors(as_batch(output), as_batch(target), region_masks(points, size))[0]
    return {f"{name}_l1": float(error) for name, error in zip(REGIONS, errors)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_backend():
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return Unavailable("scikit-image is not installed (pip install 'mmfa-studio[eval]')")
    return structural_similarity


def ssim(a: np.ndarray, b: np.ndarray, backend=None) -> float:
    """Gaussian-weighted SSIM over RGB (Wang et al. 2004 settings), as in FOMM's evaluation."""
    fn = backend or ssim_backend()
    return float(fn(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                    data_range=255))


class LPIPSMetric:
    """LPIPS-style distance with the shift-tolerant VGG16 shipped in stlpips-pytorch."""

    def __init__(self, device: str = "cpu"):
        import torch

        from ..perceptual import load_lpips

        self.torch, self.device = torch, device
        self.net = load_lpips().to(device)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        t = self.torch
        ta = t.from_numpy(a).permute(2, 0, 1)[None].float().div(255).to(self.device)
        tb = t.from_numpy(b).permute(2, 0, 1)[None].float().div(255).to(self.device)
        with t.inference_mode():
            return float(self.net(ta, tb).item())


def load_lpips_metric(device: str = "cpu") -> LPIPSMetric | Unavailable:
    try:
        return LPIPSMetric(device)
    except (FileNotFoundError, ImportError, OSError, ValueError) as exc:
        return Unavailable(f"LPIPS backbone unavailable: {exc}")


class IdentityEmbedder:
    """dlib's ResNet face embedding (face-recognition-models): same person ≥ ~0.94 cosine on our data."""

    def __init__(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
            import dlib
            import face_recognition_models as frm
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self.dlib = dlib

    def descriptor(self, image: np.ndarray) -> np.ndarray | None:
        """dlib's 128-d descriptor of the largest face in a crop (L2 ≤ 0.6 ≈ same person), or None."""
        image = np.ascontiguousarray(image)
        faces = self.detector(image, 1)
        if not faces:
            return None
        box = max(faces, key=lambda r: r.width() * r.height())
        return np.asarray(self.net.compute_face_descriptor(image, self.shape(image, box)), dtype=np.float64)


def load_identity_embedder() -> IdentityEmbedder | Unavailable:
    try:
        return IdentityEmbedder()
    except (ImportError, RuntimeError, OSError) as exc:
        return Unavailable(f"dlib face embedding unavailable ({exc}); pip install 'mmfa-studio[eval]'")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def face_hull_mask(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """H×W bool: inside the convex hull of a face's landmarks (N×2 pixels)."""
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(landmarks)[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def laplacian_variance(image: np.ndarray, mask: np.ndarray) -> float:
    """The variance of the grey image's Laplacian where ``mask`` (H×W bool) holds: its fine detail."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1)[mask].var())


def detail_kept(output: np.ndarray, source: np.ndarray, mask: np.ndarray) -> float:
    """How much of the source's fine detail the output keeps inside ``mask``: the ratio of their Laplacian
    variances (1 = as sharp as the source; a blurred face is far below 1)."""
    return laplacian_variance(output, mask) / max(laplacian_variance(source, mask), 1e-9)
