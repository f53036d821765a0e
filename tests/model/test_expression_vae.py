import pytest
import torch

from mmfa_studio.model.expression_vae import ExpressionVAE, interpolate, kl_divergence


@pytest.fixture
def vae():
    torch.manual_seed(0)
    v = ExpressionVAE(feature_dim=12, latent_dim=4, hidden=16, num_keypoints=5)
    torch.nn.init.normal_(v.decoder[-1].weight, std=0.1)  # a non-trivial decoder
    return v


def test_reparameterisation_matches_mean_and_variance():
    mu, logvar = (torch.tensor([[1.0, -2.0]]).expand(20000, 2),
                  torch.tensor([[0.0, 2 * torch.log(torch.tensor(3.0))]]).expand(20000, 2))
    z = ExpressionVAE.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.06)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 3.0]), atol=0.06)


def test_kl_is_non_negative_and_zero_at_the_prior():
    torch.manual_seed(0)
    for _ in range(20):
        assert kl_divergence(torch.randn(8, 4), torch.randn(8, 4)) >= 0
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).abs() < 1e-7
    # closed form for one dimension: KL(N(1, e) || N(0, 1)) = 0.5 (e + 1 - 1 - 1) = 0.5 (e - 1)
    assert (kl_divergence(torch.tensor([[1.0]]), torch.tensor([[1.0]])).item()
            == pytest.approx(0.5 * (torch.e - 1), rel=1e-5))


def test_decode_of_mu_is_deterministic_and_eval_uses_mu(vae):
    feat = torch.randn(3, 12)
    vae.eval()
    a, b = vae(feat), vae(feat)
    assert torch.equal(a.z, a.mu) and torch.equal(a.delta, b.delta)
    assert torch.equal(vae.decode(a.mu), a.delta)
    assert a.delta.shape == (3, 5, 3)
    vae.train()
    assert not torch.equal(vae(feat).z, a.mu)  # training samples


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolation_endpoints_are_exact_and_path_is_continuous(vae, mode):
    torch.manual_seed(1)
    z0, z1 = vae.sample_prior(2).chunk(2)
    assert torch.equal(interpolate(z0, z1, 0.0, mode), z0)
    assert torch.equal(interpolate(z0, z1, 1.0, mode), z1)
    ts = torch.linspace(0, 1, 101)
    path = torch.cat([interpolate(z0, z1, float(t), mode) for t in ts])
    steps = (path[1:] - path[:-1]).norm(dim=-1)
    assert steps.max() < 3 * steps.mean()  # no jumps
    deltas = vae.decode(path)
    assert ((deltas[1:] - deltas[:-1]).norm(dim=(1, 2)).max() < 0.1)


def test_slerp_keeps_the_norm_between_equal_norm_codes():
    z0, z1 = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    mid = interpolate(z0, z1, 0.5, "slerp")
    assert mid.norm().item() == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(ValueError, match="slerp"):
        interpolate(z0, z1, 0.5, "cubic")


def test_max_delta_bounds_the_deformation_and_keeps_small_ones():
    from mmfa_studio.model.expression_vae import ExpressionVAE

    torch.manual_seed(0)
    free, bounded = ExpressionVAE(8, 4, 16, 5), ExpressionVAE(8, 4, 16, 5, max_delta=0.25)
    bounded.load_state_dict(free.state_dict())
    z = torch.randn(3, 4)
    assert torch.allclose(free.decode(z), bounded.decode(z), atol=1e-6)  # δ ≈ 0.001: unchanged
    torch.nn.init.normal_(free.decoder[-1].weight, std=10.0)
    torch.nn.init.normal_(bounded.decoder[-1].weight, std=10.0)
    bounded.decoder[-1].weight.data.copy_(free.decoder[-1].weight)
    assert free.decode(z).abs().max() > 1.0 and bounded.decode(z).abs().max() <= 0.25
