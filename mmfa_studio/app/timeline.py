"""Keyframes of the whole motion state and their interpolation (no widgets here)."""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, Signal

from ..motion import Keyframe, KeyframeAnimation, Motion


class Timeline(QObject):
    """Sorted keyframes, editable, with signals; the interpolation is the engine's :class:`KeyframeAnimation`
    (the same one ``mmfa-studio animate`` uses), so an export from the app and from the CLI agree.

    Before the first keyframe the first holds, after the last the last holds. At most one keyframe per time
    (adding at an existing time replaces it).
    """

    changed = Signal()

    def __init__(self, duration: float = 4.0, fps: float = 25.0) -> None:
        super().__init__()
        self._keys: list[Keyframe] = []
        self.duration = duration
        self.fps = fps

    @property
    def keyframes(self) -> list[Keyframe]:
        return list(self._keys)

    def set_keyframes(self, keys: list[Keyframe]) -> None:
        self._keys = sorted(keys, key=lambda k: k.time)
        self.changed.emit()

    def with_keyframe(self, time: float, motion: Motion) -> list[Keyframe]:
        """The keyframe list with one set at ``time`` (not applied: the caller pushes an undo command)."""
        time = round(float(time), 4)
        keys = [k for k in self._keys if abs(k.time - time) > 1e-4]
        keys.append(Keyframe(time, motion))
        return sorted(keys, key=lambda k: k.time)

    def without_keyframe_near(self, time: float, tolerance: float) -> list[Keyframe] | None:
        """The list without the keyframe nearest ``time`` (within tolerance), or None when there is none."""
        if not self._keys:
            return None
        nearest = min(self._keys, key=lambda k: abs(k.time - time))
        if abs(nearest.time - time) > tolerance:
            return None
        return [k for k in self._keys if k is not nearest]

    def set_settings(self, duration: float, fps: float) -> None:
        self.duration, self.fps = float(duration), float(fps)
        self.changed.emit()

    def animation(self) -> KeyframeAnimation | None:
        """The keyframes as an animation of ``duration`` at ``fps`` (None without keyframes)."""
        return KeyframeAnimation(tuple(self._keys), fps=self.fps, duration=self.duration) if self._keys else None

    def motion_at(self, t: float) -> Motion | None:
        animation = self.animation()
        return None if animation is None else animation.motion_at(t)

    def frame_count(self) -> int:
        """Frames covering [0, duration] with both ends included (the engine's KeyframeAnimation convention)."""
        return math.floor(self.duration * self.fps + 1e-9) + 1

    def motions(self) -> list[Motion]:
        """One motion per output frame."""
        animation = self.animation()
        return [] if animation is None else animation.motions()
