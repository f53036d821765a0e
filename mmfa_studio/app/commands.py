"""Undoable edits (QUndoStack commands). Consecutive moves of one slider merge into one undo step."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QUndoCommand

from .state import MotionState

# Merge ids: one per editable quantity, so dragging a slider gives one undo step per drag, not per pixel.
_MERGE_IDS: dict[str, int] = {}


def merge_id(key: str) -> int:
    return _MERGE_IDS.setdefault(key, 1000 + len(_MERGE_IDS))


class SetMotionCommand(QUndoCommand):
    """Replace the whole motion. ``key`` (e.g. "yaw", "expr3") makes consecutive edits of it merge."""

    def __init__(self, state: MotionState, old: Any, new: Any, text: str, key: str | None = None) -> None:
        super().__init__(text)
        self._state, self._old, self._new = state, old, new
        self._id = merge_id(key) if key else -1

    def id(self) -> int:  # noqa: A003 - Qt's name
        return self._id

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, SetMotionCommand) or other.id() != self.id() or self._id == -1:
            return False
        self._new = other._new
        return True

    def redo(self) -> None:
        self._state.set_motion(self._new)

    def undo(self) -> None:
        self._state.set_motion(self._old)


class KeyframesCommand(QUndoCommand):
    """Replace the timeline's keyframe list (add, remove, move, clear)."""

    def __init__(self, timeline: Any, old: list, new: list, text: str) -> None:
        super().__init__(text)
        self._timeline, self._old, self._new = timeline, list(old), list(new)

    def redo(self) -> None:
        self._timeline.set_keyframes(self._new)

    def undo(self) -> None:
        self._timeline.set_keyframes(self._old)
