"""Editing: the motion being edited, its undo history, the timeline's keyframes, and the live renders.

Data flow: a user edit → an undo command → :class:`MotionState` → ``changed`` → a latest-wins render job →
``frameRendered`` → the view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QFileDialog, QWidget

from ...motion import ExpressionControls, Motion
from ..commands import KeyframesCommand, MotionUndo
from ..editor import EditorPanel
from ..jobs import EncodeExpression, RenderMotion, SampleExpression
from ..messages import EngineInfo, ExpressionResult, FrameResult
from ..state import PARAM_BY_NAME, POSE_PARAMS, MotionState
from ..timeline import Keyframe, Timeline
from ..worker import EngineWorker, JobFailure
from .document import IMAGE_FILTER, DocumentController
from .feedback import Feedback


class EditController(QObject):
    frameRendered = Signal(object)  # FrameResult of an edit
    pasteBackChanged = Signal(bool)  # show (and export) the full photo rather than the crop

    def __init__(self, worker: EngineWorker, document: DocumentController, feedback: Feedback,
                 dialog_parent: QWidget) -> None:
        super().__init__()
        self.worker, self.document, self.feedback = worker, document, feedback
        self._dialog_parent = dialog_parent
        self.state = MotionState()
        self.undo_stack = QUndoStack(self)
        self.motion_undo = MotionUndo(self.undo_stack, self.state)
        self.timeline = Timeline()
        self.paste_back = False
        self.live = False  # the webcam drives the picture: edits do not render meanwhile
        self._render_seq = 0
        self._editor: EditorPanel | None = None
        self._controls: ExpressionControls | None = None  # the loaded model's named expression controls
        self._source_controls: ExpressionControls | None = None  # the same, fitted to the source's face
        self.state.changed.connect(self.request_render)

    def bind_editor(self, editor: EditorPanel) -> None:
        """The sliders edit through this controller and show the state as it changes (undo, scrub, a project)."""
        self._editor = editor
        editor.valueEdited.connect(self.edit_value)
        editor.expressionEdited.connect(self.edit_expression)
        editor.controlsEdited.connect(self.edit_controls)
        editor.expressionFromPhotoRequested.connect(self.expression_from_photo_dialog)
        editor.randomExpressionRequested.connect(lambda: self.random_expression())  # no seed
        editor.neutralExpressionRequested.connect(self.neutral_expression)
        editor.sourceExpressionRequested.connect(self.source_expression)
        editor.resetAllRequested.connect(self.reset_pose)
        self.state.changed.connect(self._sync_editor)
        self.state.sourceExpressionChanged.connect(self._sync_editor)

    def _sync_editor(self, *_: object) -> None:
        if self._editor is not None:
            self._editor.sync(self.state.motion, self.state.effective_expression())

    # ---------------------------------------------------------------- rendering

    @property
    def can_render(self) -> bool:
        return self.document.engine_info is not None and self.document.source_info is not None and self.state.ready

    def request_render(self, *_: object) -> None:
        """Render the current motion; a request not yet started is replaced (latest wins)."""
        motion = self.state.motion
        if not self.can_render or self.live or motion is None:
            return
        self._render_seq += 1
        handle = self.worker.submit(RenderMotion(motion, self.paste_back, self._render_seq),
                                    coalesce=RenderMotion.COALESCE)
        handle.returned.connect(self._on_rendered)
        handle.errored.connect(self._on_failed)

    @property
    def render_seq(self) -> int:
        """The newest render request's number (its FrameResult carries it)."""
        return self._render_seq

    def _on_rendered(self, frame: FrameResult | None) -> None:
        if frame is not None:
            self.frameRendered.emit(frame)

    def _on_failed(self, failure: JobFailure) -> None:
        self.feedback.idle()
        self.feedback.error(failure.title, failure.message)

    def set_paste_back(self, on: bool) -> None:
        if on != self.paste_back:
            self.paste_back = on
            self.pasteBackChanged.emit(on)
            self.request_render()

    # ---------------------------------------------------------------- a new model or photo

    def adopt_model(self, info: EngineInfo, previous: EngineInfo | None) -> None:
        """Keep the motion and history where the new model can render them; size the sliders to it."""
        if self._editor is not None:
            self._editor.set_latent_dim(info.latent_dim)
            self._editor.set_pose_reach(info.pose_reach)
            self._editor.set_expression_reach(info.expression_reach)
            names = list(info.controls.directions) if info.controls is not None else []
            self._editor.set_controls([(name, *info.controls.range(name)) for name in names])
        self._controls = info.controls
        self._source_controls = None  # fitted for the last model; the source prepared again brings its own
        motion = self.state.motion if self.state.motion is not None else Motion()
        if motion.expression is not None and len(motion.expression) != info.latent_dim:
            motion = replace(motion, expression=None)
        if previous is not None and previous.latent_dim != info.latent_dim:
            # Latents of the old model's size cannot render with this one: undo history and keyframes drop them,
            # as the current motion does just above (else every undo, scrub or export would fail).
            self.undo_stack.clear()
            self.timeline.set_keyframes([
                k if k.motion.expression is None or len(k.motion.expression) == info.latent_dim
                else Keyframe(k.time, replace(k.motion, expression=None))
                for k in self.timeline.keyframes
            ])
        self.state.set_motion(motion)
        self._sync_editor()  # also when the motion stayed: the sliders were rebuilt

    def adopt_source_expression(self, expression: Sequence[float] | None,
                                controls: ExpressionControls | None = None) -> None:
        """A new source's own expression, and the model's named controls fitted to its face (None: as fitted)."""
        self._source_controls = controls
        self.state.set_source_expression(None if expression is None else list(expression))

    # ---------------------------------------------------------------- edits

    def push_motion(self, new: Motion, text: str, key: str | None = None) -> None:
        if not self.state.ready or new == self.state.motion:
            return
        self.motion_undo.push(new, text, key)

    def edit_value(self, name: str, value: float) -> None:
        if not self.state.ready:
            return
        spec = PARAM_BY_NAME.get(name)
        self.push_motion(self.state.with_value(name, value), f"Change {spec.label.lower() if spec else name}", name)

    def edit_expression(self, index: int, value: float) -> None:
        if not self.state.ready or self.state.effective_expression() is None:
            return
        self.push_motion(self.state.with_expression_value(index, value), f"Change expression z{index + 1}",
                         f"expr{index}")

    def edit_controls(self, values: dict[str, float]) -> None:
        """Named controls, on top of the source's own expression: z = z_src + Σ value · direction."""
        own = self.state.source_expression
        controls = self._source_controls or self._controls
        if not self.state.ready or own is None or controls is None:
            return
        z = controls.apply(own, values)
        self.push_motion(self.state.with_expression(z), "Change the named controls", "controls")

    def _reset_controls(self) -> None:
        if self._editor is not None:
            self._editor.reset_controls()

    def reset_pose(self) -> None:
        if self.state.ready:
            defaults = {p.name: p.default for p in POSE_PARAMS}
            self.push_motion(replace(self.state.motion, **defaults), "Reset pose")

    def random_expression(self, seed: int | None = None) -> None:
        if self.document.engine_info is not None:
            self._submit_expression(SampleExpression(seed))

    def neutral_expression(self) -> None:
        info = self.document.engine_info
        if info is not None and self.state.ready:
            self._reset_controls()
            self.push_motion(self.state.with_expression([0.0] * info.latent_dim), "Neutral expression")

    def source_expression(self) -> None:
        if self.state.ready:
            self._reset_controls()
            self.push_motion(self.state.with_expression(None), "Source's expression")

    def expression_from_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Photo with the expression to copy",
                                              self.document.last_folder(), IMAGE_FILTER)
        if path:
            self.feedback.busy(f"Reading the expression of {Path(path).name}…")
            self._submit_expression(EncodeExpression(path))

    def _submit_expression(self, job: EncodeExpression | SampleExpression) -> None:
        handle = self.worker.submit(job)
        handle.returned.connect(self._on_expression)
        handle.errored.connect(self._on_failed)

    def _on_expression(self, result: ExpressionResult) -> None:
        self.feedback.idle(f"Expression from {result.origin}")
        if self.state.ready:
            self._reset_controls()
            self.push_motion(self.state.with_expression(result.latent.ravel()), f"Expression from {result.origin}")

    # ---------------------------------------------------------------- keyframes

    def add_keyframe(self, t: float) -> None:
        if not self.state.ready:
            return
        keys = self.timeline.with_keyframe(t, self.state.motion)
        self.undo_stack.push(KeyframesCommand(self.timeline, self.timeline.keyframes, keys, f"Keyframe at {t:.2f} s"))
        self.feedback.note(f"Keyframe set at {t:.2f} s", 3000)

    def remove_keyframe(self, t: float) -> None:
        keys = self.timeline.without_keyframe_near(t, tolerance=0.5 / max(self.timeline.fps, 1) + 1e-6)
        if keys is None:
            self.feedback.note("No keyframe at the playhead", 3000)
            return
        self.undo_stack.push(KeyframesCommand(self.timeline, self.timeline.keyframes, keys, "Delete keyframe"))

    def scrub(self, t: float) -> None:
        motion = self.timeline.motion_at(t)
        if motion is not None:
            self.state.set_motion(motion)  # scrubbing previews; it is not an undoable edit
