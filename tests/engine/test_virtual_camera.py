"""The virtual-camera sink: frames fitted to the camera's size, one-line errors where no backend exists."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mmfa_studio.engine.errors import EngineError
from mmfa_studio.engine.virtual_camera import (
    VirtualCameraUnavailable,
    fit_frame,
    open_virtual_camera,
)

from .virtual_cameras import RecordingCamera, fake_pyvirtualcam


def test_the_sink_sends_frames_at_the_cameras_size_and_closes_once():
    frame = np.full((64, 64, 3), 200, np.uint8)
    with open_virtual_camera(64, 64, 25.0, backend=RecordingCamera) as sink:
        assert (sink.width, sink.height, sink.fps) == (64, 64, 25.0)
        for _ in range(3):
            sink.send(frame)
        camera = sink.camera
    assert sink.frames_sent == 3 and camera.closed
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in camera.frames)
    np.testing.assert_array_equal(camera.frames[0], frame)  # the right size already: sent as it is
    sink.close()  # twice is fine
    with pytest.raises(VirtualCameraUnavailable, match="closed"):
        sink.send(frame)


def test_a_frame_of_another_size_is_scaled_to_fit_and_letterboxed():
    square = np.full((256, 256, 3), 255, np.uint8)
    fitted = fit_frame(square, 640, 360)
    assert fitted.shape == (360, 640, 3)
    assert fitted[:, 140:500].min() == 255 and fitted[:, :139].max() == 0 and fitted[:, 501:].max() == 0
    wide = fit_frame(np.full((100, 400, 3), 9, np.uint8), 200, 200)  # smaller: bars above and below
    assert wide.shape == (200, 200, 3) and wide[100, 100, 0] == 9 and wide[:70].max() == 0
    with open_virtual_camera(640, 360, 30.0, backend=RecordingCamera) as sink:
        sink.send(square)
        with pytest.raises(ValueError, match="uint8"):
            sink.send(square.astype(np.float32))
    assert len(sink.camera.frames) == 1 and sink.camera.frames[0].shape == (360, 640, 3)


def test_pyvirtualcam_is_used_with_the_size_and_rate_asked_for(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam())
    with open_virtual_camera(320, 240, 29.97, backend="v4l2loopback") as sink:
        sink.send(np.zeros((240, 320, 3), np.uint8))
    (camera,) = RecordingCamera.opened
    assert (camera.width, camera.height, camera.fps, camera.backend) == (320, 240, 29.97, "v4l2loopback")
    assert sink.device == "/dev/video-fake" and len(camera.frames) == 1 and camera.closed


class _NoDevice(RecordingCamera):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].\nDid you run "
                           "'modprobe v4l2loopback'?")


class _NoSuchBackend(RecordingCamera):
    def __init__(self, *args, **kwargs):
        raise KeyError("obs")


@pytest.mark.parametrize(("module", "message"), [
    (None, r"pyvirtualcam is not installed \(pip install 'mmfa-studio\[virtual-camera\]'\)"),
    (_NoDevice, "No v4l2 loopback device found .* Did you run 'modprobe v4l2loopback'"),
    (_NoSuchBackend, "no 'obs' backend on"),
])
def test_no_backend_is_one_error_class_with_one_line(monkeypatch, module, message):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None if module is None else fake_pyvirtualcam(module))
    with pytest.raises(VirtualCameraUnavailable, match=message) as error:
        open_virtual_camera(256, 256, 25.0, backend="obs" if module is _NoSuchBackend else None)
    assert "\n" not in str(error.value) and str(error.value).startswith("no virtual camera: ")
    assert isinstance(error.value, EngineError)  # the CLI's exit 2, the app's message line


def test_the_real_backend_here_opens_or_says_why_in_one_line(capfd):
    """These machines have neither v4l2loopback nor OBS: pyvirtualcam (if installed) refuses in one line, and
    the half-opened camera's complaint from __del__ stays out of stderr."""
    try:
        sink = open_virtual_camera(256, 256, 25.0)
    except VirtualCameraUnavailable as exc:
        assert "\n" not in str(exc)
        import gc

        gc.collect()
        assert "Traceback" not in capfd.readouterr().err
    else:
        with sink:
            sink.send(np.zeros((256, 256, 3), np.uint8))


def test_bad_sizes_are_a_programming_error():
    with pytest.raises(ValueError, match="positive size"):
        open_virtual_camera(0, 480, 30.0, backend=RecordingCamera)
