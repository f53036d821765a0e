"""Fit the anchor expression VAE and the named controls from the face tracker's landmarks (the teacher).

Every tracked frame of a prepared dataset (``prepare --landmarks``) gives the canonical layout of the face's
anchors (``face.anchors.canonical_anchors``: pose, size and place removed). The VAE reads a frame's whole layout
and must give back its offsets from the clip's mean layout: the expression without the person. The controls
are then directions in its latent along which the tracker's measures move one at a time (mouth opening, mouth
width, each eye's opening, brow height), scaled so that 1 is the training frames' 99th percentile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..face.anchors import anchor_measures, canonical_anchors, scale_lids, steady_anchor_rows
from ..model.anchor_expression import AnchorExpressionVAE
from ..model.expression_vae import kl_per_dimension
from ..motion import ExpressionControls
from .landmarks import load_clip_landmarks
from .prepared import load_index

MIN_FRAMES = 8  # a clip's mean layout needs a few frames to stand for the person


@dataclass
class TeacherFrames:
    layouts: np.ndarray  # F×N×3 canonical anchor layouts
    offsets: np.ndarray  # F×N×3 offsets from each frame's clip mean layout
    clips: np.ndarray  # F clip numbers


def teacher_frames(root: str) -> TeacherFrames:
    """The tracked frames of the prepared dataset at ``root`` (clips without landmarks are skipped)."""
    index = load_index(root)
    layouts, offsets, clips = [], [], []
    for number, clip in enumerate(index.clips):
        tracked = load_clip_landmarks(index.root, clip.id, clip.frames)
        if tracked is None or tracked.found.sum() < MIN_FRAMES:
            continue
        frames = np.flatnonzero(tracked.found)
        points = np.concatenate([tracked.points[frames], tracked.depth[frames, :, None]], axis=2)
        clip_layouts = np.stack([canonical_anchors(p) for p in points])
        layouts.append(clip_layouts)
        offsets.append(clip_layouts - clip_layouts.mean(axis=0))
        clips.append(np.full(len(frames), number))
    if not layouts:
        raise ValueError(f"no tracked landmarks in {root}: prepare it with --landmarks")
    return TeacherFrames(np.concatenate(layouts), np.concatenate(offsets), np.concatenate(clips))


def fit_vae(frames: TeacherFrames, latent_dim: int = 16, hidden: int = 256, steps: int = 4000, batch: int = 256,
            lr: float = 1e-3, kl_weight: float = 1e-3, free_nats: float = 0.1, mix_identities: float = 0.0,
            closed_lids: float = 0.0, seed: int = 0, log=None) -> AnchorExpressionVAE:
    """The VAE fitted to ``frames``: offsets reconstructed (in units of their RMS) + KL with free bits.

    ``mix_identities``: the share of each batch whose expression offsets are put on another clip's mean layout
    (another person's face making the same expression); about a hundred people otherwise teach the encoder who
    they are, and on a new face it reads part of the expression as identity. ``closed_lids``: the share of each
    batch whose lids are closed by a random factor (:func:`~mmfa_studio.face.anchors.scale_lids`), one eye in
    :data:`WINKS` of them, both in the rest: the training clips hold few winks, and a latent fitted to them shut
    one eye only by half-shutting the other."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vae = AnchorExpressionVAE(frames.layouts.shape[1], latent_dim, hidden)
    layouts = torch.as_tensor(frames.layouts, dtype=torch.float32)
    offsets = torch.as_tensor(frames.offsets, dtype=torch.float32)
    clip_means = layouts - offsets  # each frame's clip mean layout: its person's face at rest
    vae.neutral.copy_(layouts.mean(dim=0))
    vae.scale.copy_(offsets.pow(2).mean().sqrt())
    optimiser = torch.optim.Adam(vae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    vae.train()
    for step in range(steps):
        pick = torch.as_tensor(rng.integers(len(layouts), size=batch))
        faces = layouts[pick]
        mixed = torch.as_tensor(rng.random(batch) < mix_identities)
        other = torch.as_tensor(rng.integers(len(layouts), size=batch))
        faces = torch.where(mixed[:, None, None], clip_means[other] + offsets[pick], faces)
        targets = faces - clip_means[torch.where(mixed, other, pick)]
        if closed_lids > 0:
            closing = torch.as_tensor(rng.random(batch) < closed_lids)
            factors = torch.as_tensor(rng.random((batch, 1)), dtype=torch.float32).expand(-1, 2).clone()
            one_eye = torch.as_tensor(rng.random(batch) < WINKS)
            kept = torch.as_tensor(rng.integers(2, size=batch))  # the eye a wink keeps open
            factors[one_eye, kept[one_eye]] = 1.0
            factors[~closing] = 1.0
            closed = scale_lids(faces, factors)
            targets, faces = targets + closed - faces, closed
        code = vae(faces)
        reconstruction = ((code.delta - targets) / vae.scale).pow(2).mean()
        kl = (kl_per_dimension(code.mu, code.logvar).mean(0) - free_nats).clamp_min(0).sum()
        loss = reconstruction + kl_weight * kl
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if log is not None and (step % 500 == 0 or step == steps - 1):
            log(f"step {step}: reconstruction {reconstruction.item():.4f} (of the offsets' variance), "
                f"KL {kl.item():.2f}")
    return vae.eval()


WINKS = 0.7  # the share of fit_vae's closed lids that close one eye only


MEASURES = ("mouth_open", "mouth_width", "eye_open_left", "eye_open_right", "brow_height")
# control → the measures it moves and their sign (each to the training frames' 99th percentile); every other
# measure is held where it is.
CONTROL_TARGETS = {
    "mouth_open": {"mouth_open": 1.0}, "smile": {"mouth_width": 1.0},
    "blink": {"eye_open_left": -1.0, "eye_open_right": -1.0},
    "blink_left": {"eye_open_left": -1.0}, "blink_right": {"eye_open_right": -1.0},
    "brows": {"brow_height": 1.0},
}


def _measure_tensor(vae: AnchorExpressionVAE, z: torch.Tensor) -> torch.Tensor:
    values = anchor_measures(vae.neutral + vae.decode(z))
    return torch.stack([values[m] for m in MEASURES], dim=-1)


def fit_controls(vae: AnchorExpressionVAE, frames: TeacherFrames, steps: int = 400,
                 latent_cost: float = 1e-3, steady_cost: float = 100.0) -> ExpressionControls:
    """Per control, the latent step Δz from the mean expression (z = 0) after which the decoded anchors show that
    control's measures risen to the 99th percentile of the training frames' rise above their clip's median, and
    the other measures unchanged (each measure in units of that reach; a small cost on |Δz| keeps the step
    where the decoder was trained). ``steady_cost`` weighs the mean squared movement (inter-ocular units) of the
    anchors the tracker reads the pose from: a control that moves them turns the head as measured."""
    with torch.no_grad():
        z = vae.encode(torch.as_tensor(frames.layouts, dtype=torch.float32))[0]
        measured = _measure_tensor(vae, z).numpy().astype(np.float64)  # F×M, what the decoder shows
    for clip in np.unique(frames.clips):
        rows = frames.clips == clip
        measured[rows] -= np.median(measured[rows], axis=0)
    reach_up = np.percentile(measured, 99, axis=0)
    reach_down = -np.percentile(measured, 1, axis=0)
    # (a measure the training frames never move would divide by zero)
    scale = torch.as_tensor(np.maximum(np.maximum(reach_up, reach_down), 1e-6), dtype=torch.float32)
    steady = torch.as_tensor(steady_anchor_rows())
    with torch.no_grad():
        start = _measure_tensor(vae, torch.zeros(1, vae.latent_dim))[0]
        rest = vae.decode(torch.zeros(1, vae.latent_dim))[0, steady]
    directions: dict[str, list[float]] = {}
    for name, moves in CONTROL_TARGETS.items():
        target = torch.zeros(len(MEASURES))
        for measure, sign in moves.items():
            i = MEASURES.index(measure)
            target[i] = sign * float(reach_up[i] if sign > 0 else reach_down[i])
        step = torch.zeros(1, vae.latent_dim, requires_grad=True)
        optimiser = torch.optim.Adam([step], lr=0.05)
        for _ in range(steps):
            change = _measure_tensor(vae, step)[0] - start
            moved = (vae.decode(step)[0, steady] - rest).pow(2).sum(-1).mean()
            loss = (((change - target) / scale).pow(2).sum() + latent_cost * step.pow(2).sum()
                    + steady_cost * moved)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        directions[name] = step.detach()[0].tolist()
    return ExpressionControls(directions, {"brows": (-1.0, 1.0)})


__all__ = ["CONTROL_TARGETS", "MEASURES", "TeacherFrames", "fit_controls", "fit_vae", "teacher_frames"]
