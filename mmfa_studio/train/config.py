"""Typed training configuration: the ``train:`` section of a config YAML (the ``model:`` section is
:class:`mmfa_studio.model.ModelConfig`).

Every field has a default, so a YAML only names what it changes. Unknown keys are an error (a typo must not
silently train with a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..model.config import ModelConfig, load_yaml

AmpMode = Literal["auto", "bf16", "fp16", "off"]


@dataclass
class LossWeights:
    """Weight of each loss term (0 switches a term off; its network path is then skipped where possible)."""

    perceptual: float = 10.0  # multi-scale VGG perceptual loss on the reconstruction
    pyramid_l1: float = 1.0  # L1 of the generator's smaller outputs against the downscaled driving frame
    gan: float = 1.0  # hinge GAN, generator side
    feature_matching: float = 10.0  # L1 between discriminator features of real and generated frames
    equivariance: float = 10.0  # posed keypoints follow a known warp of the driving frame
    equivariance_pose: float = 1.0  # roll/scale follow the warp's rotation/scale (radians / log-scale units)
    keypoint_prior: float = 10.0  # keypoints at least keypoint_min_distance apart, mean depth at depth_target
    deformation_prior: float = 5.0  # mean |δ|
    canonical: float = 1.0  # canonical keypoints of source and driving (same identity) agree
    kl: float = 0.01  # VAE KL, reached after the annealing ramp
    expression: float = 1.0  # expression code invariant to pose/appearance changes of the same frame
    head_pose: float = 0.0  # cross-entropy + L1 against prepare's pseudo-labels (0 = off)
    keypoint_flow: float = 0.0  # the dense flow carries driving keypoints to source keypoints, also under random
    # pose edits of the source (edit_yaw / edit_pitch); 0 = off (and no extra dense-motion pass)
    scale_anchor: float = 0.0  # (batch-mean log s − log train.scale_anchor_target)²; 0 = off
    # L1 inside the driving frame's mouth, its inside and its eyes (face/regions.py, from its tracked mesh), each
    # region's mean: they are a few percent of the crop, and a whole-image loss let the generator leave stretched
    # lips in place of an open mouth. Needs landmarks (`prepare --landmarks`); 0 = off
    expression_regions: float = 0.0
    # The same L1 on what the generator paints (before its blend with the warped source): inside an opened mouth
    # the shipped model's blend kept 97 % of the warp, so its painter got 3 % of the gradient there and never
    # learned an interior. Trained alone, the painter can offer one for the blend to take. Needs landmarks; 0 = off
    painted_regions: float = 0.0
    # L1 of what the generator paints over the whole frame: trained on the regions alone, the painter drifted
    # elsewhere, and the 1-2 % of it the blend lets through made reconstruction worse (model card); 0 = off
    painted_l1: float = 0.0


@dataclass
class Augmentation:
    """Strengths of the data augmentation (the same random draw is applied to source and driving)."""

    flip: float = 0.5  # probability of a horizontal flip of both frames
    brightness: float = 0.15  # ± multiplicative
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.02  # ± fraction of the colour circle
    scale: float = 0.06  # ± relative zoom
    shift: float = 0.04  # ± fraction of the image size
    # The expression objective's augmented copy of the driving frame (never flipped: see losses.py).
    expression_scale: float = 0.08
    expression_shift: float = 0.06
    expression_rotation: float = 10.0  # ± degrees, in-plane
    expression_colour: float = 0.2  # brightness/contrast/saturation strength of its colour jitter


@dataclass
class TrainConfig:
    batch_size: int = 8  # per process
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 10.0  # max global grad norm (0 = off)
    steps: int = 100_000  # total optimisation steps (the CLI's --max-steps/--minutes can stop earlier)
    warmup_steps: int = 200  # linear learning-rate warm-up
    schedule: Literal["constant", "cosine"] = "constant"  # after warm-up
    image_size: int | None = None  # train at this size instead of model.image_size (feature_size scaled alike)
    progressive: list[tuple[int, int]] = field(default_factory=list)  # [[step, size], …]: switch size at step
    amp: AmpMode = "auto"  # auto: bf16 where native (CUDA; CPUs with AVX512-BF16 or AMX), else fp16 on CUDA, else off
    channels_last: bool = True  # perceptual network and discriminator (plain convolutions: faster)
    channels_last_generator: bool = False  # the MMFA networks (GroupNorm's backward is slower channels-last on CPU)
    ema_decay: float = 0.999
    ema_start: int = 0  # steps before the EMA starts following (it copies the weights until then)
    checkpoint_minutes: float = 10.0
    freeze: tuple[str, ...] = ()  # MMFA parts kept fixed, e.g. [keypoint_detector, motion_encoder, expression_vae]
    keep_ema_snapshots: bool = False  # also keep RUNDIR/model_ema-stepNNNNNNN.safetensors from every save
    log_every: int = 20
    image_every: int = 500  # TensorBoard image grid every N steps
    seed: int = 0
    num_workers: int = 2
    max_frame_gap: int = 0  # largest |source − driving| frame distance in a pair (0 = anywhere in the clip)
    discriminator_start: int = 0  # GAN and feature-matching terms start at this step
    kl_anneal_start: int = 0
    kl_anneal_steps: int = 2000  # KL weight ramps linearly from 0 to loss.kl over these steps
    kl_free_nats: float = 0.0  # per latent dim, KL below this is not penalised (free bits; 0 = plain KL)
    # δ the training render uses: "sample" decodes z ~ q(z|x) (the VAE as in the paper); "mean" decodes μ, so the
    # render's δ carries no sampling noise (the KL still shapes μ).
    render_expression: Literal["sample", "mean"] = "sample"
    # loss.scale_anchor keeps the motion encoder's mean scale here. Fine-tuning the encoder around frozen keypoints
    # and renderer, reconstruction shrinks s: smaller keypoint layouts move less, which pays when the motion is
    # uncertain, but pose edits then turn the head less.
    scale_anchor_target: float = 0.82
    # The training render's driving head pose: "model" reads angles, scale and translation with the motion
    # encoder (the paper); "tracker" moves the source's own pose by the labels' change between the two frames
    # (angles from the pose labels, zoom and shift from the placement labels, each where both frames have one),
    # as reenactment and `evaluate` move the source: the renderer learns the tracker's degrees and pixels.
    driving_motion: Literal["model", "tracker"] = "model"
    # With driving_motion "tracker": the render's keypoints also move with the landmarks' non-rigid movement
    # between the two frames (mouth, eyes, brows), as reenactment moves them (model/landmark_motion.py), so the
    # renderer learns to follow those shifts. Needs data prepared with `prepare --landmarks`.
    landmark_expression: bool = False
    # With driving_motion "tracker": the tracker's dense mesh anchors (face/anchors.py: lips, lids, brows, outline)
    # join the training render's spline, placed where the driving frame's mesh has them, and the keypoints keep the
    # source's own δ, as an anchor-expression model renders: the generator learns to paint what the anchors open
    # (a mouth interior, a lid). Needs data prepared with `prepare --landmarks`.
    anchor_points: bool = False
    # How a pair's driving frame is chosen: "random" (any frame of the clip within max_frame_gap), or "motion": of
    # pair_candidates drawn, the one whose tracked mouth, eyes and head pose differ most from the source's (large
    # expression changes and turns are rare among random same-clip pairs). Needs landmarks.
    pair_choice: Literal["random", "motion"] = "random"
    pair_candidates: int = 4
    keypoint_min_distance: float = 0.1
    edit_yaw: float = 30.0  # keypoint_flow: random yaw edits of the source, uniform in ±edit_yaw degrees
    edit_pitch: float = 20.0
    pose_warmup_steps: int = 0  # before training (fresh or --init-from, not --resume): fit the pose head alone
    pose_warmup_batch: int = 32  # pairs per warm-up step (both frames are used)
    pose_warmup_lr: float = 1e-3
    template_flow: bool = False  # keypoint_flow also holds for the inner face of a rigid template (face/depth.py)
    depth_target: float = 0.33
    equivariance_affine: float = 0.05  # std of the random affine warp's perturbation
    equivariance_tps: float = 0.005  # std of the thin-plate-spline control-point displacements
    equivariance_tps_points: int = 5  # control-point grid (n×n)
    perceptual_backbone: Literal["vgg16-st", "none"] = "vgg16-st"  # none: multi-scale L1 (no pretrained net)
    perceptual_weights: str | None = None  # path to vgg_shift_tolerant.pth (default: the stlpips package's)
    perceptual_layers: tuple[int, ...] = (1, 2, 3, 4)  # VGG16 stages whose last ReLU is compared (1..5)
    perceptual_scales: tuple[float, ...] = (1.0, 0.5, 0.25)  # image pyramid the perceptual loss sees
    loss: LossWeights = field(default_factory=LossWeights)
    augment: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("train.batch_size must be ≥ 1")
        if self.log_every < 1:  # the trainer logs when step % log_every == 0
            raise ValueError("train.log_every must be ≥ 1")
        if self.pose_warmup_steps < 0 or self.pose_warmup_batch < 1:
            raise ValueError("train.pose_warmup_steps must be ≥ 0 and train.pose_warmup_batch ≥ 1")
        if self.num_workers < 0:
            raise ValueError("train.num_workers must be ≥ 0")
        if self.max_frame_gap < 0:
            raise ValueError("train.max_frame_gap must be ≥ 0 (0 = any two frames of a clip)")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"train.amp must be auto, bf16, fp16 or off, not {self.amp!r}")
        if self.scale_anchor_target <= 0:
            raise ValueError("train.scale_anchor_target must be > 0")
        if self.driving_motion not in ("model", "tracker"):
            raise ValueError(f"train.driving_motion must be 'model' or 'tracker', not {self.driving_motion!r}")
        if self.landmark_expression and self.driving_motion != "tracker":
            raise ValueError("train.landmark_expression needs train.driving_motion: tracker")
        if self.anchor_points and self.driving_motion != "tracker":
            raise ValueError("train.anchor_points needs train.driving_motion: tracker")
        if self.pair_choice not in ("random", "motion"):
            raise ValueError(f"train.pair_choice must be 'random' or 'motion', not {self.pair_choice!r}")
        if not 1 <= self.pair_candidates <= 64:
            raise ValueError("train.pair_candidates must be in [1, 64]")
        if self.render_expression not in ("sample", "mean"):
            raise ValueError(f"train.render_expression must be 'sample' or 'mean', not {self.render_expression!r}")
        if self.perceptual_backbone not in ("vgg16-st", "none"):
            raise ValueError("train.perceptual_backbone must be 'vgg16-st' or 'none', "
                             f"not {self.perceptual_backbone!r}")
        if not set(self.perceptual_layers) <= {1, 2, 3, 4, 5}:
            raise ValueError("train.perceptual_layers must be VGG stages 1..5")
        self.progressive = [(int(s), int(r)) for s, r in self.progressive]

    @property
    def uses_landmarks(self) -> bool:
        """Whether training reads the data's tracked landmarks (``prepare --landmarks``)."""
        return (self.landmark_expression or self.anchor_points or self.pair_choice == "motion"
                or self.loss.expression_regions > 0 or self.loss.painted_regions > 0)

    # -- resolution ------------------------------------------------------------------------------
    def size_at(self, step: int, model: ModelConfig) -> int:
        """The training image size at ``step`` (progressive schedule, else image_size, else the model's)."""
        size = self.image_size or model.image_size
        for start, s in sorted(self.progressive):
            if step >= start:
                size = s
        return size

    def largest_size(self, model: ModelConfig) -> int:
        return max([self.image_size or model.image_size] + [s for _, s in self.progressive])

    # -- (de)serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, tuple | list):
                return [plain(x) for x in v]
            return v

        out = {k: plain(v) for k, v in dataclasses.asdict(self).items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data or {})
        loss = _build(LossWeights, data.pop("loss", {}) or {}, "train.loss")
        augment = _build(Augmentation, data.pop("augment", {}) or {}, "train.augment")
        tuples = {"betas", "perceptual_layers", "perceptual_scales", "freeze"}
        values = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in data.items()}
        return _build(cls, values, "train", loss=loss, augment=augment)


def _build(kind: type, values: dict[str, Any], where: str, **extra: Any) -> Any:
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {where} config keys: {', '.join(unknown)}")
    return kind(**values, **extra)


def scaled_model_config(model: ModelConfig, image_size: int) -> ModelConfig:
    """The same architecture at another image size: feature_size scales with it, so every weight keeps its
    shape (all networks are convolutional) and a model trained at 128 px loads at 256 px."""
    if image_size == model.image_size:
        return model
    ratio = model.image_size // model.feature_size
    if image_size % ratio or image_size < ratio:
        raise ValueError(f"image size {image_size} must be a multiple of {ratio} (image_size / feature_size)")
    return dataclasses.replace(model, image_size=image_size, feature_size=image_size // ratio)


def load_train_config(name_or_path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """The ``model:`` and ``train:`` sections of a bundled config name or a YAML path."""
    data = load_yaml(name_or_path)
    return ModelConfig.from_dict(data.get("model", {}) or {}), TrainConfig.from_dict(data.get("train", {}) or {})


__all__ = ["AmpMode", "Augmentation", "LossWeights", "TrainConfig", "load_train_config", "scaled_model_config"]
