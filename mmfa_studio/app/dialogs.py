"""Small dialogs: choosing one face in a photo with several."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .view import to_qimage

if TYPE_CHECKING:
    from mmfa_studio.face import Face


def face_thumbnail(image: np.ndarray, box: Sequence[float], size: int = 96) -> QPixmap:
    """The face's box (with a margin) cut from the photo, as a square-ish thumbnail."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    margin = 0.25 * max(x1 - x0, y1 - y0)
    xa, ya = max(0, int(x0 - margin)), max(0, int(y0 - margin))
    xb, yb = min(w, int(x1 + margin)), min(h, int(y1 + margin))
    patch = image[ya:yb, xa:xb] if xb > xa and yb > ya else image
    pixmap = QPixmap.fromImage(to_qimage(patch))
    return pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


class FacePickerDialog(QDialog):
    """Lists the detected faces (largest first) with thumbnails; the first is preselected."""

    def __init__(self, image: np.ndarray, faces: Sequence[Face], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a face")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"This photo shows {len(faces)} faces. Which one should move?"))
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(96, 96))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMinimumSize(460, 170)
        for i, face in enumerate(faces):
            x0, y0, x1, y1 = (float(v) for v in np.asarray(face.box)[:4])
            item = QListWidgetItem(QIcon(face_thumbnail(image, face.box)),
                                   f"Face {i + 1}\n{int(x1 - x0)}×{int(y1 - y0)} px")
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _: self.accept())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def chosen(self) -> int:
        item = self.list.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else 0


def choose_face(parent: QWidget, image: np.ndarray, faces: Sequence[Face]) -> int | None:
    """Ask which face to use; None when the user cancels."""
    dialog = FacePickerDialog(image, faces, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.chosen()
