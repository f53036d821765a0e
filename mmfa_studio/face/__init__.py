"""Face tracking for MMFA Studio: detection, landmarks, head pose, alignment crops, paste-back, smoothing.

Floor 1: depends on numpy/OpenCV/MediaPipe only (no torch, no Qt). Head-pose angles follow the model's
conventions (``mmfa_studio/model/keypoints.py``).
"""

from .crop import (
                   CROP_OFFSET,
                   CROP_SCALE,
                   CropSmoother,
                   CropTransform,
                   box_transform,
                   crop_at,
                   crop_box,
                   crop_face,
                   face_mask,
                   paste_back,
                   pixel_aligned_box,
                   select_face,
)
from .image import ImageError, load_image
from .measures import ExpressionMeasures, expression_measures
from .pose import HeadPlacement, euler_from_matrix, head_placement, head_pose, nonrigid_motion, rotation_from_euler
from .smoothing import OneEuroSmoother
from .tracker import FaceAlignmentTracker, FaceTracker, MediaPipeTracker, create_tracker, face_alignment_available
from .types import Face, HeadPose, NoFaceError

__all__ = [
    "load_image", "ImageError", "create_tracker", "Face", "HeadPose", "FaceTracker", "MediaPipeTracker",
    "FaceAlignmentTracker", "face_alignment_available", "NoFaceError", "crop_face", "crop_at", "crop_box",
    "pixel_aligned_box", "box_transform", "CropTransform", "paste_back", "face_mask", "select_face", "OneEuroSmoother",
    "CropSmoother",
    "expression_measures", "ExpressionMeasures", "head_pose", "head_placement", "HeadPlacement", "euler_from_matrix",
    "rotation_from_euler", "nonrigid_motion", "CROP_SCALE", "CROP_OFFSET",
]
