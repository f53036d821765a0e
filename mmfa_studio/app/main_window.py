"""The main window: wires the views (editor, picture, webcam panel, timeline) to the state and the worker.

Data flow: a user edit → an undo command → :class:`MotionState` → ``changed`` → the editor re-syncs and the
worker gets a latest-wins render request → the frame comes back through the worker's mailbox → the view.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QSplitter,
    QTabWidget,
)

from ..atomic import atomic_path
from . import dialogs
from .commands import KeyframesCommand, MotionUndo
from .editor import EditorPanel
from .project import Project, ProjectError, ProjectSettings, load_project, save_project
from .state import PARAM_BY_NAME, POSE_PARAMS, MotionState
from .timeline import Keyframe, Timeline
from .timeline_panel import TimelinePanel
from .view import FrameView, to_qimage
from .webcam_panel import WebcamPanel
from .worker import EngineInfo, FrameResult, SourceInfo, WorkerThread, describe_error, load_engine_backend

from ..assets import SAMPLE_PORTRAIT  # the bundled sample, opened when no photo is given
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff);;All files (*)"
PROJECT_FILTER = "MMFA Studio projects (*.mmfa.json *.json)"
MAX_RECENT = 8


class MainWindow(QMainWindow):
    firstShown = Signal()  # the first time the window has painted (the launch benchmark listens)

    def __init__(self, backend_loader=load_engine_backend, settings: QSettings | None = None, device: str = "auto") -> None:
        super().__init__()
        self.setWindowTitle("MMFA Studio")
        self.resize(1280, 860)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("mmfa-studio", "MMFA Studio")
        self.device = device
        self.engine_info: EngineInfo | None = None
        self.source_info: SourceInfo | None = None
        self.source_path: str | None = None
        self.project_path: str | None = None
        self.last_frame: FrameResult | None = None
        self.webcam_active = False
        self.show_full = False
        self._explicit_model = False
        self._pending_face_choice = True
        self._webcam_fps = 25.0
        self._export_dialog: QProgressDialog | None = None
        self._export_path = ""
        self._shown_once = False
        self.errors_shown = 0

        self.state = MotionState()
        self.undo_stack = QUndoStack(self)
        self.motion_undo = MotionUndo(self.undo_stack, self.state)
        self.timeline = Timeline()
        self.worker_thread = WorkerThread(backend_loader)
        self.worker = self.worker_thread.worker

        self._build_widgets()
        self._build_actions()
        self._connect()
        self._update_enabled()

    # ================================================================= construction

    def _build_widgets(self) -> None:
        self.view = FrameView()
        self.editor = EditorPanel()
        self.webcam = WebcamPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.editor, "Edit")
        self.tabs.addTab(self.webcam, "Webcam")
        self.tabs.setMinimumWidth(380)
        splitter = QSplitter()
        splitter.addWidget(self.view)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.setCentralWidget(splitter)
        self.timeline_panel = TimelinePanel(self.timeline)
        dock = QDockWidget("Timeline", self)
        dock.setObjectName("timeline")
        dock.setWidget(self.timeline_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)

        bar = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator while the model / photo load
        self.progress.setMaximumWidth(140)
        self.progress.setVisible(False)
        self.device_label = QLabel("Device: –")
        self.model_label = QLabel("Model: loading…")
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.device_label)
        bar.addPermanentWidget(self.model_label)

    def _action(self, menu, text: str, slot, shortcut=None, checkable: bool = False, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        if tip:
            action.setStatusTip(tip)
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work whichever panel has focus
        return action

    def _build_actions(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        self.open_action = self._action(file_menu, "&Open photo…", self.open_photo_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._action(file_menu, "Open &model…", self.open_model_dialog, tip="Load another checkpoint (.safetensors)")
        file_menu.addSeparator()
        self._action(file_menu, "Open pro&ject…", self.open_project_dialog, "Ctrl+Shift+O")
        self.save_action = self._action(file_menu, "&Save project", self.save_project, QKeySequence.StandardKey.Save)
        self._action(file_menu, "Save project &as…", self.save_project_as, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export video…", self.export_video_dialog, "Ctrl+E")
        self._action(file_menu, "Save &frame as PNG…", self.save_frame_dialog, "Ctrl+Shift+E")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit_menu = menus.addMenu("&Edit")
        undo = self.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        edit_menu.addAction(undo)
        edit_menu.addAction(redo)
        self.addAction(undo)
        self.addAction(redo)
        edit_menu.addSeparator()
        self._action(edit_menu, "Reset &pose", self.reset_pose, "Ctrl+0")
        self._action(edit_menu, "&Random expression", self.random_expression, "Ctrl+R")
        self._action(edit_menu, "&Neutral expression", self.neutral_expression, "Ctrl+N")
        self._action(edit_menu, "&Source's expression", self.source_expression, "Ctrl+Shift+N")

        view_menu = menus.addMenu("&View")
        self.full_action = self._action(view_menu, "&Full photo (paste back)", self.set_show_full, "F", checkable=True)
        self.compare_action = self._action(view_menu, "&Before/after", self.view.set_compare, "C", checkable=True)
        self.keypoints_action = self._action(view_menu, "&Keypoints", self.view.set_show_keypoints, "P", checkable=True)

        timeline_menu = menus.addMenu("&Timeline")
        self._action(timeline_menu, "&Set keyframe", self.add_keyframe, "K")
        self._action(timeline_menu, "&Delete keyframe", self.remove_keyframe, "Shift+K")
        self._action(timeline_menu, "&Play/pause", self.timeline_panel.toggle_play, "Space")

        webcam_menu = menus.addMenu("&Webcam")
        self._action(webcam_menu, "&Start/stop", self.webcam.start_button.toggle, "F5")
        self._action(webcam_menu, "Set &neutral reference", lambda: self.worker.set_reference(), "F6")
        self._rebuild_recent_menu()

    def _connect(self) -> None:
        w = self.worker
        w.status.connect(self._on_status)
        w.engineReady.connect(self._on_engine_ready)
        w.engineFailed.connect(self._on_engine_failed)
        w.photoLoaded.connect(self._on_photo_loaded)
        w.sourceReady.connect(self._on_source_ready)
        w.sourceFailed.connect(self._on_source_failed)
        w.frameAvailable.connect(self._on_frame_available)
        w.expressionReady.connect(self._on_expression_ready)
        w.jobFailed.connect(self._on_job_failed)
        w.exportProgress.connect(self._on_export_progress)
        w.exportFinished.connect(self._on_export_finished)
        w.exportFailed.connect(self._on_export_failed)
        w.webcamStarted.connect(self._on_webcam_started)
        w.webcamStopped.connect(self._on_webcam_stopped)
        w.recordingStopped.connect(self._on_recording_stopped)

        self.state.changed.connect(self._on_motion_changed)
        self.state.sourceExpressionChanged.connect(lambda _: self._sync_editor())
        self.editor.valueEdited.connect(self.edit_value)
        self.editor.expressionEdited.connect(self.edit_expression)
        self.editor.expressionFromPhotoRequested.connect(self.expression_from_photo_dialog)
        self.editor.randomExpressionRequested.connect(self.random_expression)
        self.editor.neutralExpressionRequested.connect(self.neutral_expression)
        self.editor.sourceExpressionRequested.connect(self.source_expression)
        self.editor.resetAllRequested.connect(self.reset_pose)

        self.webcam.startRequested.connect(self.start_webcam)
        # Lambdas, not the worker's bound methods: Qt would queue those to the (busy) worker thread, but these
        # requests must take effect at once (they only set thread-safe flags).
        self.webcam.stopRequested.connect(lambda: self.worker.stop_webcam())
        self.webcam.referenceRequested.connect(lambda: self.worker.set_reference())
        self.webcam.settingsChanged.connect(lambda s: self.worker.update_webcam_settings(s))
        self.webcam.recordRequested.connect(self.toggle_recording)

        self.timeline_panel.timeChanged.connect(self._on_timeline_time)
        self.timeline_panel.addKeyRequested.connect(self.add_keyframe)
        self.timeline_panel.removeKeyRequested.connect(self.remove_keyframe)
        self.timeline_panel.exportRequested.connect(self.export_video_dialog)
        self.timeline_panel.settingsEdited.connect(self.timeline.set_settings)

    # ================================================================= start-up and shutdown

    def start(self, photo: str | None = None, checkpoint: str | None = None) -> None:
        """Load the model and the photo (default: the sample portrait) in the background."""
        self._busy("Starting…")
        self.view.set_message("Loading the model…")
        self.worker.load_engine(checkpoint, self.device)
        self.open_photo(photo or (str(SAMPLE_PORTRAIT) if SAMPLE_PORTRAIT.is_file() else None), remember=bool(photo))

    def shutdown(self) -> None:
        """Stop the worker thread (quit + wait): called on close and by tests."""
        self.timeline_panel.stop()
        if self._export_dialog is not None:
            self._export_dialog.close()
        self.worker_thread.stop()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.firstShown.emit)

    # ================================================================= helpers

    def show_error(self, title: str, message: str) -> None:
        """Every error ends here: a dialog; the app carries on."""
        self.errors_shown += 1
        self.statusBar().showMessage(f"{title}: {message}", 8000)
        QMessageBox.warning(self, title, message)

    def _busy(self, text: str) -> None:
        self.progress.setVisible(True)
        self.statusBar().showMessage(text)

    def _idle(self, text: str = "", timeout: int = 4000) -> None:
        self.progress.setVisible(False)
        if text:
            self.statusBar().showMessage(text, timeout)
        else:
            self.statusBar().clearMessage()

    def _on_status(self, text: str) -> None:
        self._busy(text)

    @property
    def can_render(self) -> bool:
        return self.engine_info is not None and self.source_info is not None and self.state.ready

    def _update_enabled(self) -> None:
        self.editor.setEnabled(self.state.ready)
        for w in (self.timeline_panel.add_button, self.timeline_panel.remove_button, self.timeline_panel.export_button):
            w.setEnabled(self.can_render)
        self.export_action.setEnabled(self.can_render)

    def request_render(self) -> None:
        if self.can_render and not self.webcam_active:
            self.worker.request_render(self.state.motion, paste_back=self.show_full)

    def _sync_editor(self) -> None:
        self.editor.sync(self.state.motion, self.state.effective_expression())

    # ================================================================= worker results

    def _on_engine_ready(self, info: EngineInfo) -> None:
        previous = self.engine_info
        self.engine_info = info
        self.source_info = None  # the worker dropped the old model's prepared source; a photo load follows
        self._explicit_model = False
        self.device_label.setText(f"Device: {info.device} ({info.precision})")
        self.model_label.setText(f"Model: {info.model_name} · {info.image_size} px · {info.latent_dim} latents")
        motion = self.state.motion if self.state.motion is not None and isinstance(self.state.motion, info.motion_type) else info.motion_type()
        if motion.expression is not None and len(motion.expression) != info.latent_dim:
            motion = replace(motion, expression=None)
        self.editor.set_latent_dim(info.latent_dim)
        self.editor.set_pose_reach(info.pose_reach)
        self.editor.set_expression_reach(info.expression_reach)
        self.timeline_panel.set_latent_dim(info.latent_dim)
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
        self._sync_editor()
        self.view.set_message("Open a photo (Ctrl+O or drop it here).")
        self._idle(f"Model loaded on {info.device}")
        self._update_enabled()

    def _on_engine_failed(self, message: str) -> None:
        self._idle()
        if self.engine_info is None:
            self.model_label.setText("Model: none")
            self.device_label.setText("Device: –")
            hint = "Open a checkpoint with File ▸ Open model…, or start with --checkpoint PATH. You can still browse photos."
            self.view.set_message(f"No model loaded: {message}\n{hint}")
            self.statusBar().showMessage(f"No model: {message}")
        # else: the worker keeps the previous model working, so its labels stay true
        if self._explicit_model:
            self._explicit_model = False
            self.show_error("Cannot load the model", message)
        self._update_enabled()

    def _on_photo_loaded(self, path: str, image: np.ndarray) -> None:
        self.source_path = path or None
        self.view.set_before(image, "Photo")
        self.view.set_after(None)
        self._idle(f"Showing {Path(path).name} (no model loaded)")

    def _on_source_ready(self, info: SourceInfo) -> None:
        if self._pending_face_choice and len(info.faces) > 1:
            self._pending_face_choice = False
            chosen = dialogs.choose_face(self, info.image, info.faces)
            if chosen is not None and chosen != info.face_index:
                self._busy("Preparing the chosen face…")
                self.worker.open_source(info.path, face_index=chosen)
                return
        self._pending_face_choice = False
        self.source_info = info
        self.source_path = info.path
        self.state.set_source_expression(None if info.expression is None else info.expression.ravel())
        self._show_before()
        self.view.set_after(None)
        name = Path(info.path).name if info.path else "image"
        self.setWindowTitle(f"MMFA Studio — {name}")
        self._idle(f"Ready: {name} ({len(info.faces)} face{'s' if len(info.faces) != 1 else ''} found)")
        self._update_enabled()
        self.request_render()

    def _on_source_failed(self, title: str, message: str) -> None:
        self._pending_face_choice = False
        self._idle()
        self.show_error(title, message)

    def _show_before(self) -> None:
        info = self.source_info
        if info is None:
            return
        image = info.image if self.show_full or info.crop is None else info.crop
        self.view.set_before(image, "Source")

    def _on_frame_available(self) -> None:
        frame = self.worker.take_frame()
        if frame is None:
            return
        if frame.kind == "webcam":
            if not self.webcam_active:
                return  # a late frame after stop
            self.view.set_before(frame.driving, "Driving")
            self.view.set_after(frame.crop, frame.keypoints, "Result")
            self.webcam.add_result(frame)
            self.last_frame = frame
            return
        if self.webcam_active:
            return
        self.last_frame = frame
        keypoints = frame.keypoints
        image = frame.crop
        if self.show_full and frame.full is not None:
            image = frame.full
            transform = self.source_info.transform if self.source_info is not None else None
            keypoints = transform.to_original(np.asarray(keypoints)) if transform is not None and keypoints is not None else None
        self.view.set_after(image, keypoints, "After")

    def _on_job_failed(self, title: str, message: str) -> None:
        self._idle()
        self.show_error(title, message)

    # ================================================================= editing

    def _push_motion(self, new: Any, text: str, key: str | None = None) -> None:
        if not self.state.ready or new == self.state.motion:
            return
        self.motion_undo.push(new, text, key)

    def edit_value(self, name: str, value: float) -> None:
        if not self.state.ready:
            return
        spec = PARAM_BY_NAME.get(name)
        self._push_motion(self.state.with_value(name, value), f"Change {spec.label.lower() if spec else name}", name)

    def edit_expression(self, index: int, value: float) -> None:
        if not self.state.ready or self.state.effective_expression() is None:
            return
        self._push_motion(self.state.with_expression_value(index, value), f"Change expression z{index + 1}", f"expr{index}")

    def reset_pose(self) -> None:
        if not self.state.ready:
            return
        defaults = {p.name: p.default for p in POSE_PARAMS}
        self._push_motion(replace(self.state.motion, **defaults), "Reset pose")

    def random_expression(self) -> None:
        if self.engine_info is not None:
            self.worker.sample_expression(None)

    def neutral_expression(self) -> None:
        if self.engine_info is not None and self.state.ready:
            self._push_motion(self.state.with_expression([0.0] * self.engine_info.latent_dim), "Neutral expression")

    def source_expression(self) -> None:
        if self.state.ready:
            self._push_motion(self.state.with_expression(None), "Source's expression")

    def expression_from_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Photo with the expression to copy", self._last_folder(), IMAGE_FILTER)
        if path:
            self._busy(f"Reading the expression of {Path(path).name}…")
            self.worker.encode_expression(path)

    def _on_expression_ready(self, latent: np.ndarray, origin: str) -> None:
        self._idle(f"Expression from {origin}")
        if self.state.ready:
            self._push_motion(self.state.with_expression(latent.ravel()), f"Expression from {origin}")

    def _on_motion_changed(self, motion: Any) -> None:
        self._sync_editor()
        self.request_render()

    def set_show_full(self, on: bool) -> None:
        self.show_full = on
        self._show_before()
        self.request_render()

    # ================================================================= photos

    def _last_folder(self) -> str:
        return str(self.settings.value("lastFolder", str(Path.home())))

    def open_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a portrait", self._last_folder(), IMAGE_FILTER)
        if path:
            self.open_photo(path)

    def open_photo(self, path: str | None, face_index: int | None = None, remember: bool = True) -> None:
        if not path:
            self._idle()
            return
        if self.webcam_active:
            self.worker.stop_webcam()
        self._busy(f"Opening {Path(path).name}…")
        self._pending_face_choice = face_index is None
        self.worker.open_source(path, face_index=face_index)
        if remember:
            self._remember_recent(path)

    def _remember_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recentFiles", [path, *recent][:MAX_RECENT])
        self.settings.setValue("lastFolder", str(Path(path).parent))
        self._rebuild_recent_menu()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):  # QSettings returns a lone string for a one-item list
            value = [value]
        return [str(v) for v in (value or [])]

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for i, path in enumerate(recent):
            action = self.recent_menu.addAction(f"&{i + 1} {Path(path).name}")
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self._open_recent(p))
        self.recent_menu.setEnabled(bool(recent))

    def _open_recent(self, path: str) -> None:
        if path.endswith(".json"):
            self.open_project(path)
        else:
            self.open_photo(path)

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model checkpoint", self._last_folder(), "Checkpoints (*.safetensors)")
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> None:
        """Load another checkpoint; on failure the current model stays (the worker keeps it)."""
        if path:
            self._explicit_model = True
            if self.webcam_active:
                self.worker.stop_webcam()
            self._busy(f"Loading {Path(path).name}…")
            self.worker.load_engine(path, self.device)
            if self.source_path:  # the same face again (a photo with several must not ask anew)
                face = self.source_info.face_index if self.source_info is not None else None
                self.open_photo(self.source_path, face_index=face, remember=False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if paths[0].endswith(".json"):
            self.open_project(paths[0])
        else:
            self.open_photo(paths[0])

    def save_frame_dialog(self) -> None:
        if self.last_frame is None:
            self.show_error("Nothing to save", "No frame has been rendered yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the frame", self._last_folder(), "PNG images (*.png)")
        if path:
            self.save_frame(path)

    def save_frame(self, path: str) -> bool:
        frame = self.last_frame
        image = frame.full if (self.show_full and frame.full is not None) else frame.crop
        try:
            with atomic_path(path) as tmp:
                if not to_qimage(image).save(str(tmp), "PNG"):
                    raise OSError(f"cannot write {path}")
        except OSError as exc:
            self.show_error("Cannot save the frame", describe_error(exc))
            return False
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    # ================================================================= timeline

    def add_keyframe(self) -> None:
        if not self.state.ready:
            return
        t = self.timeline_panel.time
        self.undo_stack.push(KeyframesCommand(self.timeline, self.timeline.keyframes, self.timeline.with_keyframe(t, self.state.motion), f"Keyframe at {t:.2f} s"))
        self.statusBar().showMessage(f"Keyframe set at {t:.2f} s", 3000)

    def remove_keyframe(self) -> None:
        keys = self.timeline.without_keyframe_near(self.timeline_panel.time, tolerance=0.5 / max(self.timeline.fps, 1) + 1e-6)
        if keys is None:
            self.statusBar().showMessage("No keyframe at the playhead", 3000)
            return
        self.undo_stack.push(KeyframesCommand(self.timeline, self.timeline.keyframes, keys, "Delete keyframe"))

    def _on_timeline_time(self, t: float) -> None:
        motion = self.timeline.motion_at(t)
        if motion is not None:
            self.state.set_motion(motion)  # scrubbing previews; it is not an undoable edit

    def export_video_dialog(self) -> None:
        if not self.can_render:
            self.show_error("Nothing to export", "Load a model and a photo first.")
            return
        if not self.timeline.keyframes:
            self.show_error("Nothing to export", "Set at least one keyframe (K) on the timeline first.")
            return
        default = str(Path(self._last_folder()) / "animation.mp4")
        path, _ = QFileDialog.getSaveFileName(self, "Export the timeline", default, "MP4 video (*.mp4)")
        if path:
            if not Path(path).suffix:
                path += ".mp4"
            self.export_video(path)

    def export_video(self, path: str) -> None:
        """Render every timeline frame in the worker and encode it; progress dialog with cancel."""
        self.timeline_panel.stop()
        motions = self.timeline.motions()
        self._export_path = path
        dialog = QProgressDialog(f"Exporting {Path(path).name}…", "Cancel", 0, len(motions), self)
        dialog.setWindowTitle("Export video")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.canceled.connect(lambda: self.worker.cancel_export())  # runs now, in the GUI thread
        dialog.setValue(0)
        self._export_dialog = dialog
        self.worker.export_video(path, motions, self.timeline.fps, self.show_full)

    def _close_export_dialog(self) -> None:
        if self._export_dialog is not None:
            self._export_dialog.canceled.disconnect()
            self._export_dialog.close()
            self._export_dialog.deleteLater()
            self._export_dialog = None

    def _on_export_progress(self, done: int, total: int) -> None:
        if self._export_dialog is not None:
            self._export_dialog.setMaximum(total)
            self._export_dialog.setValue(done)

    def _on_export_finished(self, path: str) -> None:
        self._close_export_dialog()
        self.statusBar().showMessage(f"Exported {path}", 6000)
        self.request_render()

    def _on_export_failed(self, message: str) -> None:
        self._close_export_dialog()
        if message:
            self.show_error("Export failed", message)
        else:
            self.statusBar().showMessage("Export cancelled (no file written)", 4000)
        self.request_render()

    # ================================================================= projects

    def current_project(self) -> Project:
        keys = self.timeline.keyframes
        duration = max([self.timeline.duration, *(k.time for k in keys)])
        return Project(
            source_path=self.source_path,
            face_index=self.source_info.face_index if self.source_info is not None else 0,
            keyframes=[(k.time, k.motion) for k in keys],
            settings=ProjectSettings(fps=self.timeline.fps, duration=duration, paste_back=self.show_full),
            current=self.state.motion,
        )

    def save_project(self) -> bool:
        if not self.project_path:
            return self.save_project_as()
        return self.save_project_to(self.project_path)

    def save_project_as(self) -> bool:
        default = str(Path(self._last_folder()) / "untitled.mmfa.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save the project", default, PROJECT_FILTER)
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".mmfa.json"
        return self.save_project_to(path)

    def save_project_to(self, path: str) -> bool:
        if not self.state.ready:
            self.show_error("Nothing to save", "Load a model first.")
            return False
        try:
            save_project(path, self.current_project())
        except OSError as exc:
            self.show_error("Cannot save the project", describe_error(exc))
            return False
        self.project_path = path
        self.undo_stack.setClean()
        self._remember_recent(path)
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a project", self._last_folder(), PROJECT_FILTER)
        if path:
            self.open_project(path)

    def open_project(self, path: str) -> bool:
        if self.engine_info is None:
            self.show_error("Cannot open the project", "Load a model first (File ▸ Open model…).")
            return False
        try:
            project = load_project(path, self.engine_info.motion_type, self.engine_info.latent_dim)
        except ProjectError as exc:
            self.show_error("Cannot open the project", str(exc))
            return False
        self.project_path = path
        self.timeline.set_settings(project.settings.duration, project.settings.fps)
        self.timeline.set_keyframes([Keyframe(t, m) for t, m in project.keyframes])
        self.timeline_panel.sync_settings()
        self.undo_stack.clear()
        self.full_action.setChecked(project.settings.paste_back)
        current = project.current or (project.keyframes[0][1] if project.keyframes else self.engine_info.motion_type())
        self.state.set_motion(current)
        self._remember_recent(path)
        same_face = project.source_path == self.source_path and (
            self.source_info is not None and self.source_info.face_index == project.face_index)
        if project.source_path and not same_face:  # another photo, or another face of this one
            if not Path(project.source_path).is_file():
                self.show_error("The project's photo is missing", f"{project.source_path} does not exist; open the photo again (Ctrl+O).")
            else:
                self.open_photo(project.source_path, face_index=project.face_index, remember=False)
        self.statusBar().showMessage(f"Opened {path}", 4000)
        return True

    # ================================================================= webcam

    def start_webcam(self, spec: str) -> None:
        if not self.can_render:
            self.webcam.set_running(False)
            self.show_error("Cannot start the webcam", "Load a model and a photo first.")
            return
        if not spec:
            self.webcam.set_running(False)
            self.show_error("Cannot start the webcam", "Choose a camera index, a video file or an image folder.")
            return
        self.timeline_panel.stop()
        self._busy(f"Opening {spec}…")
        self.worker.start_webcam(spec, self.webcam.settings(), pace=not spec.isdigit(), loop=self.webcam.loop_check.isChecked())

    def _on_webcam_started(self, fps: float) -> None:
        self.webcam_active = True
        self._webcam_fps = fps if fps > 0 else 25.0
        self.webcam.set_running(True)
        self.compare_action.setChecked(True)
        self._idle("Webcam running")

    def _on_webcam_stopped(self, reason: str, is_error: bool) -> None:
        was_active = self.webcam_active
        self.webcam_active = False
        self.webcam.set_running(False)
        self._idle(reason or "Webcam stopped", 6000)
        if is_error:
            self.show_error("Webcam stopped", reason)
        if was_active or is_error:
            self._show_before()
            self.request_render()

    def toggle_recording(self, on: bool) -> None:
        if not on:
            self.worker.stop_recording()
            self.webcam.set_recording(False)
            return
        default = str(Path(self._last_folder()) / "recording.mp4")
        path, _ = QFileDialog.getSaveFileName(self, "Record to", default, "MP4 video (*.mp4)")
        if not path:
            self.webcam.set_recording(False)
            return
        if not Path(path).suffix:
            path += ".mp4"
        self.worker.start_recording(path, self._webcam_fps)
        self.webcam.set_recording(True)
        self.statusBar().showMessage(f"Recording to {path}")

    def _on_recording_stopped(self, path: str, error: str) -> None:
        self.webcam.set_recording(False)
        if error:
            self.show_error("Recording failed", error)
        else:
            self.statusBar().showMessage(f"Saved the recording {path}", 6000)

