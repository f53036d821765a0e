"""Engine errors: each carries a one-line message meant for the user (a CLI line, a dialog)."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: bad input the user can fix (the CLI maps it to exit code 2)."""


class ModelLoadError(EngineError):
    """The checkpoint is missing, corrupt or of another architecture, or the device is unavailable."""


class SourceImageError(EngineError):
    """A source or expression photo cannot be read (missing, corrupt, not an image)."""


class NoFaceFoundError(EngineError):
    """No face (or not the requested face) in an image or video."""


class VideoError(EngineError):
    """A video cannot be opened, has no frames, or cannot be written."""


class ExportCancelled(EngineError):
    """An export was cancelled (no file was written)."""


__all__ = ["EngineError", "ModelLoadError", "SourceImageError", "NoFaceFoundError", "VideoError", "ExportCancelled"]
