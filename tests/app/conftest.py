"""Fixtures for the app tests: a main window driving the real engine with a random tiny model (64 px)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMessageBox

FIRST_FRAME_TIMEOUT_MS = 60_000


class DialogRecorder:
    """Stands in for QMessageBox's static functions and records what would have been shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def __call__(self, parent, title, text, *args, **kwargs):
        self.shown.append((str(title), str(text)))
        return QMessageBox.StandardButton.Ok

    def texts(self) -> str:
        return " | ".join(f"{t}: {m}" for t, m in self.shown)


@pytest.fixture
def dialogs(monkeypatch) -> DialogRecorder:
    recorder = DialogRecorder()
    for name in ("warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, name, recorder)
    return recorder


@pytest.fixture
def save_path(monkeypatch):
    """``save_path.value = '/some/file'`` makes the next QFileDialog.getSaveFileName/getOpenFileName return it."""

    class Answer:
        value = ""

    answer = Answer()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (answer.value, ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (answer.value, ""))
    return answer


def wait_for_new_frame(qtbot, window, seen: int, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: window.view.frames_shown > seen, timeout=timeout)


def wait_idle(qtbot, window, timeout: int = 30_000) -> None:
    """The worker has nothing queued and the last request has been rendered and shown."""
    qtbot.waitUntil(lambda: window.worker.pending() == (0, False), timeout=timeout)


@pytest.fixture
def make_window(qtbot, tmp_path, dialogs):
    """Build MainWindows that are always shut down (worker thread quit + wait) at teardown."""
    from mmfa_studio.app.main_window import MainWindow

    windows = []

    def make(**kwargs):
        settings = QSettings(str(tmp_path / f"settings{len(windows)}.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, device="cpu", **kwargs)
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()
        assert not window.worker_thread.thread.isRunning()


@pytest.fixture
def window(make_window, qtbot, tiny_checkpoint, sample_portrait, dialogs):
    """A window with the tiny model and the sample portrait loaded and the first frame shown."""
    window = make_window()
    window.show()
    window.start(str(sample_portrait), str(tiny_checkpoint))
    qtbot.waitUntil(lambda: window.view.frames_shown > 0, timeout=FIRST_FRAME_TIMEOUT_MS)
    assert dialogs.shown == []
    return window


@pytest.fixture(scope="session")
def driving_video(tmp_path_factory) -> str:
    """A short 640×480 clip of a moving face (the engine's synthetic source around the sample portrait)."""
    import cv2

    from mmfa_studio.engine import SyntheticSource, VideoExporter

    path = tmp_path_factory.mktemp("video") / "driving.mp4"
    source = SyntheticSource(fps=25, duration=1.6)
    with VideoExporter(path, 25) as video:
        for frame in source:
            canvas = np.full((480, 640, 3), 90, np.uint8)
            canvas[:, 80:560] = cv2.resize(frame, (480, 480))
            video.write(canvas)
    return str(path)


def decoded_frames(path) -> list[np.ndarray]:
    """Every frame of a video, decoded (the truth about what a player shows)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    return frames

