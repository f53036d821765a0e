"""The app's engine jobs: each says what it needs, does it on the engine thread and returns a typed message.

A new job is a frozen dataclass here with a ``title`` (what its error dialog is titled) and ``run(context)``;
the caller submits it with :meth:`EngineWorker.submit` and connects the handle's ``returned`` / ``errored``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .messages import (
    EngineInfo,
    ExportProgress,
    ExpressionResult,
    FrameResult,
    PhotoPreview,
    SourceInfo,
    VirtualCameraInfo,
)
from .state import EXPRESSION_RANGE
from .worker import JobCancelled, JobContext

if TYPE_CHECKING:
    from mmfa_studio.engine import KeyframeAnimation, Motion

    from .webcam import FrameSink

BUNDLED_MODEL_NAME = "mmfa-cpu.safetensors (bundled)"


@dataclass(frozen=True)
class LoadModel:
    """Load a checkpoint (None: the bundled model). On failure the model loaded before stays."""

    checkpoint: str | None
    device: str = "auto"
    title: ClassVar[str] = "Cannot load the model"

    def run(self, context: JobContext) -> EngineInfo:
        backend = context.backend
        context.report_status(f"Loading {Path(self.checkpoint).name if self.checkpoint else 'bundled model'}…")
        engine = backend.Engine.load(self.checkpoint, device=self.device)
        try:
            expression_reach = engine.expressions.reach(EXPRESSION_RANGE)
        except Exception:
            engine.close()
            raise
        context.replace_engine(engine)  # only now: a failed load keeps the previous model working
        return EngineInfo(
            device=str(engine.device),
            precision=str(engine.precision),
            model_name=Path(self.checkpoint).name if self.checkpoint else BUNDLED_MODEL_NAME,
            latent_dim=int(engine.latent_dim),
            image_size=int(engine.image_size),
            pose_reach={axis: reach for axis in ("yaw", "pitch", "roll")
                        if (reach := engine.pose_calibration.reach(axis)) is not None},
            expression_reach=expression_reach,
            controls=engine.expressions.controls,
        )



@dataclass(frozen=True)
class OpenPhoto:
    """Detect, crop and encode a photo (or just read it, when no model is loaded, so the user can browse)."""

    path: str | None
    face_index: int | None = None
    image: np.ndarray | None = None
    title: ClassVar[str] = "Cannot open the photo"

    def run(self, context: JobContext) -> SourceInfo | PhotoPreview:
        backend = context.backend
        engine = context.state.engine
        if engine is None:
            picture = self.image if self.image is not None else backend.load_image(self.path)
            return PhotoPreview(self.path or "", picture)
        context.report_status(f"Finding the face in {Path(self.path).name if self.path else 'the image'}…")
        source = engine.prepare_source(self.image if self.image is not None else self.path, face_index=self.face_index)
        context.state.source = source
        return SourceInfo(
            path=self.path,
            face_index=self.face_index if self.face_index is not None else 0,
            image=source.image,
            crop=source.output_crop,
            faces=list(source.faces),
            pose=source.pose,
            expression=np.asarray(source.expression),
            transform=source.output_transform,
            controls=source.controls,
        )


@dataclass(frozen=True)
class RenderMotion:
    """One edit frame; submit it with ``coalesce=RenderMotion.COALESCE`` so only the newest waits."""

    motion: Motion
    paste_back: bool
    seq: int
    title: ClassVar[str] = "Cannot render this motion"
    COALESCE: ClassVar[str] = "render"

    def run(self, context: JobContext) -> FrameResult | None:
        engine, source = context.state.engine, context.state.source
        if engine is None or source is None:
            return None  # the model changed under a late request: a new photo load follows
        frame = engine.render(source, self.motion, paste_back=self.paste_back)
        return FrameResult(kind="edit", seq=self.seq, crop=frame.output, full=frame.full,
                           keypoints=frame.output_keypoints, motion=self.motion)


@dataclass(frozen=True)
class EncodeExpression:
    """The expression latent of the face in another photo."""

    path: str
    title: ClassVar[str] = "Cannot read an expression from that photo"

    def run(self, context: JobContext) -> ExpressionResult:
        state = context.state
        latent = state.require_engine().expressions.encode(self.path, source=state.source)
        return ExpressionResult(np.asarray(latent, dtype=np.float64), Path(self.path).name)


@dataclass(frozen=True)
class SampleExpression:
    """A random expression latent from the model's prior."""

    seed: int | None = None
    title: ClassVar[str] = "Cannot sample an expression"

    def run(self, context: JobContext) -> ExpressionResult:
        latent = context.state.require_engine().expressions.sample(self.seed)
        return ExpressionResult(np.asarray(latent, dtype=np.float64), "random")


@dataclass(frozen=True)
class ExportVideo:
    """Render every frame of a keyframe animation into an mp4; reports ExportProgress; cancellable (no file left).

    The motions are interpolated here, on the engine thread: interpolating latents uses the model's slerp."""

    path: str
    animation: KeyframeAnimation
    paste_back: bool
    title: ClassVar[str] = "Export failed"

    def run(self, context: JobContext) -> str:
        engine, source = context.state.require_source()
        motions = self.animation.motions()
        context.report_progress(ExportProgress(0, len(motions)))
        with context.backend.VideoExporter(self.path, self.animation.fps) as exporter:
            for i, motion in enumerate(motions):
                if context.cancelled:
                    exporter.cancel()
                    raise JobCancelled
                frame = engine.render(source, motion, paste_back=self.paste_back)
                exporter.write(frame.full if self.paste_back and frame.full is not None else frame.output)
                context.report_progress(ExportProgress(i + 1, len(motions)))
        return self.path


@dataclass(frozen=True)
class OpenVirtualCamera:
    """Open a width×height virtual camera at ``fps`` and hand it to ``install`` (the webcam session's
    :meth:`~.webcam.WebcamSession.install_sink`, which closes the sink before it). Here, on the engine thread,
    because a device may take a moment to open; where there is none (no pyvirtualcam, no loopback device) it
    fails with the engine's one-line reason and the sink before stays."""

    width: int
    height: int
    fps: float
    install: Callable[[FrameSink], None]
    title: ClassVar[str] = "No virtual camera"

    def run(self, context: JobContext) -> VirtualCameraInfo:
        sink = context.backend.open_virtual_camera(self.width, self.height, self.fps)
        self.install(sink)
        return VirtualCameraInfo(width=sink.width, height=sink.height, fps=sink.fps, device=sink.device)
