"""Project files: save the photo, keyframes and settings being edited; open them again."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from ...motion import Motion
from ..project import Project, ProjectError, ProjectSettings, load_project, save_project
from ..timeline import Keyframe
from ..worker import describe_error
from .document import DocumentController
from .editing import EditController
from .feedback import Feedback

PROJECT_FILTER = "MMFA Studio projects (*.mmfa.json *.json)"


class ProjectController(QObject):
    opened = Signal(object)  # Project: the timeline's settings changed with it

    def __init__(self, document: DocumentController, edit: EditController, feedback: Feedback,
                 dialog_parent: QWidget) -> None:
        super().__init__()
        self.document, self.edit, self.feedback = document, edit, feedback
        self._dialog_parent = dialog_parent
        self.project_path: str | None = None

    def current_project(self) -> Project:
        timeline, source = self.edit.timeline, self.document.source_info
        keys = timeline.keyframes
        duration = max([timeline.duration, *(k.time for k in keys)])
        return Project(
            source_path=self.document.source_path,
            face_index=source.face_index if source is not None else 0,
            keyframes=[(k.time, k.motion) for k in keys],
            settings=ProjectSettings(fps=timeline.fps, duration=duration, paste_back=self.edit.paste_back),
            current=self.edit.state.motion,
        )

    def save_project(self) -> bool:
        if not self.project_path:
            return self.save_project_as()
        return self.save_project_to(self.project_path)

    def save_project_as(self) -> bool:
        default = str(Path(self.document.last_folder()) / "untitled.mmfa.json")
        path, _ = QFileDialog.getSaveFileName(self._dialog_parent, "Save the project", default, PROJECT_FILTER)
        if not path:
            return False
        if not path.endswith(".json"):
            path += ".mmfa.json"
        return self.save_project_to(path)

    def save_project_to(self, path: str) -> bool:
        if not self.edit.state.ready:
            self.feedback.error("Nothing to save", "Load a model first.")
            return False
        try:
            save_project(path, self.current_project())
        except OSError as exc:
            self.feedback.error("Cannot save the project", describe_error(exc))
            return False
        self.project_path = path
        self.edit.undo_stack.setClean()
        self.document.remember_recent(path)
        self.feedback.note(f"Saved {path}")
        return True

    def open_path(self, path: str) -> None:
        """A dropped or recent file: a project or a photo."""
        if path.endswith(".json"):
            self.open_project(path)
        else:
            self.document.open_photo(path)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Open a project", self.document.last_folder(),
                                              PROJECT_FILTER)
        if path:
            self.open_project(path)

    def open_project(self, path: str) -> bool:
        info = self.document.engine_info
        if info is None:
            self.feedback.error("Cannot open the project", "Load a model first (File ▸ Open model…).")
            return False
        try:
            project = load_project(path, Motion, info.latent_dim)
        except ProjectError as exc:
            self.feedback.error("Cannot open the project", str(exc))
            return False
        self.project_path = path
        timeline = self.edit.timeline
        timeline.set_settings(project.settings.duration, project.settings.fps)
        timeline.set_keyframes([Keyframe(t, m) for t, m in project.keyframes])
        self.edit.undo_stack.clear()
        self.edit.set_paste_back(project.settings.paste_back)
        self.opened.emit(project)
        self.edit.state.set_motion(project.current or (project.keyframes[0][1] if project.keyframes else Motion()))
        self.document.remember_recent(path)
        source = self.document.source_info
        same_face = (project.source_path == self.document.source_path and source is not None
                     and source.face_index == project.face_index)
        if project.source_path and not same_face:  # another photo, or another face of this one
            if not Path(project.source_path).is_file():
                self.feedback.error("The project's photo is missing",
                                    f"{project.source_path} does not exist; open the photo again (Ctrl+O).")
            else:
                self.document.open_photo(project.source_path, face_index=project.face_index, remember=False)
        self.feedback.note(f"Opened {path}")
        return True


def local_files(mime: QMimeData) -> list[str]:
    """The local files a drag carries (a drop opens the first with :meth:`ProjectController.open_path`)."""
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
