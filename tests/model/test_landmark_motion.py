"""Keypoint shifts from landmark movement (model/landmark_motion.py): the weights and the δ that carries a shift."""

import torch

from mmfa_studio.model.keypoints import compose_keypoints, rotation_matrix
from mmfa_studio.model.landmark_motion import FAR, landmark_weights, shift_to_deformation


def test_a_shift_moves_the_posed_keypoints_by_exactly_that_in_the_image_plane():
    torch.manual_seed(0)
    b, k = 3, 15
    canonical, delta = torch.randn(b, k, 3) * 0.3, torch.randn(b, k, 3) * 0.02
    rotation = rotation_matrix(torch.tensor([20.0, -35.0, 5.0]), torch.tensor([-10.0, 15.0, 0.0]),
                               torch.tensor([8.0, 0.0, -20.0]))
    translation, scale = torch.randn(b, 3) * 0.1, torch.tensor([0.8, 1.1, 0.6])
    shift = torch.randn(b, k, 2) * 0.05
    before = compose_keypoints(canonical, delta, rotation, translation, scale)
    after = compose_keypoints(canonical, delta + shift_to_deformation(shift, rotation, scale), rotation,
                              translation, scale)
    assert torch.allclose(after[..., :2] - before[..., :2], shift, atol=1e-6)
    assert torch.allclose(after[..., 2], before[..., 2], atol=1e-6)


def test_weights_average_the_nearby_landmarks_and_leave_far_keypoints_still():
    landmarks = torch.tensor([[[0.0, 0.0], [0.02, 0.0], [0.9, 0.9]]])
    keypoints = torch.tensor([[[0.01, 0.0], [-0.9, -0.9]]])
    weights = landmark_weights(keypoints, landmarks, crop_width=2.0, kernel=0.05)
    assert weights.shape == (1, 2, 3)
    near = weights[0, 0]
    assert torch.allclose(near[0], near[1], atol=1e-6) and near[2] < 1e-6  # equidistant pair, far one ignored
    assert torch.isclose(near.sum(), 2 * near[0]) and near.sum() < 1  # FAR keeps the rest for "no movement"
    assert torch.isclose(near.sum(), torch.tensor(2.0) / (2.0 + FAR), atol=1e-3)
    assert weights[0, 1].sum() < 1e-6  # no landmark near it: it does not move
