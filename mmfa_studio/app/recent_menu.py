"""File ▸ Open recent: the photos and projects opened last, rebuilt whenever that list changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMenu, QWidget

from .controllers import DocumentController


class RecentFilesMenu(QMenu):
    """One entry per recent file (its name; the path as tooltip); picking one hands its path to ``open_path``."""

    def __init__(self, title: str, document: DocumentController, open_path: Callable[[str], object],
                 parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self._document, self._open_path = document, open_path
        document.recentChanged.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        recent = self._document.recent_files()
        for i, path in enumerate(recent):
            action = self.addAction(f"&{i + 1} {Path(path).name}")
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self._open_path(p))
        self.setEnabled(bool(recent))
