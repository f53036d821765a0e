"""What the picture shows: the edit's render or the webcam's result, and beside it the source photo or the driver."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject

from ..messages import FrameResult, PhotoPreview, SourceInfo
from ..view import FrameView
from .document import DocumentController
from .editing import EditController
from .live import LiveController


class DisplayController(QObject):
    """Puts every frame into the :class:`FrameView` and remembers the one shown last.

    While the webcam runs its result is shown beside the driving frame and edits do not show; otherwise an
    edit's render is shown (the full photo with paste-back, its keypoints moved onto the photo) beside the
    source (its crop, or the whole photo with paste-back).
    """

    def __init__(self, view: FrameView, document: DocumentController, edit: EditController,
                 live: LiveController) -> None:
        super().__init__()
        self.view, self.document, self.edit, self.live = view, document, edit, live
        self.last_frame: FrameResult | None = None
        document.photoPreviewed.connect(self._show_preview)
        document.sourceReady.connect(self._show_source)
        edit.frameRendered.connect(self._show_edit_frame)
        edit.pasteBackChanged.connect(self.show_before)
        live.stopped.connect(self.show_before)
        live.frameShown.connect(self._show_webcam_frame)

    def show_before(self, *_: object) -> None:
        info = self.document.source_info
        if info is not None:
            self.view.set_before(info.image if self.edit.paste_back or info.crop is None else info.crop, "Source")

    def _show_preview(self, preview: PhotoPreview) -> None:
        self.view.set_before(preview.image, "Photo")
        self.view.set_after(None)

    def _show_source(self, _: SourceInfo) -> None:
        self.show_before()
        self.view.set_after(None)  # until the first render of this photo

    def _show_edit_frame(self, frame: FrameResult) -> None:
        if self.live.active:
            return
        self.last_frame = frame
        image, keypoints = frame.crop, frame.keypoints
        if self.edit.paste_back and frame.full is not None:
            image = frame.full
            info = self.document.source_info
            transform = info.transform if info is not None else None
            keypoints = (transform.to_original(np.asarray(keypoints)) if transform is not None and keypoints is not None
                         else None)
        self.view.set_after(image, keypoints, "After")

    def _show_webcam_frame(self, frame: FrameResult) -> None:
        self.view.set_before(frame.driving, "Driving")
        self.view.set_after(frame.crop, frame.keypoints, "Result")
        self.last_frame = frame
