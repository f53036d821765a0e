"""Typed model configuration. One YAML file per model size lives in ``mmfa_studio/configs``.

A YAML file has a ``model:`` section (read here) and a ``train:`` section (read by ``mmfa_studio.train``).
Checkpoints embed the model section, so a checkpoint always rebuilds the network it was saved from.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

Variant = Literal["hybrid", "volumetric"]


@dataclass(frozen=True)
class ModelConfig:
    """Every architecture choice of an MMFA model.

    ``hybrid`` is the CPU-friendly variant (posed 3D keypoints drive 2D dense motion that warps both the
    appearance features and the full-resolution source image); ``volumetric`` is the paper's
    face-vid2vid-style 3D feature volume with 3D dense motion, for GPUs.
    """

    variant: Variant = "hybrid"
    image_size: int = 256  # generator output, H = W
    num_keypoints: int = 15  # K
    # Keypoint detector and motion encoder look at a downscaled copy of the image.
    detector_size: int = 128
    detector_channels: int = 32
    detector_max_channels: int = 256
    detector_blocks: int = 4
    heatmap_size: int = 32  # resolution of the keypoint heatmaps (soft-argmax)
    # Canonical depth: "learned" (z from a depth head alone) or "template" (a generic face's depth at the
    # keypoint's (x, y), a heatmap_size² buffer filled by the trainer, plus a learned residual of at most
    # ±depth_residual).
    keypoint_depth: Literal["learned", "template"] = "learned"
    depth_residual: float = 0.15
    motion_channels: int = 32
    motion_max_channels: int = 256
    motion_blocks: int = 5
    pose_bins: int = 66
    pose_max_degrees: float = 99.0
    # Expression: motion-encoder feature → VAE latent z → deformation δ (K×3).
    expression_dim: int = 64
    latent_dim: int = 16
    vae_hidden: int = 128
    max_delta: float = 0.0  # > 0 bounds each component of δ smoothly (tanh) to ±max_delta; 0 = unbounded
    # > 0 (hybrid only): an expression VAE over the face mesh's dense anchors (model/anchor_expression.py) with a
    # latent of this size; its δ moves the anchors in the dense motion's spline. 0 = none.
    anchor_latent_dim: int = 0
    anchor_count: int = 152  # anchors of face/anchors.py (lips, eyelids, brows, nose, outline)
    anchor_hidden: int = 256
    # Appearance features (hybrid: C×S×S, volumetric: C×D×S×S with S = feature_size).
    feature_size: int = 64
    appearance_channels: int = 64
    volume_channels: int = 32
    volume_depth: int = 16
    # Dense motion network (an hourglass at feature_size).
    dense_motion_channels: int = 32
    dense_motion_max_channels: int = 128
    dense_motion_blocks: int = 3
    dense_motion_compress: int = 4  # channels of the source appearance fed to the dense motion network
    keypoint_sigma: float = 0.01  # variance of the Gaussian heatmaps in normalised units
    tps_motion: bool = False  # add a thin-plate spline through all keypoints as a last motion proposal
    # > 0 (hybrid only): a render moves only the head region, this many keypoint spreads around the source and
    # driving keypoints (model/head_region.py); outside it the body and background stay as in the source.
    head_region_spread: float = 0.0
    # > 0 (hybrid only): the flow's displacement is blurred by a Gaussian of this σ, as a fraction of the image
    # side (model/flow_smoothing.py), so large edits cannot fold the warp.
    flow_smoothing: float = 0.0
    # > 0 (hybrid with tps_motion): near the dense face anchors, the flow follows the spline through them by this
    # weight (1 = fully) instead of the learned mix of proposals, which carried only part of their motion.
    anchor_flow: float = 0.0
    # (hybrid only) the generator also sees where the flow stretches or squeezes the source
    # (model/flow_stretch.py): what it must paint, e.g. a mouth that opens, a lid that closes.
    generator_stretch: bool = False
    # (hybrid with anchors) around the eyes and the mouth the image is warped by a triangle mesh through the
    # anchors, at the image's resolution (model/closing_warp.py): the spline cannot close a lid over the eye.
    closing_warp: bool = False
    # Generator: residual blocks at feature_size, then upsampling to image_size; one RGB output per scale.
    generator_res_blocks: int = 3
    generator_channels: tuple[int, ...] = (64, 32, 16)  # at feature_size, ×2, ×4 ...
    # Multi-scale patch discriminator.
    discriminator_scales: tuple[float, ...] = (1.0, 0.5)
    discriminator_channels: int = 32
    discriminator_max_channels: int = 256
    discriminator_layers: int = 4

    def __post_init__(self) -> None:
        _check_bounds(self)
        if self.variant not in ("hybrid", "volumetric"):
            raise ValueError(f"model.variant must be 'hybrid' or 'volumetric', not {self.variant!r}")
        if self.keypoint_depth not in ("learned", "template"):
            raise ValueError(f"model.keypoint_depth must be 'learned' or 'template', not {self.keypoint_depth!r}")
        if self.head_region_spread < 0 or (self.head_region_spread > 0 and self.variant != "hybrid"):
            raise ValueError("model.head_region_spread must be ≥ 0, and is for the hybrid variant only")
        if self.flow_smoothing < 0 or (self.flow_smoothing > 0 and self.variant != "hybrid"):
            raise ValueError("model.flow_smoothing must be ≥ 0, and is for the hybrid variant only")
        spline = self.variant == "hybrid" and self.tps_motion
        if not 0 <= self.anchor_flow <= 1 or (self.anchor_flow > 0 and not spline):
            raise ValueError("model.anchor_flow must be in [0, 1], and needs the hybrid variant with tps_motion")
        if self.generator_stretch and self.variant != "hybrid":
            raise ValueError("model.generator_stretch is for the hybrid variant only")
        if self.closing_warp and self.variant != "hybrid":
            raise ValueError("model.closing_warp is for the hybrid variant only")
        if self.anchor_latent_dim < 0 or (self.anchor_latent_dim > 0 and self.variant != "hybrid"):
            raise ValueError("model.anchor_latent_dim must be ≥ 0, and is for the hybrid variant only")
        if self.anchor_latent_dim > 0 and (self.anchor_count < 1 or self.anchor_hidden < 1):
            raise ValueError("model.anchor_count and model.anchor_hidden must be ≥ 1")
        upsamplings = len(self.generator_channels) - 1
        if self.feature_size * 2**upsamplings != self.image_size:
            raise ValueError(
                f"feature_size {self.feature_size} × 2^{upsamplings} (generator_channels has "
                f"{len(self.generator_channels)} entries) must equal image_size {self.image_size}"
            )
        if self.image_size % self.detector_size and self.detector_size % self.image_size:
            raise ValueError("detector_size and image_size must divide one another")

    @property
    def upsamplings(self) -> int:
        return len(self.generator_channels) - 1

    def differences(self, other: ModelConfig | dict[str, Any]) -> list[str]:
        """Names of the fields whose value differs in ``other`` (a config or its ``to_dict()``)."""
        theirs = other.to_dict() if isinstance(other, ModelConfig) else other
        return [k for k, v in self.to_dict().items() if theirs.get(k) != v]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        if not isinstance(data, dict):
            raise ValueError(f"the model config must be a JSON object, not {type(data).__name__}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


# Sane bounds of every number (inclusive). A config also arrives in a checkpoint's header, i.e. from anyone:
# these keep a hostile or broken one from asking for 180 GB or a negative dimension before anything is built
# (checkpoint.py then checks the tensors it declares). Each is far beyond the largest model (vox256) in use.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "image_size": (16, 2048), "num_keypoints": (1, 256), "detector_size": (16, 2048), "detector_channels": (1, 1024),
    "detector_max_channels": (1, 2048), "detector_blocks": (1, 8), "heatmap_size": (4, 512),
    "motion_channels": (1, 1024), "motion_max_channels": (1, 2048), "motion_blocks": (1, 8), "pose_bins": (2, 720),
    "expression_dim": (1, 4096), "latent_dim": (1, 1024), "vae_hidden": (1, 4096), "feature_size": (4, 1024),
    "appearance_channels": (1, 2048), "volume_channels": (1, 512), "volume_depth": (1, 256),
    "dense_motion_channels": (1, 1024), "dense_motion_max_channels": (1, 2048), "dense_motion_blocks": (1, 8),
    "dense_motion_compress": (1, 256), "generator_res_blocks": (0, 32), "discriminator_channels": (1, 1024),
    "discriminator_max_channels": (1, 2048), "discriminator_layers": (1, 8),
    "anchor_latent_dim": (0, 256), "anchor_count": (1, 478), "anchor_hidden": (1, 4096),
}
FLOAT_BOUNDS: dict[str, tuple[float, float]] = {
    "depth_residual": (0.0, 10.0), "pose_max_degrees": (1.0, 180.0), "max_delta": (0.0, 100.0),
    "keypoint_sigma": (1e-6, 10.0), "head_region_spread": (0.0, 100.0), "flow_smoothing": (0.0, 1.0),
    "anchor_flow": (0.0, 1.0),
}
GENERATOR_CHANNELS = (1, 2048)  # each entry; 1 to 8 entries
DISCRIMINATOR_SCALES = (1e-3, 1.0)  # each entry; 1 to 8 entries


def _check_bounds(cfg: ModelConfig) -> None:
    """``ValueError`` naming the first field of the wrong type or out of its bounds."""
    for name, (low, high) in INT_BOUNDS.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"model.{name} must be an integer, not {_show(value)}")
        if not low <= value <= high:
            raise ValueError(f"model.{name} = {value} is out of range [{low}, {high}]")
    for name, (low, high) in FLOAT_BOUNDS.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"model.{name} must be a finite number, not {_show(value)}")
        if not low <= value <= high:
            raise ValueError(f"model.{name} = {value:g} is out of range [{low:g}, {high:g}]")
    for name in ("tps_motion", "generator_stretch", "closing_warp"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"model.{name} must be true or false, not {_show(getattr(cfg, name))}")
    for name, (low, high), kind in (("generator_channels", GENERATOR_CHANNELS, int),
                                    ("discriminator_scales", DISCRIMINATOR_SCALES, float)):
        value = getattr(cfg, name)
        if not isinstance(value, tuple) or not 1 <= len(value) <= 8:
            raise ValueError(f"model.{name} must be a list of 1 to 8 numbers, not {_show(value)}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int) or not (
                    math.isfinite(v) and low <= v <= high):
                raise ValueError(f"model.{name} entries must be {kind.__name__}s in [{low:g}, {high:g}], "
                                 f"not {_show(v)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config given by path, or by the name of a bundled one ('tiny', 'cpu', 'vox256')."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    bundled = CONFIG_DIR / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"config {str(name_or_path)!r} not found (bundled configs: {names})")


def load_yaml(name_or_path: str | Path) -> dict[str, Any]:
    path = resolve_config_path(name_or_path)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """The ``model:`` section of a config file as a :class:`ModelConfig`."""
    return ModelConfig.from_dict(load_yaml(name_or_path).get("model", {}))


__all__ = ["ModelConfig", "Variant", "load_model_config", "load_yaml", "resolve_config_path", "CONFIG_DIR"]
