"""Dense anchors in the model: posing them like the keypoints, carrying them in the spline, the anchor VAE and
its named controls."""

from dataclasses import replace

import pytest
import torch

from mmfa_studio.model import MMFA
from mmfa_studio.model.anchor_expression import AnchorExpressionVAE
from mmfa_studio.model.anchors import pose_anchors
from mmfa_studio.model.dense_motion import AnchorPoints, thin_plate_spline
from mmfa_studio.model.keypoints import compose_keypoints, rotation_matrix
from mmfa_studio.motion import ExpressionControls


def pose(yaw=0.0, pitch=0.0, roll=0.0, t=(0.0, 0.0, 0.0), s=1.0):
    return (torch.tensor([yaw]), torch.tensor([pitch]), torch.tensor([roll]), torch.tensor([t]), torch.tensor([s]))


def test_unchanged_pose_leaves_the_anchors_where_they_are():
    anchors = torch.randn(1, 20, 3) * 0.3
    source = pose(12.0, -5.0, 3.0, (0.1, -0.05, 0.2), 0.8)
    posed = pose_anchors(anchors, *source, *source)
    assert torch.allclose(posed.driving, anchors[..., :2], atol=1e-6)
    assert torch.equal(posed.source, anchors[..., :2])


def test_a_turn_moves_anchors_as_it_moves_keypoints_at_the_same_place():
    # A keypoint x_c posed by the source pose, then by the target pose, lands where the anchor at the same
    # place goes (depth relative to the head's centre, the pivot).
    canonical = torch.randn(1, 6, 3) * 0.3
    src, dst = pose(5.0, 2.0, 0.0, (0.1, 0.0, 0.0), 0.9), pose(25.0, -10.0, 4.0, (0.0, 0.1, 0.0), 1.1)
    at = lambda p: compose_keypoints(canonical, torch.zeros_like(canonical), rotation_matrix(*p[:3]), p[3], p[4])
    before, after = at(src), at(dst)
    relative = before.clone()
    relative[..., 2] -= src[3][:, None, 2]  # the anchors' depth is measured from the pivot
    posed = pose_anchors(relative, *src, *dst)
    assert torch.allclose(posed.driving, after[..., :2], atol=1e-5)


def test_shift_moves_the_posed_anchors_in_the_image_plane():
    anchors = torch.randn(1, 8, 3) * 0.3
    shift = torch.randn(1, 8, 2) * 0.05
    p = pose(10.0)
    assert torch.allclose(pose_anchors(anchors, *p, *p, shift).driving, anchors[..., :2] + shift, atol=1e-6)


def test_spline_through_anchors_carries_them():
    grid = torch.stack([torch.tensor([0.3, -0.2]), torch.tensor([-0.4, 0.5])])
    control = torch.tensor([[[0.3, -0.2], [-0.4, 0.5], [0.0, 0.0], [0.6, 0.6]]])
    target = control + torch.tensor([[[0.05, 0.02], [-0.03, 0.01], [0.0, 0.0], [0.0, 0.0]]])
    mapped = thin_plate_spline(control, target, grid, regularisation=1e-6)
    assert torch.allclose(mapped[0], target[0, :2], atol=1e-3)


def test_render_with_still_anchors_matches_a_render_without_motion(tiny_config):
    cfg = replace(tiny_config, tps_motion=True)
    model = MMFA(cfg).eval()
    image = torch.rand(1, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        source = model.encode_source(image)
        points = torch.rand(1, 10, 2) * 1.6 - 0.8
        still = model.render(source, source.own_motion, anchors=AnchorPoints(points, points))
        moved = model.render(source, source.own_motion, anchors=AnchorPoints(points, points + 0.1))
    plain = model.render(source, source.own_motion)
    assert torch.allclose(still.image, plain.image, atol=1e-4)
    assert not torch.allclose(moved.image, plain.image, atol=1e-3)


# At cell centres of the tiny model's 16² flow: the first anchor (a "lower lip") drops by one cell, two stay.
LIP = torch.tensor([[[0.0625, 0.1875], [-0.4375, -0.4375], [0.5625, -0.4375]]])
LIP_DROPPED = LIP + torch.tensor([[[0.0, 0.125], [0.0, 0.0], [0.0, 0.0]]])
WANTED = LIP[0, 0] - LIP_DROPPED[0, 0]  # the backward flow's displacement at the dropped anchor: to its source


def _shift_at_dropped_lip(flow: torch.Tensor) -> torch.Tensor:
    """The displacement (2) of a B×S×S×2 flow at the dropped anchor's cell."""
    from mmfa_studio.model.dense_motion import make_coordinate_grid

    size = flow.shape[1]
    row, col = (int(round((float(v) + 1) * size / 2 - 0.5)) for v in (LIP_DROPPED[0, 0, 1], LIP_DROPPED[0, 0, 0]))
    return flow[0, row, col] - make_coordinate_grid((size, size), flow)[row, col]


def _tiny_model_and_source(cfg):
    torch.manual_seed(0)
    model = MMFA(cfg).eval()
    with torch.no_grad():
        return model, model.encode_source(torch.rand(1, 3, cfg.image_size, cfg.image_size))


def test_anchor_flow_makes_the_flow_follow_the_spline_at_the_anchors(tiny_config):
    """model.anchor_flow = 1: at a moved anchor the flow is the spline's (it fetches the anchor's source point),
    far from every anchor it is the learned mix; 0 leaves the mix alone."""
    from mmfa_studio.model.dense_motion import make_coordinate_grid

    cfg = replace(tiny_config, tps_motion=True)
    model, source = _tiny_model_and_source(cfg)
    with torch.no_grad():
        motion = lambda m: m.estimate_motion(source, source.own_motion, AnchorPoints(LIP, LIP_DROPPED))[2].flow
        mixed = motion(model)
        followed = motion(_with_config(model, replace(cfg, anchor_flow=1.0)))
    assert torch.allclose(_shift_at_dropped_lip(followed), WANTED, atol=0.02)
    assert (_shift_at_dropped_lip(mixed) - WANTED).norm() > 2 * (_shift_at_dropped_lip(followed) - WANTED).norm()
    grid = make_coordinate_grid(mixed.shape[1:3], mixed)
    far = (grid - torch.tensor([0.9, 0.9])).norm(dim=-1) < 0.1
    assert torch.allclose(followed[0][far], mixed[0][far], atol=1e-3)
    with pytest.raises(ValueError, match="anchor_flow"):
        replace(tiny_config, anchor_flow=0.5)  # no spline


def test_flow_smoothing_leaves_the_anchor_spline_exact(tiny_config):
    """The render blurs the flow against folds, but not the anchors' spline: blurred, it lost a third of the
    lips' and lids' motion (σ 1.5 px at 256)."""
    from mmfa_studio.model.dense_motion import make_coordinate_grid
    from mmfa_studio.model.flow_smoothing import smooth_flow

    cfg = replace(tiny_config, tps_motion=True, anchor_flow=1.0, flow_smoothing=0.1)
    model, source = _tiny_model_and_source(cfg)
    with torch.no_grad():
        flow = model.render(source, source.own_motion, anchors=AnchorPoints(LIP, LIP_DROPPED)).motion.flow
    assert torch.allclose(_shift_at_dropped_lip(flow), WANTED, atol=0.02)
    blurred = smooth_flow(flow, make_coordinate_grid(flow.shape[1:3], flow), cfg.flow_smoothing)
    assert (_shift_at_dropped_lip(blurred) - WANTED).norm() > 2 * (_shift_at_dropped_lip(flow) - WANTED).norm()


def _with_config(model: MMFA, cfg) -> MMFA:
    """The same weights under a config that differs only in settings without weights."""
    other = MMFA(cfg).eval()
    other.load_state_dict(model.state_dict())
    return other


def test_anchor_vae_lives_in_the_model_only_when_configured(tiny_config):
    assert MMFA(tiny_config).anchor_expression is None
    with_vae = MMFA(replace(tiny_config, anchor_latent_dim=4, anchor_count=12, anchor_hidden=16))
    vae = with_vae.anchor_expression
    code = vae(torch.randn(3, 12, 3))
    assert code.mu.shape == (3, 4) and code.delta.shape == (3, 12, 3)
    assert any(k.startswith("anchor_expression.") for k in with_vae.state_dict())
    with pytest.raises(ValueError):
        replace(tiny_config, variant="volumetric", anchor_latent_dim=4)


def test_anchor_vae_decodes_to_its_scale():
    vae = AnchorExpressionVAE(5, 2, 8)
    vae.scale.fill_(0.01)
    assert vae.decode(torch.zeros(1, 2)).abs().max() < 0.01 * 10


def test_decoder_jacobian_is_the_decoders_derivative():
    torch.manual_seed(0)
    vae = AnchorExpressionVAE(5, 3, 8)
    vae.scale.fill_(0.1)
    z = torch.randn(3)
    delta, jacobian = vae.decode_jacobian(z)
    assert torch.allclose(delta, vae.decode(z[None]).flatten(), atol=1e-6)
    expected = torch.func.jacfwd(lambda v: vae.decode(v[None]).flatten())(z)
    assert jacobian.shape == (15, 3) and torch.allclose(jacobian, expected, atol=1e-6)


def test_controls_add_their_directions():
    controls = ExpressionControls({"mouth_open": [1.0, 0.0], "blink": [0.0, 2.0]}, {"brows": (-1.0, 1.0)})
    assert controls.offset({"mouth_open": 0.5, "blink": 1.0}) == [0.5, 2.0]
    assert controls.range("mouth_open") == (0.0, 1.0)
    again = ExpressionControls.from_json(controls.to_json())
    assert again.directions == controls.directions
    with pytest.raises(ValueError, match="unknown expression control"):
        controls.offset({"grin": 1.0})


def test_applied_controls_stay_within_the_latent_limit():
    from mmfa_studio.motion import EXPRESSION_LIMIT

    controls = ExpressionControls({"mouth_open": [4.0, -4.0]})
    assert controls.apply([1.0, 2.0], {"mouth_open": 0.5}) == [3.0, 0.0]
    assert controls.apply([9.0, -9.0], {"mouth_open": 1.0}) == [EXPRESSION_LIMIT, -EXPRESSION_LIMIT]
