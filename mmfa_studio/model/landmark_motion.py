"""Keypoint shifts from face-landmark movement: how reenactment (and training, with
``train.landmark_expression``) moves the mouth, eyes and brows when the expression latent carries too little.

Each keypoint moves by a Gaussian-weighted mean of the movement of the landmarks around it; a keypoint far from
every landmark stays put (``FAR`` is the weight of "no movement"). The shift o (image plane) enters the
composition x = s·R·(x_c + δ) + t as δ += Rᵀ·(o, 0) / s, so the posed keypoint moves by exactly o.
The settings were chosen on training clips, not the validation ones (0.04–0.06 crop widths and 0.05–1 for
``FAR`` gave the same reconstruction).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

KERNEL = 0.05  # the Gaussian's radius, in crop widths
FAR = 0.3


def landmark_weights(keypoints: Tensor, landmarks: Tensor, crop_width: float, kernel: float = KERNEL,
                     far: float = FAR) -> Tensor:
    """Keypoints B×K×2 and landmarks B×N×2 in one unit, of which the crop is ``crop_width`` wide (its size in
    pixels, or 2 in normalised units) → weights B×K×N; ``kernel`` in crop widths.

    Each row sums to less than 1: the rest is the weight of not moving."""
    d2 = (keypoints[:, :, None, :] - landmarks[:, None, :, :]).pow(2).sum(-1)
    weights = torch.exp(-d2 / (2.0 * (kernel * crop_width) ** 2))
    return weights / (weights.sum(dim=-1, keepdim=True) + far)


def shift_to_deformation(shift: Tensor, rotation: Tensor, scale: Tensor) -> Tensor:
    """Image-plane keypoint shifts o (B×K×2) → the δ (B×K×3) that moves x = s·R·(x_c + δ) + t by (o, 0):
    δ = Rᵀ·(o, 0) / s, for rotation R (B×3×3) and scale s (B)."""
    return (F.pad(shift, (0, 1)) @ rotation) / scale[:, None, None]  # row vectors: (Rᵀ·o)ᵀ = oᵀ·R
