"""How a controller tells the user something without knowing the window."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class Feedback(QObject):
    """Errors become dialogs, busy/idle the status bar's progress, notes a timed status line (the window listens)."""

    errorRaised = Signal(str, str, bool)  # title, one-line message, blocking (a modal dialog) or not
    busyStarted = Signal(str)
    busyEnded = Signal(str, int)  # text ("" clears), ms shown
    noted = Signal(str, int)  # text, ms shown (0: until replaced)

    def error(self, title: str, message: str, blocking: bool = True) -> None:
        self.errorRaised.emit(title, message, blocking)

    def busy(self, text: str) -> None:
        self.busyStarted.emit(text)

    def idle(self, text: str = "", timeout_ms: int = 4000) -> None:
        self.busyEnded.emit(text, timeout_ms)

    def note(self, text: str, timeout_ms: int = 4000) -> None:
        self.noted.emit(text, timeout_ms)
