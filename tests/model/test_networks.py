from dataclasses import replace

import pytest
import torch

from mmfa_studio.model import MMFA, MultiScaleDiscriminator, TargetMotion
from mmfa_studio.model.blocks import make_coordinate_grid
from mmfa_studio.model.dense_motion import (
    GRID_CHUNK,
    add_tps_proposal,
    sparse_motions,
    squared_distances,
    thin_plate_spline,
)


def config_at(tiny_config, variant, size):
    # 64 px and 128 px versions of the tiny config (the generator has two upsamplings).
    return replace(tiny_config, variant=variant, image_size=size, feature_size=size // 4, detector_size=size,
                   heatmap_size=size // 4)


@pytest.mark.parametrize("variant", ["hybrid", "volumetric"])
@pytest.mark.parametrize("size,tps", [(64, False), (128, False), (64, True)])
def test_shapes_of_every_network(tiny_config, variant, size, tps):
    cfg = replace(config_at(tiny_config, variant, size), tps_motion=tps)
    torch.manual_seed(0)
    model = MMFA(cfg).eval()
    b, k, s = 2, cfg.num_keypoints, cfg.feature_size
    image = torch.rand(b, 3, size, size)
    with torch.no_grad():
        feats = model.appearance_encoder(image)
        expected = ((b, cfg.appearance_channels, s, s) if variant == "hybrid"
                    else (b, cfg.volume_channels, cfg.volume_depth, s, s))
        assert feats.shape == expected
        kp = model.keypoint_detector(image)
        assert kp.shape == (b, k, 3) and kp.abs().max() <= 1
        motion = model.motion_encoder(image)
        assert motion.yaw.shape == motion.pitch.shape == motion.roll.shape == motion.scale.shape == (b,)
        assert motion.translation.shape == (b, 3) and motion.expression.shape == (b, cfg.expression_dim)
        assert motion.pose_logits.shape == (b, 3, cfg.pose_bins)
        code = model.expression_vae(motion.expression)
        assert code.mu.shape == code.logvar.shape == code.z.shape == (b, cfg.latent_dim)
        assert code.delta.shape == (b, k, 3)
        source = model.encode_source(image)
        result = model.render(source, source.own_motion)
        flow_shape = (b, s, s, 2) if variant == "hybrid" else (b, cfg.volume_depth, s, s, 3)
        assert result.motion.flow.shape == flow_shape
        assert result.motion.occlusion.shape == (b, 1, s, s)
        assert result.motion.masks.shape[:2] == (b, k + 1 + tps)
        assert torch.allclose(result.motion.masks.sum(1), torch.ones(()), atol=1e-5)
        assert [p.shape[-1] for p in result.output.pyramid] == [s, 2 * s, 4 * s]
        assert result.image.shape == (b, 3, size, size)
        assert 0 <= result.image.min() and result.image.max() <= 1
        d = MultiScaleDiscriminator(cfg)(result.image)
        assert len(d.logits) == len(cfg.discriminator_scales) and d.logits[1].shape[-1] < d.logits[0].shape[-1]
        assert len(d.features[0]) == cfg.discriminator_layers


def test_posed_source_keypoints_follow_composition(tiny_config):
    torch.manual_seed(0)
    model = MMFA(tiny_config).eval()
    with torch.no_grad():
        src = model.encode_source(torch.rand(1, 3, 64, 64))
        kp, _ = model.pose_keypoints(src.canonical, src.own_motion)
    assert torch.allclose(kp, src.keypoints)


def test_sparse_motion_of_unchanged_keypoints_is_identity():
    grid = make_coordinate_grid((8, 8), torch.zeros(1))
    kp = torch.rand(1, 4, 2) * 2 - 1
    motions = sparse_motions(grid, kp, kp, torch.eye(2)[None])
    assert torch.allclose(motions, grid.expand(1, 5, 8, 8, 2), atol=1e-6)


def test_sparse_motion_follows_a_translation():
    grid = make_coordinate_grid((8, 8), torch.zeros(1))
    kp_s = torch.zeros(1, 1, 2)
    kp_d = torch.tensor([[[0.25, 0.0]]])  # driving keypoint moved right → sample the source further left
    motions = sparse_motions(grid, kp_s, kp_d, torch.eye(2)[None])
    assert torch.allclose(motions[0, 1], grid - torch.tensor([0.25, 0.0]), atol=1e-6)


@pytest.mark.parametrize("n", [2, 3])
def test_thin_plate_spline_passes_through_its_points_and_keeps_affine_maps(n):
    torch.manual_seed(0)
    control, target = torch.rand(2, 6, n) * 2 - 1, torch.rand(2, 6, n) * 2 - 1
    at_control = thin_plate_spline(control, target, control[0], regularisation=0.0)  # batch 0's points as the grid
    assert torch.allclose(at_control[0], target[0], atol=1e-4)
    affine = torch.randn(n, n) * 0.3 + torch.eye(n)
    grid = make_coordinate_grid((5,) * n, torch.zeros(1))
    mapped = thin_plate_spline(control, control @ affine.T + 0.1, grid)
    assert torch.allclose(mapped, grid @ affine.T + 0.1, atol=1e-4)
    assert torch.allclose(thin_plate_spline(control, control, grid), grid.expand(2, *grid.shape), atol=1e-5)


def test_thin_plate_spline_over_a_grid_of_several_chunks_is_the_spline_at_each_point():
    """The grid is evaluated a chunk at a time: every chunk, the last one short, must get the same map as its
    points alone."""
    torch.manual_seed(0)
    control = torch.rand(2, 40, 2) * 1.6 - 0.8
    target = control + 0.05 * torch.randn_like(control)
    grid = make_coordinate_grid((45, 47), torch.zeros(1))
    assert GRID_CHUNK < 45 * 47 and (45 * 47) % GRID_CHUNK
    with torch.inference_mode():
        whole = thin_plate_spline(control, target, grid)
        rows = torch.stack([thin_plate_spline(control, target, row) for row in grid], dim=1)  # < a chunk each
    assert whole.shape == (2, 45, 47, 2)
    assert torch.allclose(whole, rows, atol=1e-5)


def test_thin_plate_spline_is_the_r2_log_r2_interpolant_and_survives_collinear_points():
    # Four corners of a square, one displaced: by symmetry the hand solution has w = ±c and a known value at the
    # centre: f(0) = affine part only, since the four kernel terms U(r² = 2) cancel pairwise in sign.
    control = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
    target = control.clone()
    target[0, 2] += torch.tensor([0.4, 0.0])
    centre = thin_plate_spline(control, target, torch.zeros(1, 2), regularisation=0.0)
    # Least-squares affine part of the four displacements (0.4, 0) at one corner: mean shift 0.1, and the kernel
    # weights ±0.1 cancel at the centre because all four corners are at the same distance.
    assert torch.allclose(centre[0, 0], torch.tensor([0.1, 0.0]), atol=1e-4)
    line = torch.stack([torch.linspace(-0.5, 0.5, 5), torch.zeros(5)], -1)[None]  # collinear keypoints
    grid = make_coordinate_grid((4, 4), torch.zeros(1))
    assert torch.isfinite(thin_plate_spline(line, line + 0.05, grid)).all()
    flat = torch.cat([torch.rand(1, 6, 2), torch.zeros(1, 6, 1)], -1)  # coplanar 3D keypoints
    mapped = thin_plate_spline(flat, flat + 0.05, make_coordinate_grid((3, 3, 3), torch.zeros(1)))
    assert torch.isfinite(mapped).all() and mapped.abs().max() < 2


@pytest.mark.parametrize("variant", ["hybrid", "volumetric"])
def test_adding_the_spline_to_a_trained_dense_motion_keeps_it_until_the_spline_gets_weight(tiny_config, variant):
    """add_tps_proposal grows the old weights in place: with a hopeless spline logit nothing changes; with a
    dominant one the flow is the spline through the keypoint pairs."""
    cfg = replace(tiny_config, variant=variant)
    torch.manual_seed(0)
    old = MMFA(cfg).eval()
    new = MMFA(replace(cfg, tps_motion=True)).eval()
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("dense_motion.")}
    old_motion = old.dense_motion.state_dict()
    image = torch.rand(1, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        src = old.encode_source(image)
        target = src.own_motion.with_changes(yaw=src.own_motion.yaw + 20)
        before = old.render(src, target)
        for logit, check in ((-60.0, "same"), (60.0, "spline")):
            grown = add_tps_proposal(old_motion, new.dense_motion, logit)
            new.load_state_dict(state | {"dense_motion." + k: v for k, v in grown.items()})
            after = new.render(new.encode_source(image), target)
            if check == "same":
                assert torch.allclose(after.image, before.image, atol=1e-5)
            else:
                assert after.motion.masks[:, -1].min() > 0.99
                if variant == "hybrid":
                    grid = make_coordinate_grid((cfg.feature_size,) * 2, image)
                    spline = thin_plate_spline(after.keypoints[..., :2], src.keypoints[..., :2], grid)
                    assert torch.allclose(after.motion.flow, spline, atol=1e-3)
    with pytest.raises(ValueError, match="cannot grow"):
        add_tps_proposal(new.dense_motion.state_dict(), old.dense_motion, 0.0)
    with pytest.raises(ValueError, match="nothing to add"):
        add_tps_proposal(new.dense_motion.state_dict(), new.dense_motion, 0.0)


@pytest.mark.parametrize("variant", ["hybrid", "volumetric"])
def test_gradients_reach_every_learnable_parameter(tiny_config, variant):
    cfg = replace(tiny_config, variant=variant)
    torch.manual_seed(0)
    model = MMFA(cfg).train()
    disc = MultiScaleDiscriminator(cfg)
    src, drv = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    out = model(src, drv)
    # The zero-initialised heads (pose, δ decoder) get gradients through the rendered image, the keypoints and
    # the VAE statistics, as the training losses use them.
    loss = sum(p.mean() for p in out.render.output.pyramid)
    loss = loss + out.driving_expression.mu.pow(2).mean() + out.driving_expression.logvar.exp().mean()
    loss = loss + out.render.keypoints.pow(2).mean() + out.driving_canonical.mean() + out.source.keypoints.mean()
    loss = loss + sum(l.mean() for l in disc(out.render.image).logits)
    loss.backward()
    missing = [n for n, p in list(model.named_parameters()) + list(disc.named_parameters())
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches: {missing}"


@pytest.mark.parametrize("variant", ["hybrid", "volumetric"])
def test_random_model_renders_a_frame_on_cpu_for_an_edited_pose(tiny_config, variant):
    torch.manual_seed(0)
    model = MMFA(replace(tiny_config, variant=variant)).eval()
    with torch.inference_mode():
        src = model.encode_source(torch.rand(1, 3, 64, 64))
        edit = src.own_motion.with_changes(yaw=src.motion.yaw + 20, scale=src.motion.scale * 1.1)
        a = model.render(src, edit, all_scales=False).image
        b = model.render(src, edit, all_scales=False).image
        c = model.render(src, src.own_motion, all_scales=False).image
    assert a.shape == (1, 3, 64, 64) and torch.isfinite(a).all()
    assert torch.equal(a, b)  # deterministic
    assert not torch.equal(a, c)  # the edit changes the frame


def test_batch_render_from_a_single_source(tiny_config):
    torch.manual_seed(0)
    model = MMFA(tiny_config).eval()
    with torch.inference_mode():
        src = model.encode_source(torch.rand(1, 3, 64, 64))
        own = src.own_motion
        yaw = torch.tensor([0.0, 15.0, -15.0])
        batch = TargetMotion(yaw, own.pitch.expand(3), own.roll.expand(3), own.translation.expand(3, 3),
                             own.scale.expand(3), own.delta.expand(3, -1, -1))
        frames = model.render(src, batch, all_scales=False).image
        single = model.render(src, own.with_changes(yaw=torch.tensor([15.0])), all_scales=False).image
    assert frames.shape == (3, 3, 64, 64)
    assert torch.allclose(frames[1:2], single, atol=1e-5)


def test_source_of_wrong_size_is_refused(tiny_config):
    model = MMFA(tiny_config).eval()
    with pytest.raises(ValueError, match="64"):
        model.encode_source(torch.rand(1, 3, 32, 32))


def test_geometry_stays_fp32_under_mixed_precision(tiny_config):
    """Angles, δ and keypoints are computed in fp32 under bf16 autocast (bf16 keypoints are ~1 px off)."""
    torch.manual_seed(0)
    model = MMFA(tiny_config).eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        src = model.encode_source(torch.rand(1, 3, 64, 64))
        result = model.render(src, src.own_motion.with_changes(yaw=src.motion.yaw + 10))
    for t in (src.motion.yaw, src.motion.pose_logits, src.motion.translation, src.expression.mu, src.expression.delta,
              src.keypoints, src.jacobian, result.keypoints):
        assert t.dtype == torch.float32


def test_template_depth_reads_the_buffer_at_each_keypoint_plus_a_bounded_residual(tiny_config):
    from mmfa_studio.model.keypoint_detector import CanonicalKeypointDetector

    cfg = replace(tiny_config, keypoint_depth="template", depth_residual=0.1)
    detector = CanonicalKeypointDetector(cfg)
    s = cfg.heatmap_size
    assert detector.depth_template.shape == (1, 1, s, s) and "depth_template" in detector.state_dict()
    # depth = 0.5·x over the crop: a keypoint's depth is half its x, up to the residual.
    centres = (torch.arange(s) + 0.5) / s * 2 - 1
    detector.depth_template.copy_((0.5 * centres).expand(s, s).view(1, 1, s, s))
    kp = detector(torch.rand(3, 3, cfg.image_size, cfg.image_size))
    assert ((kp[..., 2] - 0.5 * kp[..., 0]).abs() <= 0.1 + 1e-4).all()
    torch.nn.init.zeros_(detector.depth.weight), torch.nn.init.zeros_(detector.depth.bias)
    kp = detector(torch.rand(2, 3, cfg.image_size, cfg.image_size))
    assert torch.allclose(kp[..., 2], 0.5 * kp[..., 0], atol=2e-3)  # bilinear read of a linear map
    with pytest.raises(ValueError, match="keypoint_depth"):
        replace(tiny_config, keypoint_depth="guess")


def test_squared_distances_match_the_differences():
    torch.manual_seed(0)
    points = torch.rand(2, 7, 2) * 2 - 1
    grid = make_coordinate_grid((9, 11), torch.zeros(1))
    direct = (grid[None, None] - points[:, :, None, None]).pow(2).sum(-1)
    fast = squared_distances(points, grid)
    assert fast.shape == (2, 7, 9, 11)
    assert torch.allclose(fast, direct, atol=1e-6)
    assert (squared_distances(points, points[0]) >= 0).all()  # the exact zeros do not round below zero
    volume = make_coordinate_grid((3, 4, 5), torch.zeros(1))
    points3 = torch.rand(1, 4, 3)
    assert torch.allclose(squared_distances(points3, volume),
                          (volume[None, None] - points3[:, :, None, None, None]).pow(2).sum(-1), atol=1e-6)


def test_thin_plate_spline_gradients_are_finite():
    """Training moves the keypoints through the spline: the kernel's slope at the control points themselves
    (distance 0) must not be the −∞ of d·log d."""
    control = (torch.rand(2, 6, 2) * 2 - 1).requires_grad_()
    mapped = thin_plate_spline(control, control.detach() + 0.01, make_coordinate_grid((8, 8), torch.zeros(1)))
    mapped.sum().backward()
    assert torch.isfinite(control.grad).all()
