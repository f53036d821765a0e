"""Start the desktop app: the window shows at once, the model and the photo load in the worker thread.

Automation hooks (environment variables, used by the launch benchmark, the smoke test and the screenshot):

* ``MMFA_STUDIO_REPORT_VISIBLE=1``: print ``window-visible <unix time>`` when the window first paints;
* ``MMFA_STUDIO_SCREENSHOT=path.png``: once the first frame is rendered (or after 120 s), save a grab of the
  window there and quit;
* ``MMFA_STUDIO_QUIT_AFTER_VISIBLE=1``: quit as soon as the window has painted.
"""

from __future__ import annotations

import os
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ..runtime import configure_threads

SCREENSHOT_TIMEOUT_S = 120.0


def display_problem() -> str | None:
    """Why Qt could not open a window here (Linux without a display), or None."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc", "eglfs", "linuxfb")):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY is not set): run it on a desktop, under xvfb-run, or with "
            "QT_QPA_PLATFORM=offscreen")


def run_app(photo: str | None = None, checkpoint: str | None = None, device: str = "auto") -> int:
    configure_threads()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MMFA Studio")
    app.setOrganizationName("mmfa-studio")
    from .main_window import MainWindow  # after QApplication: pyqtgraph wants one

    window = MainWindow(device=device)
    if os.environ.get("MMFA_STUDIO_REPORT_VISIBLE"):
        window.firstShown.connect(lambda: print(f"window-visible {time.time():.3f}", flush=True))
    if os.environ.get("MMFA_STUDIO_QUIT_AFTER_VISIBLE"):
        window.firstShown.connect(window.close)
    screenshot = os.environ.get("MMFA_STUDIO_SCREENSHOT")
    if screenshot:
        _save_screenshot_when_ready(window, screenshot)
    window.show()
    QTimer.singleShot(0, lambda: window.start(photo, checkpoint))
    code = app.exec()
    window.shutdown()
    return int(code)


def _save_screenshot_when_ready(window, path: str) -> None:
    started = time.monotonic()
    timer = QTimer(window)

    def poll() -> None:
        ready = window.view.frames_shown > 0
        if ready or time.monotonic() - started > SCREENSHOT_TIMEOUT_S:
            timer.stop()
            ok = window.grab().save(path)
            print(f"screenshot {'saved' if ok else 'FAILED'} {path} (frame rendered: {ready})", flush=True)
            window.close()

    timer.timeout.connect(poll)
    timer.start(200)
