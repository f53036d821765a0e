"""The generator side of one training step as one module (so DDP sees a single forward per step).

:class:`GeneratorStep` runs every generator-side network once and returns a typed :class:`StepOutput`;
:mod:`.objective` turns that into losses. Also here: the inputs a step makes from a batch
(:func:`expression_view`, :class:`TrackedChange`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..face.anchors import anchor_indices, closing_pairs
from ..model import MMFA
from ..model.closing_warp import ClosingRegion
from ..model.dense_motion import AnchorPoints
from ..model.expression_vae import ExpressionCode
from ..model.keypoints import rotation_matrix
from ..model.landmark_motion import landmark_weights, shift_to_deformation
from ..model.mmfa import RenderResult, SourceEncoding, TargetMotion
from ..model.motion_encoder import HeadMotion
from .dataset import PairSample


def expression_view(images: Tensor, generator: torch.Generator, rotation: float, scale: float, shift: float,
                    colour: float) -> Tensor:
    """An augmented copy of each image for the expression objective: in-plane rotation, zoom, shift and
    colour jitter, never a mirror flip (see :func:`losses.expression_invariance_loss`). B×3×H×W → same."""
    b = images.shape[0]
    u = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1)  # uniform in [-1, 1]
    angle = torch.deg2rad(u(b) * rotation)
    zoom = 1.0 + u(b) * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, u(b) * shift * 2], -1),
                         torch.stack([sin, cos, u(b) * shift * 2], -1)], 1)
    theta = theta.to(images.device, torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, align_corners=False, padding_mode="reflection")
    bright = (1 + u(b, 1, 1, 1) * colour).to(images.device)
    contrast = (1 + u(b, 1, 1, 1) * colour).to(images.device)
    sat = (1 + u(b, 1, 1, 1) * colour).to(images.device)
    out = out * bright
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    grey = (out * torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    out = (out - grey) * sat + grey
    return out.clamp(0, 1).to(images.dtype)


@dataclass
class TrackedChange:
    """The head's change from each source to its driving frame as the pose and placement labels give it (B pairs)."""

    turn: Tensor  # B×3 (yaw, pitch, roll) degrees
    has_turn: Tensor  # B bool
    zoom: Tensor  # B: driving scale / source scale
    shift: Tensor  # B×2 (x, y) in normalised units
    has_placement: Tensor  # B bool
    # train.landmark_expression: the source's landmarks B×N×2 and their non-rigid movement B×N×2 (normalised)
    landmarks: Tensor | None = None
    landmark_motion: Tensor | None = None
    has_landmarks: Tensor | None = None  # B bool
    driving_landmarks: Tensor | None = None  # B×N×2 (normalised): train.anchor_points
    # train.landmark_expression: whether the landmarks' movement also shifts the keypoints
    shift_keypoints: bool = True

    @classmethod
    def of(cls, batch: PairSample, landmarks: bool = False, anchors: bool = False) -> TrackedChange:
        """``landmarks``: the keypoints follow the landmarks' movement; ``anchors``: the mesh anchors join the
        render (both read the batch's landmarks)."""
        src, drv = batch.source_placement, batch.driving_placement
        tracked = landmarks or anchors
        return cls(batch.driving_pose - batch.source_pose, batch.has_pose, drv[:, 0] / src[:, 0].clamp_min(1e-6),
                   drv[:, 1:] - src[:, 1:], batch.has_placement,
                   batch.source_landmarks if tracked else None, batch.landmark_motion if tracked else None,
                   batch.has_landmarks if tracked else None, batch.driving_landmarks if anchors else None,
                   shift_keypoints=landmarks)

    def keypoint_shift(self, keypoints: Tensor) -> Tensor | None:
        """B×K×2 image-plane shifts of the source keypoints (B×K×≥2, normalised) by the landmarks' movement;
        None without landmarks."""
        if self.landmark_motion is None or not self.shift_keypoints:
            return None
        weights = landmark_weights(keypoints[..., :2].float(), self.landmarks.float(), crop_width=2.0)
        return (weights @ self.landmark_motion.float()) * self.has_landmarks[:, None, None]

    def anchor_points(self) -> AnchorPoints | None:
        """The mesh anchors where the source and the driving frame have them, as the render's extra spline points;
        None without them, or when a pair in the batch has no tracked face (the dataset draws such pairs again,
        so this is rare)."""
        if self.driving_landmarks is None or not bool(self.has_landmarks.all()):
            return None
        rows = torch.as_tensor(anchor_indices(), device=self.landmarks.device)
        return AnchorPoints(source=self.landmarks[:, rows].float(), driving=self.driving_landmarks[:, rows].float(),
                            closing=ClosingRegion.all_of(closing_pairs(), self.landmarks.device))


class View(IntEnum):
    """The step's four views of a pair, in the order the motion encoder sees them batched."""

    SOURCE = 0
    DRIVING = 1
    WARPED = 2  # the driving frame under the equivariance warp
    AUGMENTED = 3  # the driving frame under the expression augmentation


@dataclass
class ViewReadings:
    """The motion encoder's and the expression VAE's readings of all four views, batched: rows
    ``rows(view)`` of each tensor belong to ``view``."""

    motion: HeadMotion  # 4B
    pose: Tensor  # 4B×4 (yaw, pitch, roll, log s)
    mu: Tensor  # 4B×Z latent means
    logvar: Tensor  # 4B×Z
    mean_delta: Tensor  # 4B×K×3: δ decoded from μ (no sampling noise)
    batch: int  # B

    def rows(self, first: View, last: View | None = None) -> slice:
        """The rows of ``first`` (through ``last``, when given)."""
        return slice(first * self.batch, ((last if last is not None else first) + 1) * self.batch)


class FlowTarget(NamedTuple):
    """Where the dense flow must carry points (the arguments of :func:`losses.keypoint_flow_loss`)."""

    flow: Tensor  # B×S×S×2 image-plane flow
    driving: Tensor  # B×N×(2|3) points in the driving frame …
    source: Tensor  # … and where in the source they must come from


@dataclass
class StepOutput:
    """What one generator step computed (batch B): the objective reads every loss term from it."""

    source: SourceEncoding  # as :meth:`MMFA.encode_source` encodes it, δ as the render uses it
    views: ViewReadings
    driving_canonical: Tensor  # x_c of the driving frame (same identity as the source)
    render: RenderResult  # the driving frame rebuilt from the source
    render_delta: Tensor  # B×K×3: the model's own δ in the render's target (before any landmark shift)
    own_driving_keypoints: Tensor  # the render's x_d under that own δ (what the keypoint prior sees)
    # Posed keypoints of the driving frame and of its warp, each by the encoder's own reading (equivariance)
    equivariance_keypoints: Tensor
    equivariance_warped_keypoints: Tensor
    flow_targets: list[FlowTarget]  # empty unless loss.keypoint_flow is on

    @property
    def image(self) -> Tensor:
        return self.render.image


def split_motion(m: HeadMotion, i: int, b: int) -> HeadMotion:
    """The rows of the ``i``-th of several batches of ``b`` frames."""
    s = slice(i * b, (i + 1) * b)
    return HeadMotion(
        yaw=m.yaw[s], pitch=m.pitch[s], roll=m.roll[s], translation=m.translation[s], scale=m.scale[s],
        expression=m.expression[s], pose_logits=None if m.pose_logits is None else m.pose_logits[s],
    )


def image_flow(flow: Tensor) -> Tensor:
    """B×S×S×2 image-plane flow of either variant (volumetric: the depth-averaged (x, y), as the image warp uses)."""
    return flow if flow.dim() == 4 else flow[..., :2].mean(dim=1)


class GeneratorStep(nn.Module):
    """Runs every generator-side network once per step.

    Inputs (each B×3×H×W): source, driving, warped (driving under the equivariance warp), augmented
    (driving under the expression augmentation). Batched: the motion encoder sees 4B images, the keypoint
    detector 3B.
    """

    def __init__(self, mmfa: MMFA, expression_from_augmented: bool = True,
                 pose_edits: tuple[float, float] | None = None,
                 face_template: bool = False, render_expression: str = "sample"):
        super().__init__()
        self.mmfa = mmfa
        self.expression_from_augmented = expression_from_augmented
        self.render_from_mean = render_expression == "mean"
        self.pose_edits = pose_edits  # (max |yaw|, max |pitch|) of random source edits for the keypoint-flow loss
        self.face_template = face_template and pose_edits is not None
        if self.face_template:
            from ..face.depth import face_template_points

            points, offset = face_template_points()
            self.register_buffer("template_points", torch.from_numpy(points), persistent=False)  # N×3
            self.register_buffer("template_offset", torch.tensor(offset), persistent=False)  # 2

    def forward(self, source: Tensor, driving: Tensor, warped: Tensor, augmented: Tensor,
                tracked: TrackedChange | None = None) -> StepOutput:
        """``tracked``: the labels' change from source to driving, which replaces the encoder's reading of the
        driving pose where known: the driving render moves the source's own pose by it."""
        m, b = self.mmfa, source.shape[0]
        motion = m.motion_encoder(torch.cat([source, driving, warped, augmented]))
        mu, logvar = m.expression_vae.encode(motion.expression)
        z = m.expression_vae.reparameterize(mu, logvar)
        delta_mu = m.expression_vae.decode(mu)  # deterministic: equivariance and the expression objective
        # What rendering uses (the VAE's decoder is trained through it): sampled, or μ's (render_expression).
        delta_used = delta_mu if self.render_from_mean else m.expression_vae.decode(z)
        canonical = m.keypoint_detector(torch.cat([source, driving, warped]))
        part = lambda t, i: t[i * b:(i + 1) * b]
        src_m, drv_m, wrp_m = (split_motion(motion, i, b) for i in range(3))

        source_enc = m.assemble_source(source, src_m, ExpressionCode(part(mu, 0), part(logvar, 0), part(z, 0),
                                                                     part(delta_used, 0)), part(canonical, 0))
        render_delta = part(delta_used, View.AUGMENTED if self.expression_from_augmented else View.DRIVING)
        anchors = tracked.anchor_points() if tracked is not None else None
        if anchors is not None:  # as anchor models render: the anchors carry the expression, the keypoints the source's
            render_delta = part(delta_used, View.SOURCE)
        target = self._driving_target(source_enc, drv_m, render_delta, tracked)
        render = m.render(source_enc, target, anchors=anchors)
        # The keypoint prior sees the model's own keypoints: landmark shifts that bring two together (a closing
        # mouth) must not push the model's keypoints apart.
        own_keypoints = render.keypoints if target.delta is render_delta else m.pose_keypoints(
            source_enc.canonical, dataclasses.replace(target, delta=render_delta))[0]
        flows = self._flow_targets(source_enc, part(delta_mu, 0)) if self.pose_edits is not None else []

        # Equivariance compares the encoder's own readings of the driving frame and its warp.
        kp_d_eq, _ = m.pose_keypoints(part(canonical, 1), _own_target(drv_m, part(delta_mu, 1)))
        kp_w_eq, _ = m.pose_keypoints(part(canonical, 2), _own_target(wrp_m, part(delta_mu, 2)))
        views = ViewReadings(
            motion=motion, pose=torch.stack([motion.yaw, motion.pitch, motion.roll, torch.log(motion.scale)], -1),
            mu=mu, logvar=logvar, mean_delta=delta_mu, batch=b,
        )
        return StepOutput(
            source=source_enc, views=views, driving_canonical=part(canonical, 1), render=render,
            render_delta=render_delta, own_driving_keypoints=own_keypoints,
            equivariance_keypoints=kp_d_eq, equivariance_warped_keypoints=kp_w_eq, flow_targets=flows,
        )

    @staticmethod
    def _driving_target(source: SourceEncoding, read: HeadMotion, render_delta: Tensor,
                        tracked: TrackedChange | None) -> TargetMotion:
        """The driving render's target: the encoder's reading of the driving frame, or with ``tracked`` the
        source's own pose moved by the labels (and its keypoints by the landmarks' movement)."""
        angles, translation, scale = (read.yaw, read.pitch, read.roll), read.translation, read.scale
        delta = render_delta
        if tracked is not None:
            own = source.motion
            turned = (own.yaw, own.pitch, own.roll)
            angles = tuple(torch.where(tracked.has_turn, own_angle + tracked.turn[:, i].to(own_angle.dtype), read_angle)
                           for i, (own_angle, read_angle) in enumerate(zip(turned, angles)))
            placed = tracked.has_placement
            scale = torch.where(placed, own.scale * tracked.zoom.to(scale.dtype), scale)
            moved = own.translation + F.pad(tracked.shift.to(translation.dtype), (0, 1))  # z stays
            translation = torch.where(placed[:, None], moved, translation)
            # The landmarks' movement (mouth, eyes, brows) moves the keypoints as reenactment moves them. The
            # inputs are detached: this teaches the renderer to follow the shifts, not the keypoints to make them.
            # (The deformation prior sees the model's own δ only: it must not pull δ against the landmarks.)
            shift = tracked.keypoint_shift(source.keypoints.detach())
            if shift is not None:
                d = lambda t: t.detach().float()
                rotation = rotation_matrix(*(d(a) for a in angles))
                delta = render_delta + shift_to_deformation(shift, rotation, d(scale)).to(render_delta.dtype)
        return TargetMotion(*angles, translation, scale, delta)

    def _flow_targets(self, source: SourceEncoding, source_mean_delta: Tensor) -> list[FlowTarget]:
        """The app's use: the source under a new head pose. No image to compare with, but the dense motion
        must still carry every keypoint's neighbourhood along (keypoint_flow_loss). Every input is detached:
        this trains the dense-motion network only. (With gradients into the keypoints, the keypoints and δ
        chased their own targets and ran away.)"""
        max_yaw, max_pitch = self.pose_edits
        b, own = source.image.shape[0], source.motion
        unit = lambda: torch.rand(b, device=source.image.device) * 2 - 1
        d = lambda t: t.detach()
        frozen = dataclasses.replace(source, appearance=d(source.appearance), canonical=d(source.canonical),
                                     keypoints=d(source.keypoints), jacobian=d(source.jacobian))
        edit = TargetMotion(d(own.yaw) + max_yaw * unit(), d(own.pitch) + max_pitch * unit(), d(own.roll),
                            d(own.translation), d(own.scale), d(source_mean_delta))
        _, kp_e, motion_e = self.mmfa.estimate_motion(frozen, edit)
        flow_e = image_flow(motion_e.flow)
        flows = [FlowTarget(flow_e, kp_e, source.keypoints)]
        if self.face_template:
            # The inner face as a rigid template, posed like the source and like the edit: the whole face
            # turns, not only the neighbourhoods of the (central) keypoints.
            flows.append(FlowTarget(flow_e, *self._template_pair(own, edit)))
        return flows

    def _template_pair(self, source: HeadMotion, edit: TargetMotion) -> tuple[Tensor, Tensor]:
        """(B×N×2 template points under the edit, B×N×2 the same points under the source's pose).

        Posed about the face centre at the crop's fixed framing (face/depth.py), not with the model's own s and
        t: those live in the learned canonical frame, while the flow is compared in crop coordinates."""
        pts = self.template_points.float()

        def posed(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
            rotation = rotation_matrix(yaw.detach().float(), pitch.detach().float(), roll.detach().float())
            return (pts @ rotation.transpose(1, 2))[..., :2] + self.template_offset

        return posed(edit.yaw, edit.pitch, edit.roll), posed(source.yaw, source.pitch, source.roll)


def _own_target(motion: HeadMotion, delta: Tensor) -> TargetMotion:
    return TargetMotion(motion.yaw, motion.pitch, motion.roll, motion.translation, motion.scale, delta)


__all__ = ["FlowTarget", "GeneratorStep", "StepOutput", "TrackedChange", "View", "ViewReadings", "expression_view",
           "image_flow", "split_motion"]
