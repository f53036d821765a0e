"""Named controls fitted over an anchor latent: each reaches its measure and leaves the pose anchors still."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mmfa_studio.face.anchors import anchor_indices, mean_face_anchors, steady_anchor_rows
from mmfa_studio.train.expression_fit import TeacherFrames, fit_controls

LOWER_LIP = (14, 87, 178, 317, 402)


class LinearVAE(nn.Module):
    """A stand-in anchor VAE: z (2) → anchor offsets. Dimension 0 drops the lower lip and shifts the pose
    anchors (nose, outline), dimension 1 drops the lower lip alone."""

    def __init__(self):
        super().__init__()
        n = len(anchor_indices())
        self.latent_dim, self.anchors = 2, n
        self.register_buffer("neutral", torch.as_tensor(mean_face_anchors(), dtype=torch.float32))
        basis = torch.zeros(2, n, 3)
        lip = torch.as_tensor(np.searchsorted(anchor_indices(), LOWER_LIP))
        basis[:, lip, 1] = 0.2
        basis[0, torch.as_tensor(steady_anchor_rows()), 0] = 0.2
        self.register_buffer("basis", basis)
        self.codes = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bz,znc->bnc", z, self.basis)

    def encode(self, layouts: torch.Tensor):
        return self.codes[: len(layouts)], torch.zeros(len(layouts), 2)


def test_a_control_avoids_the_latent_that_moves_the_pose_anchors():
    vae = LinearVAE()
    frames = TeacherFrames(np.zeros((64, vae.anchors, 3)), np.zeros((64, vae.anchors, 3)), np.repeat(np.arange(4), 16))
    steady = fit_controls(vae, frames, steps=300).directions["mouth_open"]
    loose = fit_controls(vae, frames, steps=300, steady_cost=0.0).directions["mouth_open"]
    assert steady[1] > 0 and abs(steady[0]) < 0.1 * steady[1]  # the lip alone
    assert loose[0] > 0.5 * loose[1]  # without the cost, both dimensions share the work
    rows = steady_anchor_rows()
    assert len(rows) and not np.isin(anchor_indices()[rows], LOWER_LIP).any()


def test_closed_lids_teach_the_vae_a_wink_its_frames_never_show():
    """Frames whose mouth opens and closes but whose eyes never shut: fitted with ``closed_lids`` the VAE gives back
    a face with one eye shut (the other open) from its latent; fitted without, it opens the shut eye."""
    from mmfa_studio.face.anchors import anchor_measures, scale_lids
    from mmfa_studio.train.expression_fit import fit_vae

    rng = np.random.default_rng(0)
    face = mean_face_anchors()
    lip = np.searchsorted(anchor_indices(), LOWER_LIP)
    layouts = np.repeat(face[None], 96, axis=0)
    layouts[:, lip, 1] += rng.uniform(0.0, 0.3, size=(96, 1))  # mouths opening by different amounts
    frames = TeacherFrames(layouts, layouts - layouts.mean(0), np.zeros(96, dtype=int))
    wink = scale_lids(torch.as_tensor(face, dtype=torch.float32)[None], torch.tensor([[0.1, 1.0]]))
    own = anchor_measures(face)

    def reconstructed(closed_lids):
        vae = fit_vae(frames, latent_dim=4, hidden=64, steps=1500, batch=64, closed_lids=closed_lids, seed=0)
        with torch.no_grad():
            mu, _ = vae.encode(wink)
            out = anchor_measures(vae.neutral + vae.decode(mu)[0])  # the frames' mean face and the decoded code
        return float(out["eye_open_left"]) / float(own["eye_open_left"]), \
            float(out["eye_open_right"]) / float(own["eye_open_right"])

    left, right = reconstructed(0.5)
    assert left < 0.6 and right > 0.8
    untaught_left, _ = reconstructed(0.0)
    assert untaught_left > 0.8
