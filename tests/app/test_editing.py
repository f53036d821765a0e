"""Live editing: sliders render new frames, storms coalesce, undo merges, expression buttons, view toggles."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from .conftest import wait_for_new_frame, wait_idle


def shown_motion(window):
    return window.last_frame.motion if window.last_frame is not None else None


def test_window_shows_device_model_and_first_frame(window):
    assert window.engine_info.latent_dim == 4
    assert "cpu" in window.device_label.text()
    assert "tiny" in window.model_label.text() or ".safetensors" in window.model_label.text()
    assert len(window.editor.latent_sliders) == 4
    assert window.view.has_frame()
    # The zero edit renders the source: the first frame is the identity motion.
    assert shown_motion(window).is_identity()


def test_slider_move_brings_a_new_frame(window, qtbot):
    before = window.last_frame
    seen = window.view.frames_shown
    window.editor.sliders["yaw"].slider.setValue(20.0)
    wait_for_new_frame(qtbot, window, seen)
    qtbot.waitUntil(lambda: shown_motion(window) == window.state.motion)
    assert window.state.motion.yaw == pytest.approx(20.0)
    assert shown_motion(window).yaw == pytest.approx(20.0)
    assert not np.array_equal(window.last_frame.crop, before.crop)  # the picture changed


def test_slider_storm_renders_only_the_last_state(window, qtbot):
    """500 slider events while the engine is busy: the newest motion is rendered once, nothing stale queues."""
    engine = window.worker.engine
    original = engine.render
    calls: list = []
    gate = threading.Event()

    def gated_render(source, motion, paste_back=False):
        calls.append(motion)
        if len(calls) == 1:
            gate.wait(20)  # hold the engine busy while the storm arrives
        return original(source, motion, paste_back=paste_back)

    engine.render = gated_render
    try:
        values = np.linspace(-40.0, 40.0, 500)
        slider = window.editor.sliders["yaw"].slider
        slider.setValue(float(values[0]))
        qtbot.waitUntil(lambda: len(calls) == 1)  # the worker is inside the first render
        for v in values[1:]:
            slider.setValue(float(v))
        assert window.worker.pending() == (0, True)  # one pending render, not 499
        gate.set()
        wait_idle(qtbot, window)
        qtbot.waitUntil(lambda: shown_motion(window) == window.state.motion)
    finally:
        gate.set()
        engine.render = original
    assert len(calls) == 2  # the one in flight, then the newest
    assert calls[-1].yaw == pytest.approx(values[-1], abs=0.05)
    assert shown_motion(window).yaw == pytest.approx(values[-1], abs=0.05)
    assert window.undo_stack.count() == 1  # the drag is one undo step


def test_storm_without_blocking_ends_on_the_last_state(window, qtbot):
    done_before = window.worker.steps_done
    slider = window.editor.sliders["pitch"].slider
    values = np.linspace(-20.0, 20.0, 500)
    for v in values:
        slider.setValue(float(v))
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: shown_motion(window) == window.state.motion)
    assert shown_motion(window).pitch == pytest.approx(values[-1], abs=0.05)
    assert window.worker.steps_done - done_before < 500


def test_undo_redo_merges_consecutive_moves(window, qtbot):
    yaw = window.editor.sliders["yaw"].slider
    for v in (5.0, 10.0, 15.0):
        yaw.setValue(v)
    window.editor.sliders["roll"].slider.setValue(8.0)
    assert window.undo_stack.count() == 2  # yaw drag, roll drag
    window.undo_stack.undo()
    assert window.state.motion.roll == 0.0 and window.state.motion.yaw == pytest.approx(15.0)
    window.undo_stack.undo()
    assert window.state.motion.yaw == 0.0
    assert window.editor.sliders["yaw"].value() == 0.0  # the slider follows the state
    window.undo_stack.redo()
    assert window.state.motion.yaw == pytest.approx(15.0)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: shown_motion(window) == window.state.motion)


def test_expression_controls(window, qtbot, sample_portrait, save_path):
    state = window.state
    assert state.motion.expression is None and state.source_expression is not None
    window.editor.neutral_button.click()
    assert state.motion.expression == (0.0, 0.0, 0.0, 0.0)
    window.editor.latent_sliders[2].slider.setValue(1.5)
    assert state.motion.expression[2] == pytest.approx(1.5)
    window.editor.random_button.click()
    qtbot.waitUntil(lambda: state.motion.expression is not None and state.motion.expression[2] != pytest.approx(1.5))
    save_path.value = str(sample_portrait)
    window.editor.from_photo_button.click()
    expected = tuple(state.source_expression)  # the same photo: its own expression
    qtbot.waitUntil(lambda: state.motion.expression is not None
                    and np.allclose(state.motion.expression, expected, atol=1e-4))
    window.editor.source_button.click()
    assert state.motion.expression is None
    window.editor.sliders["expression_strength"].slider.setValue(0.5)
    assert state.motion.expression_strength == pytest.approx(0.5)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: shown_motion(window) == state.motion)


def test_full_photo_compare_and_keypoints(window, qtbot):
    seen = window.view.frames_shown
    window.full_action.setChecked(True)
    wait_for_new_frame(qtbot, window, seen)
    qtbot.waitUntil(lambda: window.last_frame.full is not None)
    h, w = window.source_info.image.shape[:2]
    assert window.last_frame.full.shape == (h, w, 3)
    window.compare_action.setChecked(True)
    window.keypoints_action.setChecked(True)
    assert window.view.compare and window.view.show_keypoints
    image = window.view.grab().toImage()
    assert image.width() > 0
    # Both panes are drawn: the left and right halves are not background-only.
    left = image.pixelColor(image.width() // 4, image.height() // 2)
    right = image.pixelColor(3 * image.width() // 4, image.height() // 2)
    assert (left.red(), left.green(), left.blue()) != (32, 33, 36)
    assert (right.red(), right.green(), right.blue()) != (32, 33, 36)


def test_reset_pose_and_shortcut_actions(window):
    window.editor.sliders["yaw"].slider.setValue(12.0)
    window.editor.sliders["tx"].slider.setValue(0.1)
    window.reset_pose()
    assert window.state.motion.yaw == 0.0 and window.state.motion.tx == 0.0
    shortcuts = {a.shortcut().toString() for a in window.actions() if not a.shortcut().isEmpty()}
    for key in ("Ctrl+O", "Ctrl+S", "Ctrl+E", "Ctrl+Z", "K", "Space", "F5"):
        assert key in shortcuts


def test_pose_sliders_tell_how_far_a_calibrated_model_turns(window, qtbot, tmp_path, tiny_checkpoint):
    from mmfa_studio.checkpoint import save_with_metadata
    from mmfa_studio.engine.calibration import METADATA_KEY

    yaw = window.editor.sliders["yaw"].slider
    assert "at most" not in yaw.toolTip()  # the tiny model has no calibration: no known limit
    calibrated = tmp_path / "calibrated.safetensors"
    save_with_metadata(tiny_checkpoint, calibrated, {METADATA_KEY: {"yaw": [[-16.0, -20.0], [0, 0], [14.1, 20.0]]}})
    window.load_model(str(calibrated))
    qtbot.waitUntil(lambda: window.engine_info.pose_reach != {} and window.source_info is not None, timeout=60_000)
    wait_idle(qtbot, window)
    assert window.engine_info.pose_reach == {"yaw": (-16.0, 14.1)}
    assert "turns the face -16° to +14° at most" in yaw.toolTip()
    assert "at most" not in window.editor.sliders["pitch"].slider.toolTip()


def test_expression_panel_warns_when_the_latent_barely_moves_the_face(window):
    note = window.editor.expression_note
    reach = window.engine_info.expression_reach
    assert reach is not None and reach < 2.0  # the tiny model's decoder starts near zero
    assert not note.isHidden() and f"at most {reach:.1f} px" in note.text()
    window.editor.set_expression_reach(5.0)
    assert note.isHidden()
    window.editor.set_expression_reach(None)
    assert note.isHidden()


def test_named_controls_edit_the_source_expression(window, qtbot, tmp_path, tiny_config):
    import torch

    from mmfa_studio.checkpoint import save_model
    from mmfa_studio.model import MMFA
    from mmfa_studio.motion import CONTROLS_KEY, ExpressionControls

    assert window.editor.controls_box.isHidden()  # the tiny model has none
    torch.manual_seed(0)
    path = tmp_path / "controls.safetensors"
    controls = ExpressionControls({"mouth_open": [1.0, 0.0, 0.0, 0.0], "brows": [0.0, 0.5, 0.0, 0.0]},
                                  {"brows": (-1.0, 1.0)})
    config = replace(tiny_config, anchor_latent_dim=4, anchor_hidden=16)
    save_model(path, MMFA(config), {CONTROLS_KEY: controls.to_json()})
    window.load_model(str(path))
    editor, state = window.editor, window.state
    # (under load the old source's info can arrive first: wait for the new model's sliders themselves)
    qtbot.waitUntil(lambda: set(editor.control_sliders) == {"mouth_open", "brows"} and window.source_info is not None
                    and not editor.controls_box.isHidden(), timeout=60_000)
    wait_idle(qtbot, window)
    assert not editor.controls_box.isHidden() and set(editor.control_sliders) == {"mouth_open", "brows"}
    assert editor._latent_scroll.isHidden()  # the raw latents fold away behind the named controls
    # ... and the rows above them stay together: the panel's spare height goes below, not between them
    window.resize(1280, 1400)
    strength = editor.sliders["expression_strength"]
    qtbot.waitUntil(lambda: editor.height() > 600 and editor.controls_box.geometry().top() > strength.geometry().top(),
                    timeout=5_000)
    for row in (strength, editor.controls_box):  # not stretched with empty space inside
        assert row.height() <= row.sizeHint().height() + 4
    own = np.asarray(state.source_expression)
    editor.control_sliders["mouth_open"].slider.setValue(0.5)
    editor.control_sliders["brows"].slider.setValue(-1.0)
    # the controls fitted to this face (the openings scaled for it: engine.anchors.fitted_controls), brows as given
    fitted = window.source_info.controls
    assert fitted is not None and fitted.directions["brows"] == controls.directions["brows"]
    assert np.allclose(state.motion.expression, fitted.apply(own, {"mouth_open": 0.5, "brows": -1.0}), atol=1e-6)
    assert np.allclose(state.motion.expression[1], own[1] - 0.5, atol=1e-6)
    editor.source_button.click()
    assert state.motion.expression is None and editor.control_sliders["mouth_open"].value() == 0.0
    wait_idle(qtbot, window)
