"""The pretrained VGG16 trunk that ships offline inside the ``stlpips-pytorch`` wheel, without its code.

stlpips-pytorch's own modules import torchvision and IPython (which don't import beside our torch), so we
rebuild its shift-tolerant VGG16 here — VGG16's convolutions with "max-pool (stride 1) + 3×3 binomial blur
(stride 2)" down-sampling, as in Zhang's anti-aliased CNNs — and load only its weight file
(``weights/vST0.0/vgg_shift_tolerant.pth``, read with ``torch.load(weights_only=True)``). It serves the
training's perceptual loss (the trunk's relu features) and the evaluation's LPIPS-style distance (the trunk
plus the learned per-channel linear heads).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Indices (in the feature list built below) after which relu1_2 … relu5_3 are read.
_TAPS = (3, 9, 17, 25, 33)
CHANNELS = (64, 128, 256, 512, 512)


class BlurDownsample(nn.Module):
    """Reflect-pad by 2, then a 3×3 binomial blur with stride 2 (per channel)."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ShiftTolerantVGG16(nn.Module):
    """B×3×H×W in [0, 1] → the five relu feature maps (relu1_2 … relu5_3), ImageNet-normalised input."""

    def __init__(self, last_tap: int = 5):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for v in _VGG16_LAYERS:
            if v == "M":
                layers += [nn.MaxPool2d(kernel_size=2, stride=1), BlurDownsample(prev)]
            else:
                layers += [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU(inplace=False)]
                prev = v
        self.taps = _TAPS[:last_tap]
        self.features = nn.Sequential(*layers[: self.taps[-1] + 1])
        # LPIPS v0.1 input scaling, applied to inputs mapped to [-1, 1].
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, image: Tensor) -> list[Tensor]:
        x = ((image * 2 - 1) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class LPIPSDistance(nn.Module):
    """LPIPS-style distance with the shift-tolerant VGG16 and its learned linear heads: B×3×H×W pairs → B."""

    def __init__(self):
        super().__init__()
        self.trunk = ShiftTolerantVGG16()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        total = 0
        for fa, fb, head in zip(self.trunk(a), self.trunk(b), self.heads):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total


def stlpips_weights_path() -> Path | None:
    """The weight file inside the installed stlpips-pytorch wheel (located without importing it), or None.

    ``MMFA_VGG_WEIGHTS`` overrides it (e.g. a copy carried to a machine without the package).
    """
    env = os.environ.get("MMFA_VGG_WEIGHTS")
    if env:
        return Path(env) if Path(env).is_file() else None
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "vST0.0" / "vgg_shift_tolerant.pth"
    return path if path.is_file() else None


def _state(path: Path | None) -> dict[str, Tensor]:
    path = path or stlpips_weights_path()
    if path is None:
        raise FileNotFoundError(
            "pretrained VGG16 weights not found: install the 'train' or 'eval' extra (stlpips-pytorch) "
            "or set MMFA_VGG_WEIGHTS to vgg_shift_tolerant.pth"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _trunk_state(state: dict[str, Tensor], trunk: ShiftTolerantVGG16) -> dict[str, Tensor]:
    # The file names layers net.sliceN.<index>.*; the index is the same as in our flat feature list.
    mapped = {}
    for key, value in state.items():
        if key.startswith("net.slice"):
            index, rest = key.split(".", 3)[2], key.split(".", 3)[3]
            if int(index) < len(trunk.features):
                mapped[f"features.{index}.{rest}"] = value
    return mapped


def load_vgg_trunk(path: str | Path | None = None, last_tap: int = 5) -> ShiftTolerantVGG16:
    """The frozen pretrained trunk (eval mode, no gradients to its weights)."""
    trunk = ShiftTolerantVGG16(last_tap)
    missing, _ = trunk.load_state_dict(_trunk_state(_state(Path(path) if path else None), trunk), strict=False)
    missing = [k for k in missing if k not in ("shift", "scale")]
    if missing:
        raise ValueError(f"VGG weight file does not fit the trunk (missing {missing[:3]})")
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk.eval()


def load_lpips(path: str | Path | None = None) -> LPIPSDistance:
    state = _state(Path(path) if path else None)
    model = LPIPSDistance()
    model.trunk.load_state_dict({**_trunk_state(state, model.trunk), "shift": model.trunk.shift, "scale": model.trunk.scale})
    for i, head in enumerate(model.heads):
        head.weight.data.copy_(state[f"lin{i}.model.1.weight"])
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
