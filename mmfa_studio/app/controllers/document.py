"""The open document: which model is loaded, which photo (and face) it animates, and the recent files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from ...assets import SAMPLE_PORTRAIT  # the bundled sample, opened when no photo is given
from .. import dialogs
from ..jobs import LoadModel, OpenPhoto
from ..messages import EngineInfo, PhotoPreview, SourceInfo
from ..worker import EngineWorker, JobFailure
from .feedback import Feedback

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff);;All files (*)"
MAX_RECENT = 8


class DocumentController(QObject):
    """Loads models and photos through the engine worker and keeps what is loaded.

    A failed model load keeps the model loaded before (the worker replaces it only on success); a failed photo
    keeps the photo before.
    """

    engineReady = Signal(object)  # EngineInfo
    noModel = Signal(str)  # no model could be loaded and none was loaded before: why
    sourceReady = Signal(object)  # SourceInfo
    photoPreviewed = Signal(object)  # PhotoPreview: a photo shown while no model is loaded
    sourceChanging = Signal()  # a model or a photo starts loading: the live webcam must stop first
    recentChanged = Signal()

    def __init__(self, worker: EngineWorker, feedback: Feedback, settings: QSettings, dialog_parent: QWidget,
                 device: str = "auto") -> None:
        super().__init__()
        self.worker, self.feedback, self.settings = worker, feedback, settings
        self._dialog_parent = dialog_parent
        self.device = device
        self.engine_info: EngineInfo | None = None
        self.source_info: SourceInfo | None = None
        self.source_path: str | None = None

    def start(self, photo: str | None = None, checkpoint: str | None = None) -> None:
        """Load the model and the photo (default: the sample portrait) in the background."""
        self.feedback.busy("Starting…")
        self._submit_model(checkpoint, at_start=True)
        self.open_photo(photo or (str(SAMPLE_PORTRAIT) if SAMPLE_PORTRAIT.is_file() else None), remember=bool(photo))

    # ---------------------------------------------------------------- models

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Open a model checkpoint", self.last_folder(),
                                              "Checkpoints (*.safetensors)")
        if path:
            self.load_model(path)

    def load_model(self, path: str) -> None:
        """Load another checkpoint; on failure the current model stays."""
        if not path:
            return
        self.sourceChanging.emit()
        self.feedback.busy(f"Loading {Path(path).name}…")
        self._submit_model(path, at_start=False)
        if self.source_path:  # the same face again (a photo with several must not ask anew)
            face = self.source_info.face_index if self.source_info is not None else None
            self.open_photo(self.source_path, face_index=face, remember=False)

    def _submit_model(self, checkpoint: str | None, at_start: bool) -> None:
        handle = self.worker.submit(LoadModel(checkpoint, self.device))
        handle.returned.connect(self._on_engine_ready)
        handle.errored.connect(lambda failure: self._on_engine_failed(failure, at_start))

    def _on_engine_ready(self, info: EngineInfo) -> None:
        self.engine_info = info
        self.source_info = None  # the worker dropped the old model's prepared source; a photo load follows
        self.engineReady.emit(info)
        self.feedback.idle(f"Model loaded on {info.device}")

    def _on_engine_failed(self, failure: JobFailure, at_start: bool) -> None:
        self.feedback.idle()
        if self.engine_info is None:
            self.noModel.emit(failure.message)
        # else: the worker keeps the previous model working
        # At start-up the dialog does not block: the photo still shows and the window stays usable meanwhile.
        self.feedback.error(failure.title, failure.message, blocking=not at_start)

    # ---------------------------------------------------------------- photos

    def open_photo_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Open a portrait", self.last_folder(), IMAGE_FILTER)
        if path:
            self.open_photo(path)

    def open_photo(self, path: str | None, face_index: int | None = None, remember: bool = True) -> None:
        """Open a photo; with several faces and no ``face_index``, the user picks one."""
        if not path:
            self.feedback.idle()
            return
        self.sourceChanging.emit()
        self.feedback.busy(f"Opening {Path(path).name}…")
        self._submit_photo(path, face_index)
        if remember:
            self.remember_recent(path)

    def _submit_photo(self, path: str | None, face_index: int | None) -> None:
        handle = self.worker.submit(OpenPhoto(path, face_index=face_index))
        handle.returned.connect(lambda result: self._on_photo(result, ask_face=face_index is None))
        handle.errored.connect(self._on_photo_failed)

    def _on_photo(self, result: SourceInfo | PhotoPreview, ask_face: bool) -> None:
        if isinstance(result, PhotoPreview):
            self.source_path = result.path or None
            self.photoPreviewed.emit(result)
            self.feedback.idle(f"Showing {Path(result.path).name} (no model loaded)")
            return
        if ask_face and len(result.faces) > 1:
            chosen = dialogs.choose_face(self._dialog_parent, result.image, result.faces)
            if chosen is not None and chosen != result.face_index:
                self.feedback.busy("Preparing the chosen face…")
                self._submit_photo(result.path, chosen)
                return
        self.source_info = result
        self.source_path = result.path
        self.sourceReady.emit(result)
        name = Path(result.path).name if result.path else "image"
        count = len(result.faces)
        self.feedback.idle(f"Ready: {name} ({count} face{'s' if count != 1 else ''} found)")

    def _on_photo_failed(self, failure: JobFailure) -> None:
        self.feedback.idle()
        self.feedback.error(failure.title, failure.message)

    # ---------------------------------------------------------------- recent files

    def last_folder(self) -> str:
        return str(self.settings.value("lastFolder", str(Path.home())))

    def remember_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recentFiles", [path, *recent][:MAX_RECENT])
        self.settings.setValue("lastFolder", str(Path(path).parent))
        self.recentChanged.emit()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):  # QSettings returns a lone string for a one-item list
            value = [value]
        return [str(v) for v in (value or [])]
