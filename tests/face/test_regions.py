"""The mouth and eye masks from the mesh, and the region L1 that training and evaluate use."""

import numpy as np
import torch

from mmfa_studio.face.anchors import pixels_to_units
from mmfa_studio.face.pose import canonical_face
from mmfa_studio.face.regions import polygon_mask, region_l1, region_masks


def test_a_polygon_covers_the_pixels_inside_it_whatever_its_winding():
    square = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]])
    assert polygon_mask(square, 64).sum() == 32 * 32
    assert torch.equal(polygon_mask(square.flip(1), 64), polygon_mask(square, 64))
    # a concave L: three quarters of its bounding square
    l_shape = torch.tensor([[[-0.5, -0.5], [0.0, -0.5], [0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [-0.5, 0.5]]])
    assert polygon_mask(l_shape, 64).sum() == 3 * 16 * 16


def _mean_face_landmarks(size: int) -> torch.Tensor:
    """The canonical mesh placed in a crop, in normalised units, 1×468×2."""
    points = canonical_face().points[:, :2]
    points = (points - points.mean(0)) / np.ptp(points[:, 0]) * size * 0.5 + size / 2
    return torch.as_tensor(pixels_to_units(points, size), dtype=torch.float32)[None]


def test_the_mouth_lies_below_the_eyes_and_each_region_is_a_small_part_of_the_crop():
    masks = region_masks(_mean_face_landmarks(128), 128)[0]
    rows = torch.arange(128, dtype=torch.float32)[:, None]
    centre = lambda m: float((m * rows).sum() / m.sum())
    mouth, eyes = masks
    assert centre(mouth) > centre(eyes) + 15
    for mask in masks:
        assert 0.005 < float(mask.mean()) < 0.1 and float(mask.max()) == 1.0


def test_region_l1_sees_only_the_regions_and_skips_untracked_rows():
    masks = region_masks(_mean_face_landmarks(64).expand(2, -1, -1), 64)
    target = torch.zeros(2, 3, 64, 64)
    outside = target + (masks.sum(1, keepdim=True) == 0).float()  # wrong everywhere but the regions
    assert region_l1(outside, target, masks) < 0.05
    inside = target + (masks.amax(1, keepdim=True) > 0).float()
    assert region_l1(inside, target, masks) > 0.5
    assert region_l1(inside, target, masks, torch.tensor([False, False])) == 0
