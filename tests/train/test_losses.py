"""Each training loss on inputs whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from mmfa_studio.model.discriminator import DiscriminatorOutput
from mmfa_studio.model.keypoints import compose_keypoints, rotation_matrix
from mmfa_studio.train import losses as L


@pytest.fixture(scope="module")
def vgg_perceptual():
    if L.find_vgg_weights() is None:
        pytest.skip("stlpips-pytorch (VGG weights) not installed")
    return L.PerceptualLoss.build("vgg16-st", None, (1, 2, 3), (1.0, 0.5))


def test_vgg_trunk_loads_pretrained_weights_and_is_frozen(vgg_perceptual):
    trunk = vgg_perceptual.trunk
    assert all(not p.requires_grad for p in trunk.parameters())
    # ImageNet-trained first-layer filters are far from a fresh random init (kaiming: std ≈ 0.27 here).
    fresh = L.VGGTrunk((1,))
    assert not torch.allclose(trunk.slices[0][0].weight, fresh.slices[0][0].weight)
    feats = trunk(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128, 256]
    trunk.train()
    assert not trunk.training  # stays in eval mode


def test_perceptual_loss_zero_for_identical_and_grows_with_difference(vgg_perceptual):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    assert vgg_perceptual(x, x).item() == pytest.approx(0.0, abs=1e-6)
    small = vgg_perceptual((x + 0.02 * torch.randn_like(x)).clamp(0, 1), x).item()
    large = vgg_perceptual((x + 0.2 * torch.randn_like(x)).clamp(0, 1), x).item()
    assert 0 < small < large
    out = x.clone().requires_grad_(True)
    vgg_perceptual(out, torch.rand_like(x)).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_perceptual_fallback_is_labelled_pixel_l1():
    loss = L.PerceptualLoss.build("none", None, (1,), (1.0, 0.5))
    assert "no pretrained" in loss.description
    x = torch.zeros(1, 3, 8, 8)
    assert loss(x + 0.25, x).item() == pytest.approx(0.5)  # 0.25 at each of two scales


def test_missing_vgg_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        L.PerceptualLoss.build("vgg16-st", tmp_path / "nope.pth", (1,), (1.0,))


def test_pyramid_l1_known_value():
    target = torch.full((1, 3, 16, 16), 0.5)
    pyramid = [torch.full((1, 3, 4, 4), 0.25), torch.full((1, 3, 8, 8), 0.75), torch.zeros(1, 3, 16, 16)]
    assert L.pyramid_l1(pyramid, target).item() == pytest.approx(0.5)  # the last (full-size) scale is excluded


def _d_out(values: list[float], feats: list[list[float]] | None = None) -> DiscriminatorOutput:
    logits = [torch.full((2, 1, 3, 3), v) for v in values]
    features = [[torch.full((2, 4, 3, 3), f) for f in fs] for fs in (feats or [[0.0]] * len(values))]
    return DiscriminatorOutput(logits, features)


def test_hinge_losses_known_values():
    real, fake = _d_out([2.0, 0.5]), _d_out([-2.0, 0.0])
    # scale 1: relu(1-2)=0 + relu(1-2)=0; scale 2: relu(0.5)=0.5 + relu(1+0)=1
    assert L.discriminator_hinge_loss(real, fake).item() == pytest.approx(1.5)
    assert L.generator_hinge_loss(fake).item() == pytest.approx(2.0)  # -(-2) - 0


def test_feature_matching_known_value():
    real = _d_out([0.0, 0.0], [[1.0, 2.0], [0.0, 0.0]])
    fake = _d_out([0.0, 0.0], [[1.5, 1.0], [0.0, 0.0]])
    # scale 1: mean(0.5, 1.0) = 0.75; scale 2: 0
    assert L.feature_matching_loss(real, fake).item() == pytest.approx(0.75)


def test_split_discriminator_output():
    both = _d_out([1.0])
    a, b = L.split_discriminator_output(both, 1)
    assert a.logits[0].shape[0] == 1 and b.logits[0].shape[0] == 1 and a.features[0][0].shape[0] == 1


def test_identity_warp_leaves_points_and_images_unchanged():
    warp = L.RandomWarp.random(2, 0.0, 0.0, 3)
    pts = torch.rand(2, 5, 2) * 2 - 1
    assert torch.allclose(warp.transform_points(pts), pts, atol=1e-6)
    img = torch.rand(2, 3, 16, 16)
    assert torch.allclose(warp.warp_image(img), img, atol=1e-5)


def centroid_keypoints(images: torch.Tensor) -> torch.Tensor:
    """A toy detector that is exactly equivariant: keypoint c = intensity centroid of channel c."""
    _, _, h, w = images.shape
    ys = ((torch.arange(h) + 0.5) / h * 2 - 1).view(1, 1, h, 1)
    xs = ((torch.arange(w) + 0.5) / w * 2 - 1).view(1, 1, 1, w)
    mass = images.sum(dim=(2, 3))
    return torch.stack([(images * xs).sum(dim=(2, 3)) / mass, (images * ys).sum(dim=(2, 3)) / mass], -1)


def blobs(b: int = 3, size: int = 96) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    centres = torch.rand(b, 3, 2, generator=g) * 0.8 - 0.4
    grid = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    d2 = (xx - centres[..., 0, None, None]) ** 2 + (yy - centres[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * 0.08**2))


def test_equivariance_loss_is_zero_for_an_equivariant_detector_and_not_for_a_fixed_one():
    images = blobs()
    warp = L.RandomWarp.random(3, 0.08, 0.0, 5, generator=torch.Generator().manual_seed(0))
    warped = warp.warp_image(images)
    kp, kp_w = centroid_keypoints(images), centroid_keypoints(warped)
    exact = L.equivariance_loss(kp, kp_w, warp).item()
    assert exact < 2e-3
    fixed = torch.zeros_like(kp)  # ignores the image: not equivariant
    assert L.equivariance_loss(fixed, fixed, warp).item() > 20 * exact
    # With a thin-plate-spline part the toy detector is no longer exact, but still close.
    tps = L.RandomWarp.random(3, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(2))
    assert L.equivariance_loss(kp, centroid_keypoints(tps.warp_image(images)), tps).item() < 0.01


def test_pose_equivariance_matches_keypoint_conventions():
    """Rotating the image content by the warp changes roll by −θ and scale by 1/s_A, as the loss assumes."""
    torch.manual_seed(0)
    theta, s_a = 12.0, 1.1
    t = math.radians(theta)
    a = s_a * torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    warp = L.RandomWarp(torch.cat([a, torch.zeros(2, 1)], 1)[None], torch.zeros(1, 2), torch.zeros(1, 1))
    assert warp.rotation_degrees().item() == pytest.approx(theta, abs=1e-4)
    canonical = torch.randn(1, 6, 3) * 0.3
    yaw, pitch, roll, scale = torch.tensor([10.0]), torch.tensor([-5.0]), torch.tensor([7.0]), torch.tensor([1.0])
    kp = compose_keypoints(canonical, torch.zeros_like(canonical), rotation_matrix(yaw, pitch, roll),
                           torch.zeros(1, 3), scale)
    # Keypoints of the warped image: x_w = A⁻¹ x (in the image plane).
    kp_w_xy = kp[..., :2] @ torch.linalg.inv(a).T
    kp_w_pred = compose_keypoints(canonical, torch.zeros_like(canonical), rotation_matrix(yaw, pitch, roll - theta),
                                  torch.zeros(1, 3), scale / s_a)
    assert torch.allclose(kp_w_pred[..., :2], kp_w_xy, atol=1e-5)
    zero = L.pose_equivariance_loss(yaw, pitch, roll, scale.log(), yaw, pitch, roll - theta, (scale / s_a).log(), warp)
    assert zero.item() == pytest.approx(0.0, abs=1e-6)
    wrong = L.pose_equivariance_loss(yaw, pitch, roll, scale.log(), yaw, pitch, roll + theta, scale.log(), warp)
    assert wrong.item() > 0.05


def test_keypoint_prior_known_values():
    kp = torch.tensor([[[0.0, 0.0, 0.33], [0.05, 0.0, 0.33], [0.5, 0.5, 0.33]]])
    # one pair 0.05 apart → 0.1 − 0.05; depth mean exactly on target
    assert L.keypoint_prior_loss(kp, 0.1, 0.33).item() == pytest.approx(0.05, abs=1e-5)
    spread = torch.tensor([[[-0.5, -0.5, 0.0], [0.5, 0.5, 0.0]]])
    assert L.keypoint_prior_loss(spread, 0.1, 0.33).item() == pytest.approx(0.33, abs=1e-5)
    g = kp.clone().requires_grad_(True)
    L.keypoint_prior_loss(g).backward()
    assert torch.isfinite(g.grad).all()


def test_keypoint_prior_separates_in_the_image_plane_not_in_depth():
    """Depth must not be a way out of the separation term (it saturated the canonical z at ±1 once)."""
    stacked = torch.tensor([[[0.0, 0.0, -0.67], [0.0, 0.0, 1.33]]], requires_grad=True)  # same xy, mean z 0.33
    loss = L.keypoint_prior_loss(stacked, 0.1, 0.33)
    assert loss.item() == pytest.approx(0.1, abs=1e-5)
    loss.backward()
    assert stacked.grad[..., 2].abs().max().item() == pytest.approx(0.0, abs=1e-6)


def test_deformation_and_canonical_losses():
    delta = torch.tensor([[[0.1, -0.2, 0.3]]])
    assert L.deformation_prior_loss(delta).item() == pytest.approx(0.2)
    a = torch.zeros(1, 2, 3)
    assert L.canonical_consistency_loss(a, a + 0.5).item() == pytest.approx(0.5)


def test_kl_loss_and_annealing():
    assert L.kl_loss(torch.zeros(3, 4), torch.zeros(3, 4)).item() == pytest.approx(0.0)
    # KL(N(1, 1) ‖ N(0, 1)) = 0.5 per dim
    assert L.kl_loss(torch.ones(1, 4), torch.zeros(1, 4)).item() == pytest.approx(2.0)
    assert L.kl_weight(5, 1.0, 10, 100) == 0.0
    assert L.kl_weight(60, 1.0, 10, 100) == pytest.approx(0.5)
    assert L.kl_weight(500, 1.0, 10, 100) == pytest.approx(1.0)
    assert L.kl_weight(0, 0.3, 0, 0) == pytest.approx(0.3)


def test_kl_free_nats_floor_each_dimension():
    mu = torch.zeros(2, 4)
    mu[:, 0] = 2.0  # dim 0 carries 2 nats, the others none
    assert L.kl_loss(mu, torch.zeros(2, 4)).item() == pytest.approx(2.0)
    assert L.kl_loss(mu, torch.zeros(2, 4), free_nats=0.5).item() == pytest.approx(2.0 + 3 * 0.5)
    quiet = torch.full((2, 4), 0.1, requires_grad=True)  # 0.005 nats per dim: below the floor, no push
    L.kl_loss(quiet, torch.zeros(2, 4), free_nats=0.5).backward()
    assert quiet.grad.abs().max().item() == 0.0
    loud = mu.clone().requires_grad_(True)
    L.kl_loss(loud, torch.zeros(2, 4), free_nats=0.5).backward()
    assert loud.grad[:, 0].abs().min().item() > 0 and loud.grad[:, 1:].abs().max().item() == 0.0


def test_expression_invariance_loss():
    mu, delta = torch.randn(2, 4), torch.randn(2, 5, 3)
    assert L.expression_invariance_loss(mu, mu, delta, delta).item() == 0.0
    assert L.expression_invariance_loss(mu, mu + 1, delta, delta).item() == pytest.approx(1.0)


def test_head_pose_loss():
    bins, max_deg = 66, 99.0
    target = torch.tensor([[20.0, -10.0, 5.0]])
    width = 2 * max_deg / bins
    centres = torch.arange(bins) * width - max_deg + width / 2
    logits = -((centres.view(1, 1, -1) - target.view(1, 3, 1)) ** 2) / 2.0  # peaked at the target
    good = L.head_pose_loss(logits, target, torch.tensor([True]), bins, max_deg).item()
    bad = L.head_pose_loss(torch.zeros(1, 3, bins), target, torch.tensor([True]), bins, max_deg).item()
    assert good < 0.5 < bad
    g = torch.zeros(1, 3, bins, requires_grad=True)
    none = L.head_pose_loss(g, target, torch.tensor([False]), bins, max_deg)
    assert none.item() == 0.0
    none.backward()
    assert g.grad is not None


def test_losses_run_under_bf16_autocast(vgg_perceptual):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = vgg_perceptual(x, torch.rand(1, 3, 32, 32)) + L.keypoint_prior_loss(torch.rand(1, 4, 3))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert F.mse_loss(x.grad, torch.zeros_like(x.grad)) > 0


def test_slim_vgg_copy_gives_the_same_features(vgg_perceptual, tmp_path):
    from mmfa_studio.train.vgg_slim import main as slim_main

    path = tmp_path / "vgg3.safetensors"
    assert slim_main([str(path), "--stages", "3"]) == 0
    assert path.stat().st_size < 5_000_000  # stages 1-3 in fp16
    slim = L.PerceptualLoss.build("vgg16-st", path, (1, 2, 3), (1.0,))
    x = torch.rand(1, 3, 32, 32)
    for a, b in zip(slim.trunk(x), vgg_perceptual.trunk(x)):
        assert torch.allclose(a, b, rtol=0.02, atol=0.02 * b.abs().max().item())
    with pytest.raises(ValueError, match="fewer VGG stages"):
        L.PerceptualLoss.build("vgg16-st", path, (1, 2, 3, 4), (1.0,))


def test_keypoint_flow_loss_is_zero_only_when_the_flow_follows_the_keypoints():
    from mmfa_studio.model.blocks import make_coordinate_grid

    grid = make_coordinate_grid((16, 16), torch.zeros(1)).unsqueeze(0)  # 1×16×16×2, identity flow
    kp_d = torch.tensor([[[0.2, -0.3, 0.1], [-0.4, 0.5, 0.0]]])
    shift = torch.tensor([0.1, -0.05])
    shifted = grid + shift  # every driving point comes from shift away in the source
    assert (L.keypoint_flow_loss(shifted, kp_d, kp_d + torch.tensor([0.1, -0.05, 0.3])).item()
            == pytest.approx(0.0, abs=1e-5))
    assert L.keypoint_flow_loss(grid, kp_d, kp_d).item() == pytest.approx(0.0, abs=1e-5)
    assert L.keypoint_flow_loss(grid, kp_d, kp_d[..., :2] + shift).item() == pytest.approx(0.075, abs=1e-4)
    flow = grid.clone().requires_grad_(True)
    kp_s = (kp_d[..., :2] + shift).requires_grad_(True)
    L.keypoint_flow_loss(flow, kp_d, kp_s).backward()
    assert flow.grad.abs().sum() > 0 and kp_s.grad is None  # trains the flow, not the keypoints


def test_scale_anchor_pins_the_batch_mean_scale_not_each_frame():
    at_target = torch.log(torch.tensor([0.7, 0.82 * 0.82 / 0.7]))  # mean log s = log 0.82
    assert L.scale_anchor_loss(at_target, 0.82).item() == pytest.approx(0.0, abs=1e-10)
    shrunk = torch.log(torch.full((4,), 0.65)).requires_grad_(True)
    loss = L.scale_anchor_loss(shrunk, 0.82)
    assert loss.item() == pytest.approx(math.log(0.65 / 0.82) ** 2)
    loss.backward()
    assert (shrunk.grad < 0).all()  # gradient descent raises the shrunken scales
