import sys
import types

import pytest
import torch

from mmfa_studio.perceptual import VGGTrunk, find_vgg_weights, load_lpips

pytestmark = pytest.mark.skipif(find_vgg_weights() is None,
                                reason="stlpips-pytorch (train/eval extra) is not installed")


def test_lpips_matches_the_reference_package(monkeypatch):
    # The reference imports torchvision/IPython/torchsummary at module level but its shift-tolerant VGG needs
    # none of them: stub them for the comparison only.
    for name in ("torchvision", "torchvision.models", "IPython", "torchsummary"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["torchvision"].models = sys.modules["torchvision.models"]
    sys.modules["IPython"].embed = lambda *a, **k: None
    sys.modules["torchsummary"].summary = lambda *a, **k: None
    for mod in [m for m in sys.modules if m.startswith("stlpips_pytorch")]:
        monkeypatch.delitem(sys.modules, mod)
    from stlpips_pytorch import stlpips

    ref = stlpips.LPIPS(net="vgg", variant="shift_tolerant", verbose=False)
    ours = load_lpips()
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 96, 96), torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(ref(a, b, normalize=True).flatten(), ours(a, b), atol=1e-5)


def test_lpips_is_zero_for_identical_images_and_grows_with_distortion():
    m = load_lpips()
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64), 5, 1, 2)
    with torch.no_grad():
        d0 = m(x, x).item()
        d1 = m(x, (x + 0.02 * torch.randn_like(x)).clamp(0, 1)).item()
        d2 = m(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)).item()
    assert d0 == 0 and 0 < d1 < d2


def test_trunk_is_frozen_and_gives_five_feature_maps():
    trunk = VGGTrunk((1, 2, 3, 4, 5))
    trunk.load_weights(find_vgg_weights())
    assert not any(p.requires_grad for p in trunk.parameters())
    feats = trunk(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
