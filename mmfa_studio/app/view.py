"""The picture: the rendered crop or the pasted-back full photo, an optional before/after compare, keypoints."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def to_qimage(image: np.ndarray) -> QImage:
    """H×W×3 uint8 RGB → a QImage that owns its pixels."""
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FrameView(QWidget):
    """Paints up to two images side by side (before | after), letter-boxed, with optional keypoint dots."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 240)
        self._before: QImage | None = None
        self._after: QImage | None = None
        self._keypoints: np.ndarray | None = None  # K×2 in the after image's pixels
        self._before_label = "Before"
        self._after_label = "After"
        self.compare = False
        self.show_keypoints = False
        self.message = "Loading…"
        self.frames_shown = 0

    def sizeHint(self) -> QSize:
        return QSize(640, 520)

    def set_message(self, text: str) -> None:
        self.message = text
        self.update()

    def set_before(self, image: np.ndarray | None, label: str = "Before") -> None:
        self._before = None if image is None else to_qimage(image)
        self._before_label = label
        self.update()

    def set_after(self, image: np.ndarray | None, keypoints: np.ndarray | None = None, label: str = "After") -> None:
        self._after = None if image is None else to_qimage(image)
        self._keypoints = None if keypoints is None else np.asarray(keypoints, dtype=float).reshape(-1, 2)
        self._after_label = label
        if image is not None:
            self.frames_shown += 1
        self.update()

    def set_compare(self, on: bool) -> None:
        self.compare = on
        self.update()

    def set_show_keypoints(self, on: bool) -> None:
        self.show_keypoints = on
        self.update()

    def has_frame(self) -> bool:
        return self._after is not None

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.fillRect(self.rect(), QColor(32, 33, 36))
        panes: list[tuple[QImage, str, bool]] = []
        main = self._after if self._after is not None else self._before
        if self.compare and self._before is not None and self._after is not None:
            panes = [(self._before, self._before_label, False), (self._after, self._after_label, True)]
        elif main is not None:
            panes = [(main, self._after_label if self._after is not None else self._before_label,
                      self._after is not None)]
        if not panes:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect().adjusted(20, 20, -20, -20),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        width = self.width() / len(panes)
        font = QFont(painter.font())
        font.setPointSize(max(8, font.pointSize()))
        painter.setFont(font)
        for i, (image, label, is_after) in enumerate(panes):
            area = QRectF(i * width + 6, 26, width - 12, self.height() - 32)
            scale = min(area.width() / image.width(), area.height() / image.height())
            w, h = image.width() * scale, image.height() * scale
            target = QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)
            painter.drawImage(target, image)
            if len(panes) > 1 or self.compare:
                painter.setPen(QColor(230, 230, 230))
                painter.drawText(QRectF(area.x(), 4, area.width(), 20), Qt.AlignmentFlag.AlignCenter, label)
            if is_after and self.show_keypoints and self._keypoints is not None:
                painter.setPen(QPen(QColor(255, 80, 60), 2))
                painter.setBrush(QColor(255, 200, 0))
                radius = max(2.5, 3.0 * scale ** 0.5)
                for x, y in self._keypoints:
                    painter.drawEllipse(QPointF(target.x() + x * scale, target.y() + y * scale), radius, radius)
        if self.message and self._after is None:
            painter.setPen(QColor(240, 240, 240))
            # Wrapped: a long error (a checkpoint's path and what is wrong with it) must not be cut at both ends.
            painter.drawText(self.rect().adjusted(10, 10, -10, -10),
                             Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap,
                             self.message)
