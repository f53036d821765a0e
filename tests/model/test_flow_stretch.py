"""The flow-stretch map: zero for rigid motion, the log of the area change under a zoom, a floor for a fold; the
generator sees it as one more input channel (model.generator_stretch)."""

import dataclasses
import math

import pytest
import torch

from mmfa_studio.model import MMFA, ModelConfig
from mmfa_studio.model.blocks import make_coordinate_grid
from mmfa_studio.model.flow_stretch import STRETCH_LIMIT, log_area_change


def grid(size: int = 32) -> torch.Tensor:
    return make_coordinate_grid((size, size), torch.zeros(1)).unsqueeze(0)  # 1×S×S×2


def test_rigid_motion_stretches_nothing_and_a_zoom_changes_the_area_by_its_square():
    identity = grid()
    assert log_area_change(identity).abs().max() < 1e-5
    assert log_area_change(identity + torch.tensor([0.3, -0.2])).abs().max() < 1e-5  # a shift
    angle = math.radians(25)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    assert log_area_change(identity @ rotation.T).abs().max() < 1e-4
    # Sampling a region half as wide (a 2× magnification of the source): a quarter of the area per output pixel.
    assert torch.allclose(log_area_change(identity * 0.5), torch.full((1, 1, 32, 32), math.log(0.25)), atol=1e-4)


def test_an_opening_gap_reads_as_stretch_and_a_fold_as_the_floor():
    flow = grid(64).clone()
    # The rows of a band sample one source row: the source stretched over the band, as lips over an open mouth.
    band = slice(28, 36)
    flow[:, band, :, 1] = flow[:, 32:33, :, 1]
    stretch = log_area_change(flow)[0, 0]
    assert stretch[30:34, 10:54].max() < -2.0 and stretch[:20].abs().max() < 1e-5
    folded = grid(64).clone()
    folded[..., 0] = -folded[..., 0]  # a mirror: determinant −1
    assert torch.allclose(log_area_change(folded), torch.full((1, 1, 64, 64), -STRETCH_LIMIT))


def test_the_generator_takes_the_stretch_as_one_more_channel():
    cfg = dataclasses.replace(ModelConfig(image_size=64, feature_size=16, generator_channels=(32, 16, 8),
                                          tps_motion=True), generator_stretch=True)
    model = MMFA(cfg).eval()
    assert model.generator.inp.conv.in_channels == cfg.appearance_channels + 1
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        source = model.encode_source(image)
        features, flow = model.warp_features(source, model.estimate_motion(source, source.own_motion)[2])
        assert features.shape == (1, cfg.appearance_channels + 1, 16, 16)
        assert torch.equal(features[:, -1:], log_area_change(flow))
        assert model.render(source, source.own_motion).image.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="generator_stretch"):
        ModelConfig(variant="volumetric", generator_stretch=True)
    with pytest.raises(ValueError, match="generator_stretch"):
        ModelConfig(generator_stretch=1)

