"""The face mesh's dense anchors: which points, their canonical layout, where they lie in a crop, their measures."""

import numpy as np
import pytest
import torch

from mmfa_studio.face.anchors import (
    MESH_POINTS,
    anchor_indices,
    anchor_measures,
    canonical_anchors,
    closing_pairs,
    face_anchors,
    mean_face_anchors,
    steady_anchor_rows,
    with_eye_openings,
    without_head_motion,
)
from mmfa_studio.face.pose import canonical_face, rotation_from_euler
from mmfa_studio.face.types import Face


def posed_mesh(yaw=20.0, pitch=-10.0, roll=5.0, scale=60.0, shift=(128.0, 120.0, 7.0)):
    return scale * canonical_face().points @ rotation_from_euler(yaw, pitch, roll).T + np.array(shift)


def test_anchors_are_mesh_points_without_the_irises():
    index = anchor_indices()
    assert len(index) > 100 and np.all(np.diff(index) > 0) and index.max() < MESH_POINTS


def test_canonical_layout_forgets_pose_size_and_place():
    assert np.allclose(canonical_anchors(posed_mesh()), mean_face_anchors(), atol=1e-9)
    assert np.allclose(canonical_anchors(posed_mesh(-30, 15, -8, 90, (10, 20, 0))), mean_face_anchors(), atol=1e-9)


def test_face_anchors_in_model_units_and_back():
    mesh = posed_mesh()
    face = Face(box=np.array([0.0, 0.0, 1.0, 1.0]), landmarks=mesh[:, :2], score=1.0, landmarks_3d=mesh)
    found = face_anchors(face, 256)
    points = mesh[anchor_indices()]
    assert np.allclose(found.points[:, :2], (points[:, :2] + 0.5) / 128 - 1)
    assert abs(found.points[:, 2].mean()) < 1e-12
    # a canonical offset maps to the posed offset: move the canonical face's lower lip down by 0.1
    offset = np.zeros_like(found.layout)
    offset[:, 1] = 0.1
    moved = 60.0 * (canonical_face().points[anchor_indices()] + offset) @ rotation_from_euler(20, -10, 5).T
    expected = (moved - 60.0 * canonical_face().points[anchor_indices()] @ rotation_from_euler(20, -10, 5).T) / 128
    assert np.allclose(offset @ found.to_points, expected, atol=1e-9)
    assert face_anchors(Face(box=face.box, landmarks=mesh[:, :2], score=1.0), 256) is None


def test_measures_agree_in_numpy_and_torch_and_see_an_open_mouth():
    layout = mean_face_anchors()
    numpy_values = anchor_measures(layout)
    torch_values = anchor_measures(torch.as_tensor(layout))
    for name, value in numpy_values.items():
        assert abs(float(value) - float(torch_values[name])) < 1e-9
    assert 0.2 < numpy_values["eye_open_left"] < 0.45 and numpy_values["mouth_open"] < 0.2
    lower_lip = np.searchsorted(anchor_indices(), 14)
    opened = layout.copy()
    opened[lower_lip, 1] += 0.3
    assert anchor_measures(opened)["mouth_open"] > numpy_values["mouth_open"] + 0.4


def test_without_head_motion_keeps_the_expression_and_drops_a_turn_of_the_whole_face():
    layout = mean_face_anchors()
    assert np.allclose(without_head_motion(layout, np.zeros((2,) + layout.shape)), 0.0)
    # a small turn, zoom and shift of the whole face is head motion: nothing is left of it
    turned = 1.03 * layout @ rotation_from_euler(3.0, -2.0, 1.5).T + np.array([0.02, -0.01, 0.03])
    assert np.abs(without_head_motion(layout, turned - layout)).max() < 1e-9
    # the lower lip dropping moves no steady anchor, so it stays as it was, alone or on top of a turn
    lip = np.zeros_like(layout)
    lip[np.searchsorted(anchor_indices(), 14), 1] = 0.2
    assert not np.isin(np.searchsorted(anchor_indices(), 14), steady_anchor_rows())
    turned_lip = 1.03 * lip @ rotation_from_euler(3.0, -2.0, 1.5).T
    kept = without_head_motion(layout, np.stack([lip, turned - layout + turned_lip]))
    assert np.allclose(kept[0], lip, atol=1e-9)
    assert np.allclose(kept[1], lip, atol=1e-6)


def test_eye_openings_move_only_the_lids_to_the_asked_ratio():
    """A blink mostly lowers the upper lid; each eye reaches the asked gap over width, NaN leaves an eye as it
    is, the corners and everything else stay, and a shut eye cannot be scaled open."""
    face = mean_face_anchors()
    before = anchor_measures(face)
    out = with_eye_openings(face, (0.05, np.nan))
    after = anchor_measures(out)
    assert float(after["eye_open_left"]) == pytest.approx(0.05, abs=1e-6)
    assert float(after["eye_open_right"]) == pytest.approx(float(before["eye_open_right"]), abs=1e-9)
    left = closing_pairs()[1]
    moved = np.flatnonzero(np.abs(out - face).max(axis=1) > 1e-9)
    assert set(moved) <= set(left.upper) | set(left.lower)
    upper = np.abs(out[left.upper] - face[left.upper]).sum()
    lower = np.abs(out[left.lower] - face[left.lower]).sum()
    assert upper > 3 * lower > 0
    wider = anchor_measures(with_eye_openings(face, (1.0, 0.4)))
    assert float(wider["eye_open_left"]) == pytest.approx(2.0 * float(before["eye_open_left"]), rel=1e-6)  # at most 2×
    assert float(wider["eye_open_right"]) == pytest.approx(0.4, abs=1e-6)
    shut = with_eye_openings(face, (0.0, np.nan))
    assert np.allclose(with_eye_openings(shut, (0.3, np.nan)), shut)
