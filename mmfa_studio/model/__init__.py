"""Pure PyTorch MMFA networks: no file I/O, no Qt, no face detection."""

from .config import ModelConfig, load_model_config
from .discriminator import MultiScaleDiscriminator
from .expression_vae import ExpressionCode, ExpressionVAE, interpolate, kl_divergence
from .keypoints import compose_keypoints, euler_from_matrix, rotation_matrix
from .mmfa import MMFA, RenderResult, SourceEncoding, TargetMotion, TrainingForward
from .motion_encoder import HeadMotion

__all__ = [
    "MMFA", "ModelConfig", "load_model_config", "MultiScaleDiscriminator", "ExpressionCode", "ExpressionVAE",
    "interpolate", "kl_divergence", "compose_keypoints", "euler_from_matrix", "rotation_matrix",
    "RenderResult", "SourceEncoding", "TargetMotion", "TrainingForward", "HeadMotion",
]
