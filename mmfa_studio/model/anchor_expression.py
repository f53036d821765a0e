"""Expression VAE over dense face anchors: anchor offsets δ (N×3) → Gaussian latent z → δ.

The 15 learned keypoints cannot carry an eyelid or a lip, and the keypoint VAE's latent collapsed when trained by
reconstruction alone. This VAE learns from a teacher instead: the face tracker's mesh, whose anchors
(``face/anchors.py``) give every training frame's expression as offsets in the canonical, de-posed frame from
its clip's mean layout. Its decoder's δ moves the anchors in the dense motion's spline, so the composition
x = s·R·(x_c + δ) + t holds for them as for the keypoints, and z ~ N(0, I) can be sampled and interpolated.

The encoder reads a face's whole anchor layout (its offsets from ``neutral``, the training frames' mean layout),
identity included, and was taught to answer with the expression alone: its targets were offsets from each
clip's own mean layout. So one photo, with no neutral frame of that person, still gets its expression's code.
Offsets are in canonical-face units (inter-ocular distance 1); ``scale`` whitens them for the networks. Both
buffers are fitted with the weights (``train/expression_fit.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import full_precision
from .expression_vae import ExpressionCode


class AnchorExpressionVAE(nn.Module):
    """δ B×N×3 ↔ z B×Z. ``encode`` → (μ, log σ²); ``decode`` → δ; ``forward`` → :class:`ExpressionCode`."""

    def __init__(self, anchors: int, latent_dim: int, hidden: int):
        super().__init__()
        self.anchors, self.latent_dim = anchors, latent_dim
        self.register_buffer("neutral", torch.zeros(anchors, 3))  # the training frames' mean anchor layout
        self.register_buffer("scale", torch.ones(()))  # the expression offsets' RMS over the training frames
        self.encoder = nn.Sequential(nn.Linear(anchors * 3, hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, hidden), nn.LeakyReLU(0.2))
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, anchors * 3))

    def encode(self, layout: Tensor) -> tuple[Tensor, Tensor]:
        """A face's canonical anchor layout B×N×3 → (μ, log σ²), each B×Z (fp32)."""
        with full_precision(layout):
            h = self.encoder(((layout.float() - self.neutral) / self.scale).flatten(1))
            return self.to_mu(h), self.to_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: Tensor) -> Tensor:
        """B×Z → the expression's anchor offsets δ, B×N×3 (fp32, canonical units)."""
        with full_precision(z):
            return self.decoder(z.float()).view(-1, self.anchors, 3) * self.scale

    def decode_jacobian(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """One latent z (Z,) → (δ flattened, (N·3,); its Jacobian ∂δ/∂z, (N·3)×Z), fp32, canonical units.

        The chain rule through the decoder's Linear and LeakyReLU layers by hand, in one pass: reenactment
        takes a Gauss-Newton step per frame, and ``torch.func.jacfwd`` spent over a millisecond on it."""
        with full_precision(z):
            x = z.float().reshape(-1)
            jacobian = torch.eye(self.latent_dim, device=x.device)
            for layer in self.decoder:
                if isinstance(layer, nn.Linear):
                    jacobian = layer.weight.float() @ jacobian
                else:  # LeakyReLU: its slope where each unit's input lies
                    jacobian = torch.where(x > 0, 1.0, layer.negative_slope)[:, None] * jacobian
                x = layer(x)
            return x * self.scale, jacobian * self.scale

    def forward(self, layout: Tensor, sample: bool | None = None) -> ExpressionCode:
        mu, logvar = self.encode(layout)
        sample = self.training if sample is None else sample
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        return ExpressionCode(mu=mu, logvar=logvar, z=z, delta=self.decode(z))
