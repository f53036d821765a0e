"""``mmfa-studio live``: reenacted frames reach a (fake) virtual camera at the driver's rate; no backend is
exit 2 with one line."""

from __future__ import annotations

import json
import statistics
import sys
import types

import pytest

from engine.clips import face_clip  # tests/engine/*.py (tests/ is on sys.path)
from engine.virtual_cameras import RecordingCamera, fake_pyvirtualcam
from mmfa_studio.cli import main

from .test_engine_commands import error_line, run


@pytest.fixture(scope="module")
def ten_fps_clip(tmp_path_factory, sample_portrait):
    return face_clip(tmp_path_factory.mktemp("live") / "ten.mp4", sample_portrait, frames=40, rate="10", audio=False)


def test_live_sends_each_reenacted_frame_to_the_camera(capsys, monkeypatch, tiny_checkpoint, sample_portrait,
                                                      ten_fps_clip):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam())
    code, stdout, _ = run(capsys, "live", sample_portrait, "--driving", ten_fps_clip, "--virtual-camera",
                          "--max-frames", 3, "--checkpoint", tiny_checkpoint, "--json")
    assert code == 0
    summary = json.loads(stdout)
    (camera,) = RecordingCamera.opened
    assert (camera.width, camera.height, camera.fps) == (64, 64, 10.0)  # the tiny model's crop, the driver's fps
    assert len(camera.frames) == summary["frames"] == 3 and camera.closed
    assert all(f.shape == (64, 64, 3) and f.std() > 1 for f in camera.frames)
    assert summary["driver_fps"] == 10.0 and summary["camera_device"] == "/dev/video-fake"


class _InstantReenactor:
    """Stands in for the model, which on a busy 2-core machine is slower than real time: what is measured is
    the live loop's pacing, not the renderer's speed."""

    def __init__(self, *_: object):
        pass

    def process(self, frame):
        crop = frame[:64, :64]
        return types.SimpleNamespace(face_found=True, frame=types.SimpleNamespace(crop=crop, full=frame))

    def process_stream(self, frames):
        return map(self.process, frames)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_frames_reach_the_camera_at_the_drivers_rate(capsys, monkeypatch, tiny_checkpoint, sample_portrait,
                                                     ten_fps_clip):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam())
    monkeypatch.setattr("mmfa_studio.cli.live._reenactor", _InstantReenactor)
    code, _, _ = run(capsys, "live", sample_portrait, "--driving", ten_fps_clip, "--virtual-camera",
                     "--max-frames", 12, "--checkpoint", tiny_checkpoint, "--quiet")
    assert code == 0
    (camera,) = RecordingCamera.opened
    assert camera.fps == 10.0 and len(camera.frames) == 12
    seconds = camera.times[-1] - camera.times[0]
    assert seconds == pytest.approx(11 / 10, rel=0.2)  # 12 frames of a 10 fps driver: 1.1 s, not as fast as it decodes
    assert statistics.median(b - a for a, b in zip(camera.times, camera.times[1:])) == pytest.approx(0.1, rel=0.3)


def test_live_fits_the_frames_to_a_camera_size(capsys, monkeypatch, tiny_checkpoint, sample_portrait):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam())
    code, _, _ = run(capsys, "live", sample_portrait, "--driving", "synthetic", "--virtual-camera", "--max-frames", 2,
                     "--camera-size", "320x180", "--checkpoint", tiny_checkpoint, "--quiet")
    assert code == 0
    (camera,) = RecordingCamera.opened
    assert (camera.width, camera.height, camera.fps) == (320, 180, 30.0)
    assert [f.shape for f in camera.frames] == [(180, 320, 3)] * 2


class _NoDevice(RecordingCamera):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].")


@pytest.mark.parametrize("case", ["no_device", "not_installed", "no_output", "bad_size"])
def test_live_without_a_virtual_camera_exits_2_with_one_line(capsys, monkeypatch, tiny_checkpoint, sample_portrait,
                                                            case):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", {"no_device": fake_pyvirtualcam(_NoDevice),
                                                      "not_installed": None}.get(case, fake_pyvirtualcam()))
    argv = ["live", sample_portrait, "--driving", "synthetic", "--checkpoint", tiny_checkpoint, "--max-frames", 1]
    argv += {"no_output": [], "bad_size": ["--virtual-camera", "--camera-size", "wide"]}.get(case, ["--virtual-camera"])
    code, _, err = run(capsys, *argv)
    assert code == 2
    expected = {"no_device": "no virtual camera: 'v4l2loopback' backend: No v4l2 loopback device",
                "not_installed": "pyvirtualcam is not installed", "no_output": "add --virtual-camera",
                "bad_size": "must be WIDTHxHEIGHT"}[case]
    assert expected in error_line(err)
    assert RecordingCamera.opened == []


def test_live_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "live" in capsys.readouterr().out


@pytest.mark.parametrize("paste_back", [False, True])
def test_live_renders_the_face_at_the_photos_resolution_only_to_paste_it_back(paste_back):
    """Without --paste-back the model's crop goes to the camera: the detail render would be thrown away."""
    import argparse

    from mmfa_studio.cli import live

    args = argparse.Namespace(smoothing=0.5, paste_back=paste_back, hold_position=False)
    with live._reenactor(None, None, args, fps=30.0) as reenactor:
        assert reenactor.settings.detail is paste_back and reenactor.settings.paste_back is paste_back
