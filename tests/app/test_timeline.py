"""Timeline keyframes, interpolation, playback, mp4 export (progress and cancel), project save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QPushButton

from mmfa_studio.app.project import FORMAT, ProjectError, load_project
from mmfa_studio.app.timeline import Keyframe, Timeline
from mmfa_studio.engine import Motion

from .conftest import decoded_frames, wait_idle


def set_key(window, t: float, **changes) -> None:
    window.timeline_panel.set_time(t)
    for name, value in changes.items():
        if name == "expression":
            window.state.set_motion(window.state.with_expression(value))
        else:
            window.editor.sliders[name].slider.setValue(value)
    window.timeline_panel.add_button.click()


def test_interpolation_holds_ends_and_blends_latents():
    timeline = Timeline(duration=2.0, fps=10)
    assert timeline.motion_at(0.5) is None
    a = Motion(yaw=-10, expression=(0.0, 0.0))
    b = Motion(yaw=30, pitch=4, expression=(2.0, -1.0))
    timeline.set_keyframes([Keyframe(1.5, b), Keyframe(0.5, a)])
    assert timeline.motion_at(0.0) == a and timeline.motion_at(2.0) == b
    mid = timeline.motion_at(1.0)
    assert mid.yaw == pytest.approx(10.0) and mid.pitch == pytest.approx(2.0)
    assert mid.expression == pytest.approx((1.0, -0.5))
    assert timeline.frame_count() == 21 and len(timeline.motions()) == 21
    # one keyframe per time: setting again at 0.5 replaces it
    assert len(timeline.with_keyframe(0.5, b)) == 2


def test_keyframes_scrub_play_and_undo(window, qtbot):
    set_key(window, 0.0, yaw=-20.0)
    set_key(window, 2.0, yaw=20.0, expression=(1.0, 0.0, 0.0, -1.0))
    assert [k.time for k in window.timeline.keyframes] == [0.0, 2.0]
    assert len(window.timeline_panel.curves) == 3  # yaw, pitch, roll curves
    window.timeline_panel.curve_combo.setCurrentText("Expression latents")
    assert len(window.timeline_panel.curves) == 4
    window.timeline_panel.set_time(1.0)  # scrub
    assert window.state.motion.yaw == pytest.approx(0.0, abs=1e-6)
    assert window.state.motion.expression is not None
    window.timeline_panel.play_button.click()
    start = window.timeline_panel.time
    qtbot.waitUntil(lambda: abs(window.timeline_panel.time - start) > 0.1, timeout=10_000)
    window.timeline_panel.play_button.click()
    assert not window.timeline_panel._timer.isActive()
    window.timeline_panel.set_time(2.0)
    window.timeline_panel.remove_button.click()
    assert [k.time for k in window.timeline.keyframes] == [0.0]
    window.undo_stack.undo()
    assert [k.time for k in window.timeline.keyframes] == [0.0, 2.0]
    wait_idle(qtbot, window)


def test_export_gives_a_playable_mp4(window, qtbot, tmp_path, save_path):
    window.timeline.set_settings(1.0, 10.0)
    window.timeline_panel.sync_settings()
    set_key(window, 0.0, yaw=-15.0)
    set_key(window, 1.0, yaw=15.0)
    out = tmp_path / "anim.mp4"
    save_path.value = str(out)
    window.timeline_panel.export_button.click()
    assert window.exporter.progress_dialog is not None
    qtbot.waitUntil(lambda: window.exporter.progress_dialog is None, timeout=60_000)
    frames = decoded_frames(out)
    assert len(frames) == 11  # 1 s at 10 fps, both ends included
    assert frames[0].shape == (512, 512, 3)  # the engine's output size, not the tiny model's 64
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0  # the head moved
    assert "Exported" in window.statusBar().currentMessage()


def test_export_cancel_leaves_no_file(window, qtbot, tmp_path):
    window.timeline.set_settings(60.0, 25.0)  # 1501 frames: long enough to cancel midway
    set_key(window, 0.0, yaw=-15.0)
    set_key(window, 60.0, yaw=15.0)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "cancelled.mp4"
    window.export_video(str(out))
    dialog = window.exporter.progress_dialog
    qtbot.waitUntil(lambda: dialog.value() >= 2, timeout=60_000)
    cancel_button = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Cancel")
    cancel_button.click()  # what the user does (QProgressDialog.cancel() alone does not emit canceled)
    qtbot.waitUntil(lambda: window.exporter.progress_dialog is None, timeout=60_000)
    assert not out.exists()
    assert list(folder.iterdir()) == []  # no temporary file either
    assert "cancelled" in window.statusBar().currentMessage()


def test_project_round_trip(window, make_window, qtbot, tmp_path, tiny_checkpoint, sample_portrait, save_path):
    window.timeline.set_settings(3.0, 12.0)
    set_key(window, 0.0, yaw=-10.0, scale=1.1)
    set_key(window, 1.5, pitch=7.0, expression=(0.5, -0.5, 1.0, 0.0))
    window.editor.sliders["roll"].slider.setValue(5.0)
    path = tmp_path / "demo.mmfa.json"
    save_path.value = str(path)
    window.save_project_as()
    assert path.is_file() and not list(tmp_path.glob(".demo*"))  # atomic: no temp file left
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and len(data["keyframes"]) == 2

    other = make_window()
    other.show()
    other.start(None, str(tiny_checkpoint))
    qtbot.waitUntil(lambda: other.engine_info is not None and other.source_info is not None, timeout=60_000)
    assert other.open_project(str(path))
    assert ([(k.time, k.motion) for k in other.timeline.keyframes]
            == [(k.time, k.motion) for k in window.timeline.keyframes])
    assert other.timeline.fps == 12.0 and other.timeline.duration == 3.0
    assert other.state.motion == window.state.motion
    assert other.source_path == str(Path(sample_portrait).resolve())
    qtbot.waitUntil(lambda: other.last_frame is not None and other.last_frame.motion == other.state.motion,
                    timeout=60_000)


def test_project_brings_back_its_face_of_the_open_photo(window, qtbot, tmp_path, sample_portrait, save_path,
                                                        monkeypatch):
    import cv2

    from mmfa_studio.app import dialogs as app_dialogs

    portrait = cv2.imread(str(sample_portrait))
    pair = tmp_path / "pair.png"
    cv2.imwrite(str(pair), np.concatenate([portrait, portrait], axis=1))  # two faces
    monkeypatch.setattr(app_dialogs, "choose_face", lambda parent, image, faces: 1)
    window.open_photo(str(pair))
    qtbot.waitUntil(lambda: window.source_info is not None and window.source_info.path == str(pair)
                    and window.source_info.face_index == 1, timeout=30_000)
    save_path.value = str(tmp_path / "second-face.mmfa.json")
    assert window.save_project_as()
    window.open_photo(str(pair), face_index=0)  # the same photo, the other face
    qtbot.waitUntil(lambda: window.source_info.face_index == 0, timeout=30_000)
    assert window.open_project(save_path.value)
    qtbot.waitUntil(lambda: window.source_info.face_index == 1, timeout=30_000)
    wait_idle(qtbot, window)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format": "something-else"}), "not an MMFA Studio project"),
        (json.dumps({"format": FORMAT, "keyframes": [{"time": 1.0, "motion": {"yaw": 500}}]}), "yaw"),
        (json.dumps({"format": FORMAT, "keyframes": [{"time": 0.0, "motion": {"expression": [1, 2]}}]}), "expression"),
        (json.dumps({"format": FORMAT, "settings": {"fps": "fast"}}), "settings.fps"),
        (json.dumps({"format": FORMAT, "keyframes": [{"time": -1, "motion": {}}]}),
         "keyframe time -1 s is out of range"),
    ],
)
def test_invalid_projects_are_refused_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.mmfa.json"
    path.write_text(content)
    with pytest.raises(ProjectError, match=message):
        load_project(path, Motion, latent_dim=4)
