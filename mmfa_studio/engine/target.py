"""Motion → render target: the one definition, shared by eager rendering and the CUDA-graph replay.

Two steps, each written once:

* :func:`pack_targets` (host, numpy): each :class:`ModelMotion` (model angles) with the source's own
  :class:`FaceMotion` and an optional keypoint shift → one float32 row laid out by :class:`TargetLayout`:
  the absolute pose (relative motions: angles and translation add to the source's, scale multiplies it), the
  expression latent z_src + strength·(z − z_src) with a flag saying whether to use it, and the shift.
* :func:`target_from_rows` (device, torch): rows → :class:`TargetMotion`: decode the latent where flagged
  (else the source's own δ, exactly), then add the shift's deformation δ += Rᵀ·(o, 0) / s
  (``shift_to_deformation``), so x = s·R·(x_c + δ) + t moves by o.

Eager rendering sends a batch of rows; a CUDA graph is captured around :func:`target_from_rows` on one static
row, so a replay changes only the row's numbers. A row without a latent or a shift renders exactly as one
that skips those steps (``torch.where`` keeps δ_src bit for bit; a zero shift adds exact zeros), which is what
lets the graph always take both steps and the eager path skip them when no row needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmfa_studio.model import SourceEncoding, TargetMotion
from mmfa_studio.model.keypoints import rotation_matrix
from mmfa_studio.model.landmark_motion import shift_to_deformation

from ..motion import ModelMotion

if TYPE_CHECKING:
    from .core import FaceMotion

Decoder = Callable[[torch.Tensor], torch.Tensor]  # latents B×Z → δ B×K×3 (the expression VAE's decoder)


@dataclass(frozen=True)
class TargetLayout:
    """Where each number sits in a packed target row: turn (yaw, pitch, roll), scale, translation (3), latent (Z),
    use-latent flag, keypoint shift (K×2, flattened)."""

    latent_dim: int
    keypoints: int

    turn = slice(0, 3)
    scale = 3
    translation = slice(4, 7)

    @property
    def latent(self) -> slice:
        return slice(7, 7 + self.latent_dim)

    @property
    def use_latent(self) -> int:
        return 7 + self.latent_dim

    @property
    def shift(self) -> slice:
        return slice(8 + self.latent_dim, self.width)

    @property
    def width(self) -> int:
        return 8 + self.latent_dim + 2 * self.keypoints

    @classmethod
    def of(cls, encoding: SourceEncoding) -> TargetLayout:
        return cls(latent_dim=encoding.expression.mu.shape[-1], keypoints=encoding.keypoints.shape[-2])


def pack_targets(own: FaceMotion, motions: Sequence[ModelMotion], layout: TargetLayout,
                 keypoint_shifts: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """One packed row per motion (B×width float32) for a source whose own motion is ``own``.

    ``keypoint_shifts``: one K×2 shift (normalised units, crop width = 2) or None per motion.
    """
    if keypoint_shifts is not None and len(keypoint_shifts) != len(motions):
        raise ValueError(f"{len(keypoint_shifts)} keypoint shifts for {len(motions)} motions")
    rows = np.zeros((len(motions), layout.width), dtype=np.float64)
    own_turn = np.array([own.yaw, own.pitch, own.roll], dtype=np.float64)
    own_translation = own.translation.astype(np.float64)
    z_src = own.expression.astype(np.float64)
    for row, motion in zip(rows, motions):
        if not isinstance(motion, ModelMotion):  # the user's degrees must go through the pose calibration first
            raise TypeError(f"a render target needs a ModelMotion (model angles), not {type(motion).__name__}")
        turn, shift = np.array(motion.turn, dtype=np.float64), np.array(motion.shift, dtype=np.float64)
        if motion.relative:
            row[layout.turn] = own_turn + turn
            row[layout.scale] = own.scale * motion.scale
            row[layout.translation] = own_translation + shift
        else:
            row[layout.turn], row[layout.scale], row[layout.translation] = turn, motion.scale, shift
        if motion.expression is not None:
            row[layout.latent] = z_src + motion.expression_strength * (np.asarray(motion.expression) - z_src)
            row[layout.use_latent] = 1.0
    for row, shift in zip(rows, keypoint_shifts or ()):
        if shift is not None:
            row[layout.shift] = np.asarray(shift, dtype=np.float64).reshape(-1)
    return rows.astype(np.float32)


def target_from_rows(rows: torch.Tensor, layout: TargetLayout, encoding: SourceEncoding, decode: Decoder,
                     with_latent: bool = True, with_shift: bool = True) -> TargetMotion:
    """The model-side target of packed rows (B×width float32 on the model's device).

    ``with_latent`` / ``with_shift`` False skip the decoder / the shift when no row uses them (eager rendering);
    the result is the same as taking the step, so a CUDA graph always takes both.
    """
    own, delta_src = encoding.motion, encoding.expression.delta.float()
    batch = rows.shape[0]
    turn = rows[:, layout.turn]
    scale = rows[:, layout.scale]
    delta = delta_src.expand(batch, -1, -1).clone()  # its own memory: the renderer may work on it in place
    if with_latent:
        use = rows[:, layout.use_latent] > 0.5
        delta = torch.where(use[:, None, None], decode(rows[:, layout.latent]).float(), delta)
    if with_shift:
        shift = rows[:, layout.shift].reshape(batch, layout.keypoints, 2)
        rotation = rotation_matrix(turn[:, 0], turn[:, 1], turn[:, 2])
        delta = delta + shift_to_deformation(shift, rotation, scale)
    # The cached source's dtypes, so a zero edit reproduces the source keypoints exactly.
    return TargetMotion(yaw=turn[:, 0].to(own.yaw.dtype), pitch=turn[:, 1].to(own.pitch.dtype),
                        roll=turn[:, 2].to(own.roll.dtype),
                        translation=rows[:, layout.translation].to(own.translation.dtype),
                        scale=scale.to(own.scale.dtype), delta=delta.to(encoding.expression.delta.dtype))


__all__ = ["TargetLayout", "pack_targets", "target_from_rows"]
