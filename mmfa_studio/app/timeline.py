"""Keyframes of the whole motion state and their interpolation (no widgets here)."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal


@dataclass(frozen=True)
class Keyframe:
    time: float  # seconds
    motion: Any  # engine Motion


class Timeline(QObject):
    """Sorted keyframes; ``motion_at(t)`` interpolates between neighbours with ``Motion.lerp``.

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

    def with_keyframe(self, time: float, motion: Any) -> list[Keyframe]:
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

    def motion_at(self, t: float, motion_type: type | None = None) -> Any:
        keys = self._keys
        if not keys:
            return None
        times = [k.time for k in keys]
        i = bisect.bisect_right(times, t)
        if i == 0:
            return keys[0].motion
        if i >= len(keys):
            return keys[-1].motion
        a, b = keys[i - 1], keys[i]
        u = (t - a.time) / max(b.time - a.time, 1e-9)
        lerp = (motion_type or type(a.motion)).lerp
        return lerp(a.motion, b.motion, u)

    def frame_count(self) -> int:
        """Frames covering [0, duration] with both ends included (the engine's KeyframeAnimation convention)."""
        return int(math.floor(self.duration * self.fps + 1e-9)) + 1

    def frame_times(self) -> list[float]:
        n = self.frame_count()
        return [i / self.fps for i in range(n)]

    def motions(self) -> list[Any]:
        """One motion per output frame."""
        return [self.motion_at(t) for t in self.frame_times()]
