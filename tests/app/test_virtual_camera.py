"""The webcam panel's "Send to virtual camera": a fake pyvirtualcam records what it is sent (no machine here has
v4l2loopback or OBS); where there is no backend, the panel says so in one line and the box unchecks itself."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from engine.virtual_cameras import RecordingCamera, fake_pyvirtualcam  # tests/engine/*.py (tests/ is on sys.path)
from mmfa_studio.app.controllers.virtual_camera import CLOSED_WITH_WEBCAM, WAITING


def start_webcam(window, qtbot, driving_video) -> None:
    window.webcam.set_source_spec(driving_video)
    window.webcam.start_button.click()
    qtbot.waitUntil(lambda: window.webcam_active, timeout=60_000)


def stop_webcam(window, qtbot) -> None:
    window.webcam.start_button.click()
    qtbot.waitUntil(lambda: not window.webcam_active and not window.webcam_session.running, timeout=30_000)


def camera_sent(qtbot, index: int, frames: int = 2) -> RecordingCamera:
    """The index-th camera opened, once it has been sent ``frames`` frames."""
    opened = RecordingCamera.opened
    qtbot.waitUntil(lambda: len(opened) > index and len(opened[index].frames) >= frames, timeout=60_000)
    return opened[index]


def test_the_webcam_frames_go_to_the_virtual_camera_while_it_is_checked(window, qtbot, driving_video, dialogs,
                                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam())
    panel = window.webcam
    panel.virtual_camera_check.setChecked(True)  # before the start: it waits for the driver's rate
    assert panel.virtual_camera_label.text() == WAITING and RecordingCamera.opened == []
    start_webcam(window, qtbot, driving_video)

    camera = camera_sent(qtbot, 0, frames=3)
    assert (camera.width, camera.height, camera.fps) == (1280, 720, 25.0)  # the default size, the clip's 25 fps
    qtbot.waitUntil(lambda: panel.virtual_camera_label.text().startswith("Sending"), timeout=30_000)
    assert panel.virtual_camera_label.text() == "Sending 1280×720 at 25 fps to /dev/video-fake."
    frame = camera.frames[-1]
    assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
    assert frame[:, :270].max() == 0 and frame[:, 1010:].max() == 0  # the 64 px crop fitted, on black
    assert frame[:, 290:990].std() > 1

    panel.camera_size_combo.setCurrentIndex(panel.camera_size_combo.findText("Render size"))  # reopens it
    small = camera_sent(qtbot, 1)
    assert camera.closed and (small.width, small.height, small.fps) == (64, 64, 25.0)
    assert all(f.shape == (64, 64, 3) for f in small.frames)

    panel.virtual_camera_check.setChecked(False)
    qtbot.waitUntil(lambda: small.closed, timeout=30_000)
    assert panel.virtual_camera_label.text() == ""

    panel.virtual_camera_check.setChecked(True)  # while it runs: at once
    again = camera_sent(qtbot, 2)
    stop_webcam(window, qtbot)  # the webcam stopping closes it; the box stays checked for the next start
    qtbot.waitUntil(lambda: again.closed, timeout=30_000)
    assert panel.virtual_camera_check.isChecked() and panel.virtual_camera_label.text() == CLOSED_WITH_WEBCAM

    start_webcam(window, qtbot, driving_video)
    last = camera_sent(qtbot, 3)
    window.shutdown()  # … and the window closing
    assert last.closed and len(RecordingCamera.opened) == 4
    assert dialogs.shown == []


class _SlowCamera(RecordingCamera):
    def __init__(self, *args, **kwargs):
        time.sleep(1.0)  # a device that takes a while to open
        super().__init__(*args, **kwargs)


def test_opening_the_virtual_camera_does_not_hold_the_gui(window, qtbot, driving_video, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam(_SlowCamera))
    start_webcam(window, qtbot, driving_video)
    panel = window.webcam
    began = time.perf_counter()
    panel.virtual_camera_check.setChecked(True)
    assert time.perf_counter() - began < 0.5  # it opens on the engine thread
    assert panel.virtual_camera_label.text() == "Opening a 1280×720 virtual camera at 25 fps…"
    camera_sent(qtbot, 0)
    qtbot.waitUntil(lambda: panel.virtual_camera_label.text().startswith("Sending"), timeout=30_000)
    stop_webcam(window, qtbot)


class _NoDevice(RecordingCamera):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].")


@pytest.mark.parametrize("case", ["not_installed", "no_device", "this_machine"])
def test_without_a_virtual_camera_the_panel_says_why_in_one_line(window, qtbot, driving_video, dialogs,
                                                                monkeypatch, case):
    if case != "this_machine":  # this one uses whatever pyvirtualcam and devices the machine has
        monkeypatch.setitem(sys.modules, "pyvirtualcam",
                            None if case == "not_installed" else fake_pyvirtualcam(_NoDevice))
    start_webcam(window, qtbot, driving_video)
    panel = window.webcam
    panel.virtual_camera_check.setChecked(True)
    label = panel.virtual_camera_label
    qtbot.waitUntil(lambda: not panel.virtual_camera_check.isChecked() or label.text().startswith("Sending"),
                    timeout=30_000)
    expected = {
        "not_installed": "No virtual camera: pyvirtualcam is not installed (pip install 'mmfa-studio[virtual-camera]')",
        "no_device": "No virtual camera: 'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].",
    }
    if case in expected:
        assert label.text() == expected[case]
    if not panel.virtual_camera_check.isChecked():  # as on these machines
        assert label.text().startswith("No virtual camera: ") and "\n" not in label.text()
        assert window.webcam_session.sink is None
    assert dialogs.shown == []  # no dialog, no traceback: the line says it
    seen = panel.frames_received
    qtbot.waitUntil(lambda: panel.frames_received > seen + 2, timeout=30_000)  # the live view goes on
    stop_webcam(window, qtbot)


class _VanishingCamera(RecordingCamera):
    def send(self, frame: np.ndarray) -> None:
        if len(self.frames) >= 2:
            raise OSError("device removed")
        super().send(frame)


def test_a_virtual_camera_that_goes_away_unchecks_the_box(window, qtbot, driving_video, dialogs, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam(_VanishingCamera))
    start_webcam(window, qtbot, driving_video)
    panel = window.webcam
    panel.virtual_camera_check.setChecked(True)
    qtbot.waitUntil(lambda: not panel.virtual_camera_check.isChecked(), timeout=60_000)
    (camera,) = RecordingCamera.opened
    assert camera.closed and window.webcam_session.sink is None
    assert panel.virtual_camera_label.text() == "The virtual camera stopped: device removed"
    assert dialogs.shown == [("The frame output stopped", "the virtual camera stopped: device removed")]
    assert window.webcam_active  # the live view goes on
    stop_webcam(window, qtbot)
