"""Webcam reenactment driven by a video file (no camera exists on test machines)."""

from __future__ import annotations

from pathlib import Path

from .conftest import decoded_frames

N_FRAMES = 12


def test_webcam_from_a_video_file(window, qtbot, driving_video, save_path, tmp_path):
    panel = window.webcam
    panel.set_source_spec(driving_video)
    panel.start_button.click()
    qtbot.waitUntil(lambda: window.webcam_active, timeout=30_000)
    assert panel.start_button.text() == "Stop" and panel.reference_button.isEnabled()
    qtbot.waitUntil(lambda: panel.frames_received >= 3, timeout=30_000)

    # Change settings and take a neutral reference while it runs.
    panel.transfer_combo.setCurrentIndex(1)  # pose only
    panel.mirror_check.setChecked(False)
    panel.reference_button.click()

    # Record a few frames.
    record_to = tmp_path / "recording.mp4"
    save_path.value = str(record_to)
    panel.record_button.click()
    assert panel.record_button.isChecked()
    start = panel.frames_received
    qtbot.waitUntil(lambda: panel.frames_received >= start + N_FRAMES, timeout=60_000)
    panel.record_button.click()
    qtbot.waitUntil(lambda: record_to.is_file(), timeout=30_000)

    frame = window.last_frame
    assert frame.kind == "webcam" and frame.driving.shape == (480, 640, 3)
    assert frame.crop.shape == (64, 64, 3)
    assert panel.fps_label.text().endswith("fps") and panel.fps_label.text() != "– fps"
    assert panel.latency_label.text().endswith("ms")
    yaw_curve = panel.pose_curves[0].getData()[1]
    assert yaw_curve is not None and len(yaw_curve) > 0  # the driving pose is plotted

    panel.start_button.click()  # stop
    qtbot.waitUntil(lambda: not window.webcam_active and not window.webcam_session.running, timeout=30_000)
    assert panel.start_button.text() == "Start"
    assert len(decoded_frames(record_to)) >= 1
    # Back in editing mode: a slider edit renders again.
    seen = window.view.frames_shown
    window.editor.sliders["yaw"].slider.setValue(10.0)
    qtbot.waitUntil(lambda: window.view.frames_shown > seen and window.last_frame.kind == "edit", timeout=30_000)


def test_video_end_stops_cleanly_without_loop(window, qtbot, driving_video, dialogs):
    panel = window.webcam
    panel.loop_check.setChecked(False)
    panel.set_source_spec(driving_video)
    panel.start_button.click()
    qtbot.waitUntil(lambda: window.webcam_active, timeout=30_000)
    qtbot.waitUntil(lambda: not window.webcam_active, timeout=60_000)
    assert panel.frames_received > 0
    assert dialogs.shown == []  # the end of a file is not an error …
    assert "ended" in window.statusBar().currentMessage()  # … but the user is told why it stopped
    assert not Path(driving_video).with_suffix(".part.mp4").exists()


def test_changing_settings_keeps_the_neutral_reference(window, qtbot, driving_video):
    panel = window.webcam
    panel.set_source_spec(driving_video)
    panel.start_button.click()
    qtbot.waitUntil(lambda: window.webcam_active, timeout=30_000)
    qtbot.waitUntil(lambda: panel.frames_received >= 2, timeout=30_000)
    panel.reference_button.click()
    start = panel.frames_received
    qtbot.waitUntil(lambda: panel.frames_received >= start + 2, timeout=30_000)
    reenactor = window.webcam_session.reenactor
    assert reenactor.has_reference
    panel.transfer_combo.setCurrentIndex(1)  # pose only
    start = panel.frames_received
    qtbot.waitUntil(lambda: panel.frames_received >= start + 3, timeout=30_000)
    assert window.webcam_session.reenactor is reenactor and reenactor.transfer == "pose" and reenactor.has_reference
    panel.follow_check.setChecked(False)  # hold the head in place, live
    start = panel.frames_received
    qtbot.waitUntil(lambda: panel.frames_received >= start + 3, timeout=30_000)
    assert window.webcam_session.reenactor is reenactor and not reenactor.follow_position
    panel.start_button.click()
    qtbot.waitUntil(lambda: not window.webcam_active and not window.webcam_session.running, timeout=30_000)


def test_recording_repeats_frames_to_keep_real_time():
    """A real-time source skips frames while rendering lags; the recording repeats the last one so it plays at
    the right speed. An unpaced file writes each frame once."""
    import numpy as np

    from mmfa_studio.app.recorder import RealTimeRecorder

    class Recorder:
        frames_written = 0

        def write(self, frame):
            self.frames_written += 1

    recorder, clock = Recorder(), [100.0]
    recording = RealTimeRecorder(recorder, "unused.mp4", fps=10.0, realtime=True, clock=lambda: clock[0])
    frame = np.zeros((8, 8, 3), np.uint8)
    recording.write(frame)
    assert recorder.frames_written == 1
    clock[0] = 100.5  # half a second later at 10 fps: frames 2-6 are due
    recording.write(frame)
    assert recorder.frames_written == 6
    recording.write(frame)  # no time passed: nothing due
    assert recorder.frames_written == 6
    recording.realtime = False
    recording.write(frame)
    assert recorder.frames_written == 7


class FakeSink:
    """Stands in for a virtual camera: records what it is sent."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.frames: list = []
        self.closed = False
        self.fail_after = fail_after

    def send(self, frame_rgb_uint8) -> None:
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            raise OSError("the virtual camera went away")
        self.frames.append(frame_rgb_uint8.copy())

    def close(self) -> None:
        self.closed = True


def test_every_webcam_frame_also_goes_to_the_frame_sink(window, qtbot, driving_video, dialogs):
    import numpy as np

    sink = FakeSink()
    shown_frames = []  # not window.last_frame: once stopped, an edit render may replace it at any moment
    window.live.frameShown.connect(shown_frames.append)
    window.webcam_session.set_sink(sink)
    window.webcam.set_source_spec(driving_video)
    window.webcam.start_button.click()
    qtbot.waitUntil(lambda: window.webcam.frames_received >= 4, timeout=60_000)
    window.webcam.start_button.click()  # stop
    qtbot.waitUntil(lambda: not window.webcam_session.running, timeout=30_000)
    shown = shown_frames[-1]
    assert shown.kind == "webcam" and len(sink.frames) >= shown.seq  # the GUI may skip frames; the sink does not
    assert all(f.dtype == np.uint8 and f.shape == (64, 64, 3) for f in sink.frames)
    assert np.array_equal(sink.frames[shown.seq - 1], shown.crop)
    assert not sink.closed  # it outlives one run (a virtual camera stays open between runs) …
    other = FakeSink()
    window.webcam_session.set_sink(other)
    qtbot.waitUntil(lambda: sink.closed, timeout=30_000)  # … until replaced
    window.shutdown()
    assert other.closed  # or the window closes
    assert dialogs.shown == []


def test_a_failing_frame_sink_is_dropped_and_the_live_view_goes_on(window, qtbot, driving_video, dialogs):
    sink = FakeSink(fail_after=2)
    window.webcam_session.set_sink(sink)
    window.webcam.set_source_spec(driving_video)
    window.webcam.start_button.click()
    qtbot.waitUntil(lambda: len(dialogs.shown) == 1, timeout=60_000)
    assert dialogs.shown[0] == ("The frame output stopped", "the virtual camera went away")
    assert sink.closed and window.webcam_session.sink is None
    start = window.webcam.frames_received
    qtbot.waitUntil(lambda: window.webcam.frames_received > start + 2, timeout=30_000)
    assert window.webcam_active
    window.webcam.start_button.click()
    qtbot.waitUntil(lambda: not window.webcam_session.running, timeout=30_000)
