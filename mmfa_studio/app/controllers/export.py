"""Export: the timeline as an mp4 (rendered on the engine thread, with a progress dialog that cancels), and
the frame on screen as a PNG."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget

from ...atomic import atomic_path
from ..jobs import ExportVideo
from ..messages import ExportProgress, FrameResult
from ..view import to_qimage
from ..worker import EngineWorker, JobFailure, JobHandle, describe_error
from .document import DocumentController
from .editing import EditController
from .feedback import Feedback


class ExportController(QObject):
    exportEnded = Signal()  # finished, failed or cancelled: the edit view renders again

    def __init__(self, worker: EngineWorker, document: DocumentController, edit: EditController, feedback: Feedback,
                 dialog_parent: QWidget) -> None:
        super().__init__()
        self.worker, self.document, self.edit, self.feedback = worker, document, edit, feedback
        self._dialog_parent = dialog_parent
        self.progress_dialog: QProgressDialog | None = None
        self._handle: JobHandle | None = None

    # ---------------------------------------------------------------- video

    def export_video_dialog(self) -> None:
        if not self.edit.can_render:
            self.feedback.error("Nothing to export", "Load a model and a photo first.")
            return
        if not self.edit.timeline.keyframes:
            self.feedback.error("Nothing to export", "Set at least one keyframe (K) on the timeline first.")
            return
        default = str(Path(self.document.last_folder()) / "animation.mp4")
        path, _ = QFileDialog.getSaveFileName(self._dialog_parent, "Export the timeline", default, "MP4 video (*.mp4)")
        if path:
            self.export_video(path if Path(path).suffix else path + ".mp4")

    def export_video(self, path: str) -> None:
        """Render every timeline frame on the engine thread and encode it; a progress dialog with cancel."""
        animation = self.edit.timeline.animation()
        if animation is None:
            self.feedback.error("Nothing to export", "Set at least one keyframe (K) on the timeline first.")
            return
        self.close_dialog()
        handle = self.worker.submit(ExportVideo(path, animation, self.edit.paste_back))
        dialog = QProgressDialog(f"Exporting {Path(path).name}…", "Cancel", 0, self.edit.timeline.frame_count(),
                                 self._dialog_parent)
        dialog.setWindowTitle("Export video")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.canceled.connect(handle.cancel)  # runs now, in the GUI thread: the job sees it between frames
        dialog.setValue(0)
        handle.progress.connect(self._on_progress)
        handle.returned.connect(self._on_finished)
        handle.errored.connect(self._on_failed)
        self.progress_dialog, self._handle = dialog, handle

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def close_dialog(self) -> None:
        dialog, self.progress_dialog, self._handle = self.progress_dialog, None, None
        if dialog is not None:
            dialog.canceled.disconnect()
            dialog.close()
            dialog.deleteLater()

    def _on_progress(self, progress: ExportProgress) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.setMaximum(progress.total)
            self.progress_dialog.setValue(progress.done)

    def _on_finished(self, path: str) -> None:
        self.close_dialog()
        self.feedback.note(f"Exported {path}", 6000)
        self.exportEnded.emit()

    def _on_failed(self, failure: JobFailure) -> None:
        self.close_dialog()
        if failure.cancelled:
            self.feedback.note("Export cancelled (no file written)")
        else:
            self.feedback.error(failure.title, failure.message)
        self.exportEnded.emit()

    # ---------------------------------------------------------------- frame

    def save_frame_dialog(self, frame: FrameResult | None) -> None:
        if frame is None:
            self.feedback.error("Nothing to save", "No frame has been rendered yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self._dialog_parent, "Save the frame", self.document.last_folder(),
                                              "PNG images (*.png)")
        if path:
            self.save_frame(frame, path)

    def save_frame(self, frame: FrameResult, path: str) -> bool:
        image = frame.full if (self.edit.paste_back and frame.full is not None) else frame.crop
        try:
            with atomic_path(path) as tmp:
                if not to_qimage(image).save(str(tmp), "PNG"):
                    raise OSError(f"cannot write {path}")
        except OSError as exc:
            self.feedback.error("Cannot save the frame", describe_error(exc))
            return False
        self.feedback.note(f"Saved {path}")
        return True
