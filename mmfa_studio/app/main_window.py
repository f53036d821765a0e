"""The main window: builds the widgets and the menus and wires them to the controllers.

What happens lives elsewhere: the model and the photo in :mod:`.controllers.document`, edits, undo, keyframes
and live renders in :mod:`.controllers.editing`, project files (and which file a drop or a recent entry
opens) in :mod:`.controllers.projects`, export in :mod:`.controllers.export`, the webcam in
:mod:`.controllers.live` and :mod:`.webcam`, what the picture shows in :mod:`.controllers.display`; all of them
reach the engine through the one :class:`~.worker.EngineWorker`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QTabWidget,
)

from .controllers import (
    DisplayController,
    DocumentController,
    EditController,
    ExportController,
    Feedback,
    LiveController,
    ProjectController,
)
from .controllers.document import SAMPLE_PORTRAIT
from .controllers.projects import local_files
from .editor import EditorPanel
from .messages import EngineInfo, FrameResult, SourceInfo
from .recent_menu import RecentFilesMenu
from .status_bar import StatusBar
from .timeline_panel import TimelinePanel
from .view import FrameView
from .webcam import WebcamSession
from .webcam_panel import WebcamPanel
from .worker import EngineBackend, WorkerThread, load_engine_backend

__all__ = ["SAMPLE_PORTRAIT", "MainWindow"]

NO_MODEL_HINT = ("Open a checkpoint with File ▸ Open model…, or start with --checkpoint PATH. "
                 "You can still browse photos.")


class MainWindow(QMainWindow):
    firstShown = Signal()  # the first time the window has painted (the launch benchmark listens)

    def __init__(self, backend_loader: Callable[[], EngineBackend] = load_engine_backend,
                 settings: QSettings | None = None, device: str = "auto") -> None:
        super().__init__()
        self.setWindowTitle("MMFA Studio")
        self.resize(1280, 860)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("mmfa-studio", "MMFA Studio")
        self.errors_shown = 0
        self.notice: QMessageBox | None = None  # the last non-blocking error dialog
        self._shown_once = False
        self._model_shown: EngineInfo | None = None  # the model the editor was last set up for

        self.worker_thread = WorkerThread(backend_loader)
        self.worker = self.worker_thread.worker
        self.feedback = Feedback(self)
        self.document = DocumentController(self.worker, self.feedback, self.settings, self, device)
        self.edit = EditController(self.worker, self.document, self.feedback, self)
        self.projects = ProjectController(self.document, self.edit, self.feedback, self)
        self.exporter = ExportController(self.worker, self.document, self.edit, self.feedback, self)
        self.webcam_session = WebcamSession(self.worker)
        self.state, self.undo_stack, self.timeline = self.edit.state, self.edit.undo_stack, self.edit.timeline

        self._build_widgets()
        self.live = LiveController(self.webcam_session, self.webcam, self.document, self.edit, self.feedback, self)
        self.display = DisplayController(self.view, self.document, self.edit, self.live)
        # The controllers' actions under the window's names, which scripts and tests use.
        doc, projects = self.document, self.projects
        self.open_photo, self.load_model, self.recent_files = doc.open_photo, doc.load_model, doc.recent_files
        self.neutral_expression, self.random_expression = self.edit.neutral_expression, self.edit.random_expression
        self.reset_pose = self.edit.reset_pose
        self.save_project, self.save_project_as = projects.save_project, projects.save_project_as
        self.save_project_to, self.open_project = projects.save_project_to, projects.open_project
        self.open_path = projects.open_path  # a dropped or recent file: a project or a photo
        self._build_menus()
        self._connect()
        self._update_enabled()

    # ================================================================= what the controllers know

    @property
    def engine_info(self) -> EngineInfo | None:
        return self.document.engine_info

    @property
    def source_info(self) -> SourceInfo | None:
        return self.document.source_info

    @property
    def source_path(self) -> str | None:
        return self.document.source_path

    @property
    def show_full(self) -> bool:
        return self.edit.paste_back

    @property
    def webcam_active(self) -> bool:
        return self.live.active

    @property
    def last_frame(self) -> FrameResult | None:
        """The frame the picture shows (an edit's or the webcam's)."""
        return self.display.last_frame

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
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)

        self.status_bar = StatusBar()
        self.setStatusBar(self.status_bar)
        self.progress, self.device_label, self.model_label = (self.status_bar.progress, self.status_bar.device_label,
                                                              self.status_bar.model_label)

    def _action(self, menu: QMenu, text: str, slot: Callable, shortcut: QKeySequence | str | None = None,
                checkable: bool = False, tip: str = "") -> QAction:
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

    def _build_menus(self) -> None:
        menus, doc, edit = self.menuBar(), self.document, self.edit
        file_menu = menus.addMenu("&File")
        self.open_action = self._action(file_menu, "&Open photo…", doc.open_photo_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = RecentFilesMenu("Open &recent", doc, self.open_path, self)
        file_menu.addMenu(self.recent_menu)
        self._action(file_menu, "Open &model…", doc.open_model_dialog, tip="Load another checkpoint (.safetensors)")
        file_menu.addSeparator()
        self._action(file_menu, "Open pro&ject…", self.projects.open_project_dialog, "Ctrl+Shift+O")
        self.save_action = self._action(file_menu, "&Save project", self.save_project, QKeySequence.StandardKey.Save)
        self._action(file_menu, "Save project &as…", self.save_project_as, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export video…", self.export_video_dialog, "Ctrl+E")
        self._action(file_menu, "Save &frame as PNG…", lambda: self.exporter.save_frame_dialog(self.last_frame),
                     "Ctrl+Shift+E")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit_menu = menus.addMenu("&Edit")
        for action, keys in ((self.undo_stack.createUndoAction(self, "&Undo"), QKeySequence.StandardKey.Undo),
                             (self.undo_stack.createRedoAction(self, "&Redo"), QKeySequence.StandardKey.Redo)):
            action.setShortcut(QKeySequence(keys))
            edit_menu.addAction(action)
            self.addAction(action)
        edit_menu.addSeparator()
        self._action(edit_menu, "Reset &pose", edit.reset_pose, "Ctrl+0")
        self._action(edit_menu, "&Random expression", lambda: edit.random_expression(), "Ctrl+R")  # no seed
        self._action(edit_menu, "&Neutral expression", edit.neutral_expression, "Ctrl+N")
        self._action(edit_menu, "&Source's expression", edit.source_expression, "Ctrl+Shift+N")

        view_menu = menus.addMenu("&View")
        self.full_action = self._action(view_menu, "&Full photo (paste back)", edit.set_paste_back, "F", checkable=True)
        self.compare_action = self._action(view_menu, "&Before/after", self.view.set_compare, "C", checkable=True)
        self.keypoints_action = self._action(view_menu, "&Keypoints", self.view.set_show_keypoints, "P", checkable=True)

        timeline_menu = menus.addMenu("&Timeline")
        self._action(timeline_menu, "&Set keyframe", self.add_keyframe, "K")
        self._action(timeline_menu, "&Delete keyframe", self.remove_keyframe, "Shift+K")
        self._action(timeline_menu, "&Play/pause", self.timeline_panel.toggle_play, "Space")

        webcam_menu = menus.addMenu("&Webcam")
        self._action(webcam_menu, "&Start/stop", self.webcam.start_button.toggle, "F5")
        self._action(webcam_menu, "Set &neutral reference", self.webcam_session.set_reference, "F6")

    def _connect(self) -> None:
        bar, fb = self.status_bar, self.feedback
        self.worker.status.connect(bar.busy)
        fb.errorRaised.connect(self._show_error)
        fb.busyStarted.connect(bar.busy)
        fb.busyEnded.connect(bar.idle)
        fb.noted.connect(bar.showMessage)

        doc = self.document
        doc.engineReady.connect(self._on_engine_ready)
        doc.noModel.connect(self._on_no_model)
        doc.sourceReady.connect(self._on_source_ready)
        doc.sourceChanging.connect(self.webcam_session.stop)

        edit = self.edit
        edit.pasteBackChanged.connect(self.full_action.setChecked)
        edit.bind_editor(self.editor)

        self.projects.opened.connect(lambda _: self.timeline_panel.sync_settings())
        self.exporter.exportEnded.connect(edit.request_render)

        self.live.started.connect(lambda: self.compare_action.setChecked(True))
        self.webcam.startRequested.connect(lambda _: self.timeline_panel.stop())

        self.timeline_panel.timeChanged.connect(edit.scrub)
        self.timeline_panel.addKeyRequested.connect(self.add_keyframe)
        self.timeline_panel.removeKeyRequested.connect(self.remove_keyframe)
        self.timeline_panel.exportRequested.connect(self.export_video_dialog)
        self.timeline_panel.settingsEdited.connect(self.timeline.set_settings)

    # ================================================================= start-up and shutdown

    def start(self, photo: str | None = None, checkpoint: str | None = None) -> None:
        """Load the model and the photo (default: the sample portrait) in the background."""
        self.view.set_message("Loading the model…")
        self.document.start(photo, checkpoint)

    def shutdown(self) -> None:
        """Stop the engine thread (quit + wait): called on close and by tests."""
        self.timeline_panel.stop()
        self.exporter.close_dialog()
        self.worker_thread.stop()
        self.webcam_session.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.firstShown.emit)

    # ================================================================= feedback

    def show_error(self, title: str, message: str) -> None:
        """Every error ends here: a dialog; the app carries on."""
        self._show_error(title, message, True)

    def _show_error(self, title: str, message: str, blocking: bool) -> None:
        self.errors_shown += 1
        self.statusBar().showMessage(f"{title}: {message}", 8000)
        if blocking:
            QMessageBox.warning(self, title, message)
            return
        if self.notice is not None:  # one at a time: the newest says what matters now
            self.notice.close()
            self.notice.deleteLater()
        self.notice = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        self.notice.setWindowModality(Qt.WindowModality.NonModal)
        self.notice.show()

    def _update_enabled(self) -> None:
        self.editor.setEnabled(self.state.ready)
        for button in (self.timeline_panel.add_button, self.timeline_panel.remove_button,
                       self.timeline_panel.export_button):
            button.setEnabled(self.edit.can_render)
        self.export_action.setEnabled(self.edit.can_render)

    # ================================================================= the model and the photo

    def _on_engine_ready(self, info: EngineInfo) -> None:
        self.status_bar.show_model(info)
        self.timeline_panel.set_latent_dim(info.latent_dim)
        self.edit.adopt_model(info, self._model_shown)
        self._model_shown = info
        self.view.set_message("Open a photo (Ctrl+O or drop it here).")
        self._update_enabled()

    def _on_no_model(self, message: str) -> None:
        self.status_bar.show_no_model(message)
        self.view.set_message(f"No model loaded: {message}\n{NO_MODEL_HINT}")
        self._update_enabled()

    def _on_source_ready(self, info: SourceInfo) -> None:  # the display shows it; the editor adopts it
        self.edit.adopt_source_expression(None if info.expression is None else info.expression.ravel(), info.controls)
        self.setWindowTitle(f"MMFA Studio — {Path(info.path).name if info.path else 'image'}")
        self._update_enabled()
        self.edit.request_render()

    # ================================================================= editing and files (menus, panels, tests)

    def add_keyframe(self) -> None:
        self.edit.add_keyframe(self.timeline_panel.time)

    def remove_keyframe(self) -> None:
        self.edit.remove_keyframe(self.timeline_panel.time)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_files(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    def export_video_dialog(self) -> None:
        self.timeline_panel.stop()
        self.exporter.export_video_dialog()

    def export_video(self, path: str) -> None:
        self.timeline_panel.stop()
        self.exporter.export_video(path)
