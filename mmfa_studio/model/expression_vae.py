"""Expression VAE: expression feature → Gaussian latent z (μ, log σ²) → keypoint deformation δ."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import full_precision


@dataclass
class ExpressionCode:
    mu: Tensor  # B×Z
    logvar: Tensor  # B×Z
    z: Tensor  # B×Z (a sample in training, μ in evaluation)
    delta: Tensor  # B×K×3


class ExpressionVAE(nn.Module):
    """Maps expression features (B×E) to a latent z ~ N(μ, σ²) (B×Z) and decodes z to δ (B×K×3).

    Usable on its own: :meth:`encode`, :meth:`sample_prior`, :meth:`decode`, :func:`interpolate`.
    """

    def __init__(self, feature_dim: int, latent_dim: int, hidden: int, num_keypoints: int, max_delta: float = 0.0):
        super().__init__()
        self.latent_dim, self.num_keypoints = latent_dim, num_keypoints
        self.max_delta = max_delta  # > 0: δ = max_delta·tanh(raw / max_delta), so δ cannot run away
        self.encoder = nn.Sequential(nn.Linear(feature_dim, hidden), nn.LeakyReLU(0.2))
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, num_keypoints * 3),
        )
        # δ starts near zero so an untrained model renders about the canonical keypoints (not exactly zero,
        # which would block the gradient to the decoder's inner layers at the first step).
        nn.init.normal_(self.decoder[-1].weight, std=1e-3)
        nn.init.zeros_(self.decoder[-1].bias)

    def encode(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        """B×E → (μ, log σ²), each B×Z (fp32 under autocast)."""
        with full_precision(feature):
            h = self.encoder(feature.float())
            return self.to_mu(h), self.to_logvar(h).clamp(-10.0, 10.0)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """z = μ + σ·ε, ε ~ N(0, I)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor) -> Tensor:
        """B×Z → δ, B×K×3 (deterministic; fp32 under autocast)."""
        with full_precision(z):
            delta = self.decoder(z.float()).view(-1, self.num_keypoints, 3)
            if self.max_delta > 0:  # about the identity for small δ, so unbounded weights carry over
                delta = self.max_delta * torch.tanh(delta / self.max_delta)
            return delta

    def sample_prior(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """n latents from N(0, I), n×Z."""
        device = device or self.to_mu.weight.device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def forward(self, feature: Tensor, sample: bool | None = None) -> ExpressionCode:
        """Encode and decode; samples z in training mode (or when ``sample``), else uses μ."""
        mu, logvar = self.encode(feature)
        sample = self.training if sample is None else sample
        z = self.reparameterize(mu, logvar) if sample else mu
        return ExpressionCode(mu=mu, logvar=logvar, z=z, delta=self.decode(z))


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) of each latent dimension, B×Z; ≥ 0."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over latent dims, averaged over the batch; ≥ 0."""
    return kl_per_dimension(mu, logvar).sum(dim=-1).mean()


def interpolate(z0: Tensor, z1: Tensor, t: float | Tensor, mode: str = "linear") -> Tensor:
    """Latents between z0 (t = 0) and z1 (t = 1), each B×Z; ``mode`` is 'linear' or 'slerp'.

    Spherical interpolation keeps the norm typical of Gaussian samples, so midpoints between two prior
    samples stay in the region the decoder was trained on.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    if t.dim() == 1:
        t = t[:, None]
    if mode == "linear":
        return torch.lerp(z0, z1, t)  # exact at both ends
    if mode != "slerp":
        raise ValueError(f"interpolation mode must be 'linear' or 'slerp', not {mode!r}")
    n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
    cos = ((z0 * z1).sum(-1, keepdim=True) / (n0 * n1).clamp_min(1e-8)).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    small = sin.abs() < 1e-5  # (anti)parallel: fall back to linear
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / sin.where(~small, torch.ones_like(sin)))
    w1 = torch.where(small, t, torch.sin(t * omega) / sin.where(~small, torch.ones_like(sin)))
    return w0 * z0 + w1 * z1
