import math

import pytest
import torch

from mmfa_studio.model.keypoints import (
    bins_to_degrees,
    compose_keypoints,
    degrees_to_bin,
    euler_from_matrix,
    rotation_matrix,
)


def angles(yaw, pitch, roll):
    return torch.tensor([float(yaw)]), torch.tensor([float(pitch)]), torch.tensor([float(roll)])


def test_zero_pose_gives_canonical_plus_deformation():
    torch.manual_seed(0)
    xc, delta = torch.randn(2, 5, 3), torch.randn(2, 5, 3) * 0.1
    r = rotation_matrix(torch.zeros(2), torch.zeros(2), torch.zeros(2))
    x = compose_keypoints(xc, delta, r, torch.zeros(2, 3), torch.ones(2))
    assert torch.allclose(x, xc + delta)


NOSE = torch.tensor([[[0.0, 0.0, -1.0]]])  # in front of the face, towards the camera
TOP = torch.tensor([[[0.0, -1.0, 0.0]]])  # top of the head (y points down)


@pytest.mark.parametrize(
    "pose, point, expected",
    [
        ((90, 0, 0), NOSE, (1.0, 0.0, 0.0)),  # +yaw: nose to the image right
        ((-90, 0, 0), NOSE, (-1.0, 0.0, 0.0)),
        ((0, 90, 0), NOSE, (0.0, -1.0, 0.0)),  # +pitch: nose up
        ((0, 0, 90), TOP, (1.0, 0.0, 0.0)),  # +roll: top of head to the right (clockwise on screen)
    ],
)
def test_known_rotations_move_known_points(pose, point, expected):
    r = rotation_matrix(*angles(*pose))
    x = compose_keypoints(point, torch.zeros_like(point), r, torch.zeros(1, 3), torch.ones(1))
    assert torch.allclose(x[0, 0], torch.tensor(expected), atol=1e-6)


def test_small_yaw_moves_nose_right_by_sine():
    r = rotation_matrix(*angles(30, 0, 0))
    x = compose_keypoints(NOSE, torch.zeros_like(NOSE), r, torch.zeros(1, 3), torch.ones(1))
    assert x[0, 0, 0].item() == pytest.approx(math.sin(math.radians(30)), abs=1e-6)


def test_scale_and_translation():
    xc = torch.tensor([[[0.1, 0.2, 0.3]]])
    r = rotation_matrix(*angles(0, 0, 0))
    x = compose_keypoints(xc, torch.zeros_like(xc), r, torch.tensor([[0.5, -0.5, 0.0]]), torch.tensor([2.0]))
    assert torch.allclose(x[0, 0], torch.tensor([0.7, -0.1, 0.6]))


def test_rotation_is_orthonormal_and_euler_round_trip():
    g = torch.Generator().manual_seed(1)
    yaw = torch.rand(64, generator=g) * 170 - 85
    pitch = torch.rand(64, generator=g) * 170 - 85
    roll = torch.rand(64, generator=g) * 340 - 170
    r = rotation_matrix(yaw, pitch, roll)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(64), atol=1e-5)
    y2, p2, r2 = euler_from_matrix(r)
    assert torch.allclose(y2, yaw, atol=1e-3)
    assert torch.allclose(p2, pitch, atol=1e-3)
    assert torch.allclose(r2, roll, atol=1e-3)


def test_inverse_composition_recovers_canonical():
    torch.manual_seed(2)
    xc, delta = torch.randn(3, 7, 3), torch.randn(3, 7, 3) * 0.05
    r = rotation_matrix(torch.tensor([10.0, -20, 35]), torch.tensor([5.0, 0, -15]), torch.tensor([0.0, 12, -8]))
    t, s = torch.randn(3, 3) * 0.1, torch.tensor([0.9, 1.0, 1.2])
    x = compose_keypoints(xc, delta, r, t, s)
    back = ((x - t[:, None]) / s[:, None, None]) @ r  # R⁻¹ = Rᵀ, row vectors
    assert torch.allclose(back, xc + delta, atol=1e-5)


def test_bins_expectation_and_bin_index():
    logits = torch.full((1, 66), -1e4)
    logits[0, degrees_to_bin(torch.tensor([31.0]), 66, 99.0)] = 0.0  # one-hot on the bin of 31°
    angle = bins_to_degrees(logits, 66, 99.0)
    assert abs(angle.item() - 31.0) <= 1.5  # bin centre, bins are 3° wide
    assert bins_to_degrees(torch.zeros(1, 66), 66, 99.0).abs().item() < 1e-4  # uniform → 0°
