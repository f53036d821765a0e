"""The MMFA model: encode a source once, then render it under any head pose and expression.

    source image ─► appearance encoder ─► features F_s            (cached)
                 ─► keypoint detector  ─► canonical x_c          (cached, identity only)
                 ─► motion encoder     ─► R_s, t_s, s_s, f_s ─► VAE ─► δ_s
    target motion (R, t, s, δ) ─► x_d = s·R·(x_c + δ) + t
    (x_s, x_d, J = A_s·A_d⁻¹) ─► dense motion ─► flow, occlusion ─► warp F_s ─► generator ─► image
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .anchor_expression import AnchorExpressionVAE
from .appearance import AppearanceEncoder
from .blocks import full_precision, make_coordinate_grid
from .closing_warp import closing_flow
from .config import ModelConfig
from .dense_motion import AnchorPoints, DenseMotion, DenseMotion2D, DenseMotion3D
from .expression_vae import ExpressionCode, ExpressionVAE
from .flow_smoothing import smooth_flow
from .flow_stretch import log_area_change
from .generator import Generator, GeneratorOutput, resized_source
from .head_region import composite, confine_flow, head_region
from .keypoint_detector import CanonicalKeypointDetector
from .keypoints import compose_keypoints, keypoint_jacobians, rotation_matrix
from .motion_encoder import HeadMotion, MotionEncoder


@dataclass
class TargetMotion:
    """What a frame is rendered with: pose (degrees, model conventions) and expression deformation."""

    yaw: Tensor  # B
    pitch: Tensor  # B
    roll: Tensor  # B
    translation: Tensor  # B×3
    scale: Tensor  # B
    delta: Tensor  # B×K×3

    @classmethod
    def from_encoding(cls, motion: HeadMotion, expression: ExpressionCode) -> TargetMotion:
        return cls(motion.yaw, motion.pitch, motion.roll, motion.translation, motion.scale, expression.delta)

    def with_changes(self, **changes: Tensor) -> TargetMotion:
        return replace(self, **changes)


@dataclass
class SourceEncoding:
    """Everything about a source image that does not depend on the target motion (batch B)."""

    image: Tensor  # B×3×H×W in [0, 1]
    appearance: Tensor  # B×C×S×S (hybrid) or B×C×D×S×S (volumetric)
    canonical: Tensor  # x_c, B×K×3
    motion: HeadMotion  # the source's own pose and expression feature
    expression: ExpressionCode  # the source's expression (z = μ)
    keypoints: Tensor  # x_s, B×K×3
    jacobian: Tensor  # A_s = s_s·R_s, B×3×3

    @property
    def own_motion(self) -> TargetMotion:
        return TargetMotion.from_encoding(self.motion, self.expression)


@dataclass
class RenderResult:
    output: GeneratorOutput
    motion: DenseMotion
    keypoints: Tensor  # driving keypoints x_d, B×K×3
    region: Tensor | None = None  # B×S×S head region (weight of the render; the source outside), if confined

    @property
    def image(self) -> Tensor:
        return self.output.image


@dataclass
class TrainingForward:
    source: SourceEncoding
    driving_motion: HeadMotion
    driving_expression: ExpressionCode
    driving_canonical: Tensor  # x_c of the driving frame (same identity), for the canonical consistency
    render: RenderResult


class MMFA(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.appearance_encoder = AppearanceEncoder(cfg)
        self.keypoint_detector = CanonicalKeypointDetector(cfg)
        self.motion_encoder = MotionEncoder(cfg)
        self.expression_vae = ExpressionVAE(cfg.expression_dim, cfg.latent_dim, cfg.vae_hidden, cfg.num_keypoints,
                                            cfg.max_delta)
        if cfg.variant == "hybrid":
            self.dense_motion: nn.Module = DenseMotion2D(cfg)
            gen_in = cfg.appearance_channels + int(cfg.generator_stretch)
        else:
            self.dense_motion = DenseMotion3D(cfg)
            self.project = nn.Conv2d(cfg.volume_channels * cfg.volume_depth, cfg.generator_channels[0], 1)
            gen_in = cfg.generator_channels[0]
        self.generator = Generator(cfg, gen_in)
        self.anchor_expression = (AnchorExpressionVAE(cfg.anchor_count, cfg.anchor_latent_dim, cfg.anchor_hidden)
                                  if cfg.anchor_latent_dim > 0 else None)

    # -- encoding ---------------------------------------------------------------------------------
    def encode_motion(self, image: Tensor) -> tuple[HeadMotion, ExpressionCode]:
        """B×3×H×W → pose and expression (z sampled in training mode, μ otherwise)."""
        motion = self.motion_encoder(image)
        return motion, self.expression_vae(motion.expression)

    def encode_source(self, image: Tensor) -> SourceEncoding:
        """B×3×H×W in [0, 1] (H = image_size) → :class:`SourceEncoding`."""
        if image.shape[-1] != self.cfg.image_size or image.shape[-2] != self.cfg.image_size:
            raise ValueError(f"source must be B×3×{self.cfg.image_size}×{self.cfg.image_size}, "
                             f"got {tuple(image.shape)}")
        motion, expression = self.encode_motion(image)
        return self.assemble_source(image, motion, expression, self.keypoint_detector(image))

    def assemble_source(self, image: Tensor, motion: HeadMotion, expression: ExpressionCode,
                        canonical: Tensor) -> SourceEncoding:
        """The :class:`SourceEncoding` of a source whose motion, expression and canonical keypoints are already
        read (training reads them batched with other frames): its own posed keypoints and its appearance."""
        kp, jac = self.pose_keypoints(canonical, TargetMotion.from_encoding(motion, expression))
        return SourceEncoding(
            image=image, appearance=self.appearance_encoder(image), canonical=canonical,
            motion=motion, expression=expression, keypoints=kp, jacobian=jac,
        )

    @staticmethod
    def pose_keypoints(canonical: Tensor, target: TargetMotion) -> tuple[Tensor, Tensor]:
        """x = s·R·(x_c + δ) + t (B×K×3) and its linear part A = s·R (B×3×3), in fp32 even under autocast."""
        with full_precision(canonical):
            f = lambda t: t.float()
            rotation = rotation_matrix(f(target.yaw), f(target.pitch), f(target.roll))
            kp = compose_keypoints(f(canonical), f(target.delta), rotation, f(target.translation), f(target.scale))
            return kp, keypoint_jacobians(rotation, f(target.scale))

    # -- rendering --------------------------------------------------------------------------------
    def render(self, source: SourceEncoding, target: TargetMotion, all_scales: bool = True,
               anchors: AnchorPoints | None = None) -> RenderResult:
        """Render the source under ``target`` motion. Batch sizes must match (or the source has B = 1).

        ``anchors``: dense face points that the spline proposal also carries (hybrid only)."""
        src, kp_d, motion = self.estimate_motion(source, target, anchors)
        region = None
        if self.cfg.head_region_spread > 0 or self.cfg.flow_smoothing > 0:  # both hybrid only (config checks)
            grid = make_coordinate_grid(motion.flow.shape[1:3], motion.flow)
        if self.cfg.head_region_spread > 0:  # move only the head: the body and background stay still
            region = head_region(src.keypoints, kp_d, grid, self.cfg.head_region_spread)  # B×S×S
            spline = None if motion.anchor_spline is None else confine_flow(motion.anchor_spline, region, grid)
            motion = replace(motion, flow=confine_flow(motion.flow, region, grid), anchor_spline=spline)
        if self.cfg.flow_smoothing > 0:  # no folds where the proposals' masks switch
            # ... but the anchors' spline, smooth already, stays exact: blurred, it lost a third of the lips' and
            # lids' motion
            smoothed = smooth_flow(motion.flow, grid, self.cfg.flow_smoothing)
            motion = replace(motion, flow=motion.with_anchor_spline(smoothed))
        features, image_flow = self.warp_features(src, motion)
        if self.cfg.closing_warp and anchors is not None and anchors.closing:
            image_flow = self.closed_image_flow(image_flow, anchors)
        output = self.generator(features, src.image, image_flow, all_scales=all_scales)
        if region is not None:
            pyramid = [composite(level, region, resized_source(src.image, level.shape[-1]))
                       for level in output.pyramid]
            output = replace(output, image=pyramid[-1], pyramid=pyramid)
        return RenderResult(output=output, motion=motion, keypoints=kp_d, region=region)

    # The three stages of render(), separately callable for benchmarks.
    def estimate_motion(self, source: SourceEncoding, target: TargetMotion,
                        anchors: AnchorPoints | None = None) -> tuple[SourceEncoding, Tensor, DenseMotion]:
        """Driving keypoints x_d (B×K×3) and the dense motion from source to target."""
        kp_d, jac_d = self.pose_keypoints(source.canonical, target)
        b = kp_d.shape[0]
        src = source if source.image.shape[0] == b else _expand_source(source, b)
        # inv_ex: no host sync on a GPU (linalg.inv checks for errors on the host), so the render can be CUDA-graphed;
        # s·R is always invertible.
        jacobian = src.jacobian @ torch.linalg.inv_ex(jac_d.float()).inverse.to(jac_d.dtype)  # J = A_s·A_d⁻¹
        driver = src.image if self.cfg.variant == "hybrid" else src.appearance
        return src, kp_d, self.dense_motion(driver, src.keypoints, kp_d, jacobian, anchors)

    def warp_features(self, src: SourceEncoding, motion: DenseMotion) -> tuple[Tensor, Tensor]:
        """The generator's input (B×C×S×S: warped, occlusion-masked appearance features, with
        ``generator_stretch`` and the flow's log area change as one more channel) and the 2D flow for the
        image warp."""
        warped = F.grid_sample(src.appearance, motion.flow.to(src.appearance.dtype), align_corners=False,
                               padding_mode="border")
        if self.cfg.variant == "hybrid":
            image_flow = motion.flow
        else:
            warped = self.project(warped.flatten(1, 2))
            # The 2D image warp takes the depth-averaged (x, y) of the 3D flow.
            image_flow = motion.flow[..., :2].mean(dim=1)
        features = warped * motion.occlusion.to(warped.dtype)
        if self.cfg.generator_stretch:  # one more channel: where the warp stretches or squeezes the source
            features = torch.cat([features, log_area_change(image_flow).to(features.dtype)], dim=1)
        return features, image_flow

    def closed_image_flow(self, image_flow: Tensor, anchors: AnchorPoints) -> Tensor:
        """The image warp's flow (B×S×S×2, S = feature_size) at the image's size with the eyes and the mouth
        mapped by the anchors' mesh (``closing_warp``): B×H×H×2."""
        size = self.cfg.image_size
        with full_precision(image_flow):
            # contiguous before resampling, as in generator.warp_image
            flow = F.interpolate(image_flow.float().permute(0, 3, 1, 2).contiguous(), size=(size, size),
                                 mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
            b = flow.shape[0]
            return closing_flow(flow, anchors.source.float().expand(b, -1, -1),
                                anchors.driving.float().expand(b, -1, -1), anchors.closing)

    def forward(self, source_image: Tensor, driving_image: Tensor) -> TrainingForward:
        """Training pass: reconstruct the driving frame from the source frame of the same clip."""
        source = self.encode_source(source_image)
        motion, expression = self.encode_motion(driving_image)
        render = self.render(source, TargetMotion.from_encoding(motion, expression))
        return TrainingForward(
            source=source, driving_motion=motion, driving_expression=expression,
            driving_canonical=self.keypoint_detector(driving_image), render=render,
        )


def _expand_source(source: SourceEncoding, b: int) -> SourceEncoding:
    if source.image.shape[0] != 1:
        raise ValueError(f"cannot render a batch of {b} from a batch of {source.image.shape[0]} sources")
    ex = lambda t: t.expand(b, *t.shape[1:])  # views, no copies
    return replace(source, image=ex(source.image), appearance=ex(source.appearance), keypoints=ex(source.keypoints),
                   jacobian=ex(source.jacobian), canonical=ex(source.canonical))
