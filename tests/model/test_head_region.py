"""The head region: only the head moves; the body and background stay exactly the source's."""

from dataclasses import replace

import pytest
import torch

from mmfa_studio.model import MMFA
from mmfa_studio.model.blocks import make_coordinate_grid
from mmfa_studio.model.head_region import HAIR_STRETCH, SOFTNESS, composite, confine_flow, ellipse_weight, head_region


def square(centre=(0.0, 0.0), half=0.1) -> torch.Tensor:
    """Four keypoints on a square (spread = ``half`` along x and y), 1×4×2."""
    cx, cy = centre
    return torch.tensor([[[cx - half, cy - half], [cx + half, cy - half], [cx - half, cy + half],
                          [cx + half, cy + half]]])


def test_ellipse_weight_is_one_inside_zero_outside_and_reaches_further_up_and_sideways():
    grid = make_coordinate_grid((64, 64), torch.zeros(1))
    w = ellipse_weight(square(), grid, spread=2.0)[0]
    assert w.shape == (64, 64) and w.min() >= 0 and w.max() <= 1
    at = lambda x, y: float(w[int((y + 1) * 32), int((x + 1) * 32)])  # the pixel nearest (x, y)
    assert at(0, 0) == 1.0 and at(0.9, 0.9) == 0.0
    below = (2.0 + SOFTNESS) * 0.1  # where the weight reaches 0 straight below the centre
    assert at(0, below - 0.05) > 0 and at(0, below + 0.05) == 0.0
    assert at(0, -below - 0.05) > 0.5 and at(0, -(below * HAIR_STRETCH) - 0.05) == 0.0  # the hair: further up
    assert at(below + 0.05, 0) > 0  # and further sideways


def test_the_region_is_the_union_and_outside_it_the_flow_is_the_identity():
    grid = make_coordinate_grid((32, 32), torch.zeros(1))
    left, right = square((-0.5, 0.0)), square((0.5, 0.0))
    region = head_region(left, right, grid, spread=1.0)
    assert torch.allclose(region, torch.maximum(ellipse_weight(left, grid, 1.0), ellipse_weight(right, grid, 1.0)))
    flow = grid.unsqueeze(0) + 0.3  # everything moved
    confined = confine_flow(flow, region, grid)
    outside, inside = region[0] == 0, region[0] == 1
    assert outside.any() and inside.any()
    assert torch.equal(confined[0][outside], grid[outside]) and torch.equal(confined[0][inside], flow[0][inside])
    image, source = torch.ones(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    mixed = composite(image, region, source)
    assert mixed[0, :, 0, 0].eq(0).all() and mixed[0, :, 32, 16].eq(1).all()  # a corner; the left square's centre


def test_a_render_with_the_head_region_keeps_the_corners_and_still_turns_the_head(tiny_config):
    torch.manual_seed(0)
    model = MMFA(replace(tiny_config, head_region_spread=1.0)).eval()
    image = torch.rand(1, 3, tiny_config.image_size, tiny_config.image_size)
    with torch.no_grad():
        source = model.encode_source(image)
        turned = source.own_motion.with_changes(yaw=source.motion.yaw + 30, roll=source.motion.roll + 20)
        render = model.render(source, turned)
        free = MMFA(tiny_config).eval()
        free.load_state_dict(model.state_dict())
        unconfined = free.render(source, turned)
    assert render.image.shape == image.shape
    assert torch.allclose(render.image[..., 0, 0], image[..., 0, 0], atol=1e-6)  # a corner is the source's
    assert not torch.allclose(unconfined.image[..., 0, 0], image[..., 0, 0], atol=1e-3)
    assert torch.equal(render.output.pyramid[-1], render.image)
    centre = tiny_config.image_size // 2
    assert not torch.allclose(render.image[..., centre, centre], image[..., centre, centre], atol=1e-3)


def test_the_head_region_is_for_the_hybrid_variant_only(tiny_config):
    with pytest.raises(ValueError, match="head_region_spread"):
        replace(tiny_config, head_region_spread=-1.0)
    with pytest.raises(ValueError, match="hybrid variant only"):
        replace(tiny_config, variant="volumetric", head_region_spread=2.0)
