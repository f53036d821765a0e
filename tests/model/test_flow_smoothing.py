"""Flow smoothing: the displacement is blurred, so a render's warp cannot fold; shifts and the identity stay."""

from dataclasses import replace

import pytest
import torch

from mmfa_studio.model import MMFA
from mmfa_studio.model.blocks import make_coordinate_grid
from mmfa_studio.model.flow_smoothing import blur, gaussian_kernel, smooth_flow


def determinant(flow: torch.Tensor) -> torch.Tensor:
    """The backward warp's Jacobian determinant (central differences), B×(S−2)×(S−2); < 0 is a fold."""
    step = 2 / flow.shape[1]
    dx = (flow[:, 1:-1, 2:] - flow[:, 1:-1, :-2]) / (2 * step)
    dy = (flow[:, 2:, 1:-1] - flow[:, :-2, 1:-1]) / (2 * step)
    return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]


def test_the_blur_keeps_constants_and_ramps_and_spreads_a_spike():
    kernel = gaussian_kernel(2.0, torch.zeros(1))
    assert kernel.numel() == 13 and torch.isclose(kernel.sum(), torch.tensor(1.0))
    constant = torch.full((1, 2, 16, 16), 0.7)
    assert torch.allclose(blur(constant, 2.0), constant)
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    assert torch.allclose(blur(ramp, 2.0)[..., 8:24], ramp[..., 8:24], atol=1e-6)  # away from the edges
    spike = torch.zeros(1, 1, 15, 15)
    spike[..., 7, 7] = 1
    spread = blur(spike, 1.5)
    assert spread[..., 7, 7] < 0.2 and torch.isclose(spread.sum(), torch.tensor(1.0))


def test_smoothing_keeps_the_identity_and_a_shift_and_unfolds_a_fold():
    grid = make_coordinate_grid((64, 64), torch.zeros(1))
    identity = grid.unsqueeze(0)
    assert torch.allclose(smooth_flow(identity, grid, 0.05), identity, atol=1e-6)
    shifted = identity + torch.tensor([0.2, -0.1])
    assert torch.allclose(smooth_flow(shifted, grid, 0.05), shifted, atol=1e-6)
    # The left half samples 0.15 further right than the right half: a fold along the middle column, as where a
    # moving proposal's mask meets the still background's. (A step d unfolds when d < √(2π)·σ ≈ 0.235 here.)
    folded = identity.clone()
    folded[:, :, :32, 0] += 0.15
    assert determinant(folded).min() < 0
    assert determinant(smooth_flow(folded, grid, 3 / 64)).min() > 0


def test_a_render_with_flow_smoothing_has_a_smoother_flow(tiny_config):
    torch.manual_seed(0)
    smooth = MMFA(replace(tiny_config, flow_smoothing=0.05)).eval()
    plain = MMFA(tiny_config).eval()
    plain.load_state_dict(smooth.state_dict())  # no weights of its own
    image = torch.rand(1, 3, tiny_config.image_size, tiny_config.image_size)
    with torch.no_grad():
        source = smooth.encode_source(image)
        turned = source.own_motion.with_changes(yaw=source.motion.yaw + 30)
        flows = [m.render(source, turned).motion.flow for m in (plain, smooth)]
    grid = make_coordinate_grid(flows[0].shape[1:3], flows[0])
    shifts = [f - grid for f in flows]
    roughness = [(d[:, 1:] - d[:, :-1]).abs().sum() + (d[:, :, 1:] - d[:, :, :-1]).abs().sum() for d in shifts]
    assert roughness[1] < 0.9 * roughness[0]


def test_flow_smoothing_is_for_the_hybrid_variant_only(tiny_config):
    with pytest.raises(ValueError, match="flow_smoothing"):
        replace(tiny_config, flow_smoothing=-0.1)
    with pytest.raises(ValueError, match="hybrid variant only"):
        replace(tiny_config, variant="volumetric", flow_smoothing=0.05)


def test_smoothing_under_bf16_autocast_stays_fp32_exact():
    """The engine renders under bf16 autocast: the flow's coordinates must not round to bf16 (~1 px), and the
    permuted (channels-last) displacement once sent a grouped bf16 convolution into a minutes-long path."""
    grid = make_coordinate_grid((64, 64), torch.zeros(1))
    flow = grid.unsqueeze(0) + 0.05 * torch.randn(1, 64, 64, 2, generator=torch.Generator().manual_seed(0))
    expected = smooth_flow(flow, grid, 3 / 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        smoothed = smooth_flow(flow, grid, 3 / 64)
    assert smoothed.dtype == torch.float32 and torch.equal(smoothed, expected)
