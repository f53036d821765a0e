"""Undoable edits (QUndoStack commands). Consecutive moves of one slider merge into one undo step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand, QUndoStack

from .state import MotionState

if TYPE_CHECKING:
    from ..motion import Keyframe, Motion
    from .timeline import Timeline

class SetMotionCommand(QUndoCommand):
    """Replace the whole motion. ``key`` (e.g. "yaw", "expr3") names what changed, for merging.

    Merging is done by :class:`MotionUndo`, not by Qt's ``id()``/``mergeWith()``: with PySide6 6.12.0 a merged
    command that Qt deletes corrupted Python's reference counts (abort at exit); merging on the Python side
    works with every version.
    """

    def __init__(self, state: MotionState, old: Motion | None, new: Motion, text: str, key: str | None = None) -> None:
        super().__init__(text)
        self._state, self._old, self._new = state, old, new
        self.key = key

    def extend(self, new: Motion) -> None:
        self._new = new
        self._state.set_motion(new)

    def redo(self) -> None:
        self._state.set_motion(self._new)

    def undo(self) -> None:
        self._state.set_motion(self._old)


class MotionUndo:
    """Pushes motion edits onto a QUndoStack; consecutive edits of the same control become one step."""

    def __init__(self, stack: QUndoStack, state: MotionState) -> None:
        self.stack, self.state = stack, state
        self._last: SetMotionCommand | None = None
        self._last_index = -1
        stack.indexChanged.connect(self._on_index_changed)

    def _on_index_changed(self, index: int) -> None:
        if index != self._last_index:
            self._last = None  # undo, redo or another command came in between: the next edit starts a step

    def push(self, new: Motion, text: str, key: str | None = None) -> None:
        last = self._last
        if (key is not None and last is not None and last.key == key
                and self.stack.index() == self._last_index == self.stack.count()):
            last.extend(new)
            return
        command = SetMotionCommand(self.state, self.state.motion, new, text, key)
        self._last, self._last_index = None, -1
        self.stack.push(command)
        if key is not None:
            self._last, self._last_index = command, self.stack.index()


class KeyframesCommand(QUndoCommand):
    """Replace the timeline's keyframe list (add, remove, move, clear)."""

    def __init__(self, timeline: Timeline, old: list[Keyframe], new: list[Keyframe], text: str) -> None:
        super().__init__(text)
        self._timeline, self._old, self._new = timeline, list(old), list(new)

    def redo(self) -> None:
        self._timeline.set_keyframes(self._new)

    def undo(self) -> None:
        self._timeline.set_keyframes(self._old)
