"""The animation engine (floor 2): checkpoint → prepared source → rendered frames, reenactment, video I/O.

    from mmfa_studio.engine import Engine, Motion
    engine = Engine.load()                       # bundled model; device auto (CUDA → MPS → CPU), precision auto
    source = engine.prepare_source("me.jpg")     # detect, crop, encode once
    frame = engine.render(source, Motion(yaw=15, pitch=-5), paste_back=True)

What lives where:

* ``core.py`` — :class:`Engine` (load, prepare sources, render at the output size), device and precision
  choice, the CUDA-graph replay of single renders;
* ``expression.py`` — :class:`ExpressionSpace`, an engine's ``expressions``: the expression latent of a photo or
  a tracked face, prior samples, interpolation, named controls, decoding and the latent's reach;
* ``anchors.py`` — a source's tracked mesh anchors and where a render puts them (anchor-expression models);
* ``target.py`` — motion → render target, the one definition both the eager and the CUDA-graph path use;
* ``calibration.py`` — :class:`PoseCalibration`: the user's degrees (:class:`Motion`) → model angles
  (:class:`ModelMotion`);
* ``reenact.py`` — :class:`Reenactor` driven by :class:`ReenactSettings`, and the landmark expression transfer;
* ``frames.py`` — frame sources (camera, video file, image folder, synthetic); ``video.py`` — probing and the
  atomic H.264 exporter; ``virtual_camera.py`` — reenacted frames to a virtual camera (pyvirtualcam);
  ``errors.py`` — the one-line user errors.

``Motion`` and keyframes are defined in ``mmfa_studio/motion.py`` (torch-free) and re-exported here.
"""

from mmfa_studio.face import Face, HeadPose

from ..motion import (
                   EXPRESSION_LIMIT,
                   INTERPOLATION_MODES,
                   MOTION_RANGES,
                   Keyframe,
                   KeyframeAnimation,
                   ModelMotion,
                   Motion,
                   parse_expression_list,
)
from .calibration import PoseCalibration
from .core import (
                   DEFAULT_OUTPUT_SIZE,
                   DEVICES,
                   MAX_OUTPUT_SIZE,
                   PRECISIONS,
                   Engine,
                   FaceMotion,
                   InvalidMotionError,
                   InvalidOutputSizeError,
                   PreparedSource,
                   RenderedFrame,
                   cpu_has_fast_bf16,
                   resolve_device,
                   resolve_precision,
)
from .errors import EngineError, ExportCancelled, ModelLoadError, NoFaceFoundError, SourceImageError, VideoError
from .expression import ExpressionSpace
from .frames import (
                   SAMPLE_PORTRAIT,
                   CameraSource,
                   FrameSource,
                   ImageFolderSource,
                   SyntheticSource,
                   VideoFileSource,
                   open_frame_source,
)
from .reenact import MODES, TRANSFERS, Reenactor, ReenactResult, ReenactSettings
from .video import VideoExporter, VideoInfo, exact_fps, probe_video

__all__ = [
    "Engine", "Motion", "ModelMotion", "ReenactSettings", "PreparedSource", "RenderedFrame", "EngineError",
    "Reenactor", "ReenactResult", "FrameSource",
    "open_frame_source", "VideoExporter", "FaceMotion", "InvalidMotionError", "ModelLoadError", "NoFaceFoundError",
    "SourceImageError", "VideoError", "ExportCancelled", "Keyframe", "KeyframeAnimation", "MOTION_RANGES",
    "EXPRESSION_LIMIT", "INTERPOLATION_MODES", "parse_expression_list", "CameraSource", "VideoFileSource",
    "ImageFolderSource", "SyntheticSource", "SAMPLE_PORTRAIT", "VideoInfo", "probe_video", "exact_fps", "MODES",
    "TRANSFERS", "DEVICES", "PRECISIONS", "resolve_device", "resolve_precision", "cpu_has_fast_bf16", "Face",
    "HeadPose", "PoseCalibration", "ExpressionSpace", "InvalidOutputSizeError", "DEFAULT_OUTPUT_SIZE",
    "MAX_OUTPUT_SIZE",
]
