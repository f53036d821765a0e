"""The closing warp: around an opening (an eye, the mouth) the flow is a triangle mesh through the anchors."""

from dataclasses import replace

import torch

from mmfa_studio.model import MMFA
from mmfa_studio.model.blocks import make_coordinate_grid
from mmfa_studio.model.closing_warp import ClosingRegion, closing_flow, mesh_triangles, outer_ring
from mmfa_studio.model.dense_motion import AnchorPoints

K = 7  # anchors on each lid
SIZE = 128
REGION = ClosingRegion.of(range(1, K + 1), range(K + 1, 2 * K + 1), [0, 2 * K + 1])


def eye(gap: float, centre=(0.1, -0.05), width=0.4, tilt=0.0) -> torch.Tensor:
    """1×(2K+2)×2 anchors: corner 0, the upper lid, the lower lid, corner 1; lids ``gap`` widths apart."""
    t = torch.linspace(-1, 1, K + 2)[1:-1]
    half = gap / 2 * width * (1 - t.pow(2)).sqrt()
    x = t * width / 2
    upper, lower = torch.stack([x, -half], -1), torch.stack([x, half], -1)
    corners = torch.tensor([[-width / 2, 0.0], [width / 2, 0.0]])
    points = torch.cat([corners[:1], upper, lower, corners[1:]])
    turn = torch.tensor([[torch.cos(torch.tensor(tilt)), -torch.sin(torch.tensor(tilt))],
                         [torch.sin(torch.tensor(tilt)), torch.cos(torch.tensor(tilt))]])
    return (points @ turn.T + torch.tensor(centre))[None]


def identity_flow(batch: int = 1) -> torch.Tensor:
    return make_coordinate_grid((SIZE, SIZE), torch.zeros(1)).expand(batch, -1, -1, -1).clone()


def inside_opening(points: torch.Tensor, anchors: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Which of points (…×2) lie between the lids of ``eye`` anchors, away from the lids by ``margin`` of the gap."""
    ring = anchors[0, REGION.ring]
    centre, width = ring[[0, K + 1]].mean(0), (ring[K + 1] - ring[0]).norm()
    rel = points - centre
    half_gap = (anchors[0, 1 + K // 2, 1] - anchors[0, K + 1 + K // 2, 1]).abs() / 2
    t = (2 * rel[..., 0] / width).clamp(-1, 1)
    return (rel[..., 0].abs() < width / 2 * 0.8) & (rel[..., 1].abs() < (1 - margin) * half_gap * (1 - t.pow(2)).sqrt())


def test_mesh_tiles_the_outer_ring_without_overlap():
    source = eye(0.35)
    vertices = torch.cat([source[0, REGION.ring], outer_ring(source[:, REGION.ring], source[:, REGION.ring], K)[0]])
    triangles = mesh_triangles(K)
    a, b, c = (vertices[triangles[:, j]] for j in range(3))
    areas = ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).abs() / 2
    outer = vertices[2 * K + 2:]
    x, y = outer[:, 0], outer[:, 1]
    polygon = (x * y.roll(-1) - x.roll(-1) * y).sum().abs() / 2  # shoelace
    assert len(triangles) == 2 * K + 2 * (2 * K + 2)
    assert torch.isclose(areas.sum(), polygon, rtol=1e-4)


def test_an_unmoved_opening_keeps_the_flow():
    anchors = eye(0.35, tilt=0.2)
    flow = identity_flow()
    assert torch.allclose(closing_flow(flow, anchors, anchors, (REGION,)), flow, atol=1e-5)


def test_closed_lids_hide_the_eye():
    source, closed = eye(0.35), eye(0.03)
    grid = make_coordinate_grid((SIZE, SIZE), torch.zeros(1))
    meshed = closing_flow(identity_flow(), source, closed, (REGION,))
    shown = int(inside_opening(meshed[0], source).sum())  # output pixels that sample the open eye
    eye_pixels = int(inside_opening(grid, source).sum())
    row = 0.4 / 2 * SIZE  # the eye's width in pixels
    assert eye_pixels > 5 * row
    assert shown <= row  # at most about a pixel row across the eye's width
    # just above the closed lids the render samples the upper lid's skin, above the open eye
    px = lambda v: int((v + 1) * SIZE / 2)  # the pixel at a normalised coordinate
    above = meshed[0, px(-0.05) - 5: px(-0.05) - 1, px(0.1)]  # the eye's centre column, rows just above the lids
    assert (above[:, 1] < source[0, 1 + K // 2, 1]).all()


def test_the_mesh_does_not_fold():
    source, closed = eye(0.35, tilt=-0.3), eye(0.03, centre=(0.12, -0.03), tilt=-0.25)
    flow = closing_flow(identity_flow(), source, closed, (REGION,))[0]
    dx, dy = flow[1:-1, 2:] - flow[1:-1, :-2], flow[2:, 1:-1] - flow[:-2, 1:-1]
    det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
    assert (det > -1e-9).all()


def test_batches_map_each_pair_on_its_own():
    sources = torch.cat([eye(0.35), eye(0.3, centre=(-0.2, 0.1))])
    drivings = torch.cat([eye(0.03), eye(0.3, centre=(-0.2, 0.1))])  # the second does not move
    flow = closing_flow(identity_flow(2), sources, drivings, (REGION,))
    assert not torch.allclose(flow[0], identity_flow()[0], atol=1e-3)
    assert torch.allclose(flow[1], identity_flow()[0], atol=1e-5)


def test_model_renders_with_the_closing_warp(tiny_config):
    cfg = replace(tiny_config, tps_motion=True, closing_warp=True)
    model = MMFA(cfg).eval()
    image = torch.rand(1, 3, cfg.image_size, cfg.image_size)
    points = eye(0.35)
    with torch.no_grad():
        source = model.encode_source(image)
        still = model.render(source, source.own_motion, anchors=AnchorPoints(points, points, (REGION,)))
        closed = model.render(source, source.own_motion, anchors=AnchorPoints(points, eye(0.03), (REGION,)))
        plain = MMFA.render(model, source, source.own_motion, anchors=AnchorPoints(points, points))
    assert still.output.image_flow.shape == (1, cfg.image_size, cfg.image_size, 2)
    assert plain.output.image_flow.shape[1] == cfg.feature_size  # no regions given: the flow as it was
    assert torch.allclose(still.image, plain.image, atol=1e-3)
    assert not torch.allclose(closed.image, plain.image, atol=1e-3)


def test_similarity_misfit_tells_a_reshaped_opening_from_a_moved_one():
    from mmfa_studio.model.closing_warp import similarity_misfit

    ring = eye(0.35)[:, REGION.ring]
    turn = torch.tensor([[0.96, -0.28], [0.28, 0.96]])
    moved = 1.2 * ring @ turn.T + torch.tensor([0.05, -0.1])
    assert similarity_misfit(ring, moved).item() < 1e-5
    assert similarity_misfit(ring, eye(0.05)[:, REGION.ring]).item() > 0.01


def test_training_backpropagates_through_the_closing_warp():
    flow = identity_flow().requires_grad_()
    closing_flow(flow, eye(0.35), eye(0.03), (REGION,)).sum().backward()
    assert torch.isfinite(flow.grad).all() and flow.grad.abs().sum() > 0


def test_crossed_or_collapsed_lids_give_a_finite_map_and_gradient():
    """A tracked driving frame (training) can cross a lid past its partner or collapse an opening to a line: the
    map stays finite (grid_sample crashed on NaN coordinates) and so does the gradient (it had NaN'd the dense
    motion's weights)."""
    source = eye(0.35)
    crossed = eye(-0.2)  # the upper lid below the lower one
    collapsed = eye(0.0)
    for driving in (crossed, collapsed):
        flow = identity_flow().requires_grad_()
        out = closing_flow(flow, source, driving, (REGION,))
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(flow.grad).all()
