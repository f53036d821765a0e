"""The pretrained VGG16 trunk that ships offline inside the ``stlpips-pytorch`` wheel, without its code.

stlpips-pytorch's own modules import torchvision and IPython (which don't import beside our torch), so the
shift-tolerant VGG16 is rebuilt here — VGG16's convolutions with "max-pool (stride 1) + 3×3 binomial blur
(stride 2)" down-sampling — and only its weight file is read (``weights/vST0.0/vgg_shift_tolerant.pth``, with
``torch.load(weights_only=True)``). The trunk serves the training's perceptual loss; the trunk plus the file's
learned per-channel linear heads give the evaluation's LPIPS-style distance.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

VGG_WEIGHTS_ENV = "MMFA_VGG_WEIGHTS"
_VGG_STAGES = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


class _BlurDownsample(nn.Module):
    """stlpips' anti-aliased stride-2 downsampling: reflect pad 2, 3×3 binomial blur, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = a[:, None] * a[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class VGGTrunk(nn.Module):
    """VGG16 feature trunk laid out as stlpips' ``vggnet(variant='shift_tolerant')`` so its state dict loads
    unchanged; returns the last ReLU of each requested stage (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).

    Input: B×3×H×W in [0, 1]; ImageNet normalisation is applied inside (stlpips' scaling layer).
    """

    def __init__(self, stages: Sequence[int] = (1, 2, 3, 4)):
        super().__init__()
        self.stages = sorted(stages)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.slices = nn.ModuleList()
        idx, prev = 0, 3
        for s, widths in enumerate(_VGG_STAGES[: self.stages[-1]]):
            block = nn.Sequential()
            if s > 0:  # max-pool stride 1 + blur-downsample (shift tolerant) instead of max-pool stride 2
                block.add_module(str(idx), nn.MaxPool2d(2, stride=1))
                block.add_module(str(idx + 1), _BlurDownsample(prev))
                idx += 2
            for w in widths:
                block.add_module(str(idx), nn.Conv2d(prev, w, 3, padding=1))
                block.add_module(str(idx + 1), nn.ReLU(inplace=True))
                idx, prev = idx + 2, w
            self.slices.append(block)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, path: str | Path) -> None:
        """Load stlpips' ``vgg_shift_tolerant.pth`` or a slim copy written by :meth:`save_slim` (.safetensors)."""
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = {k: v.float() for k, v in load_file(str(path)).items()}
            needed = {k for k in self.state_dict()}
            missing = sorted(needed - set(state))
            if missing:
                raise ValueError(f"{path} lacks {missing[0]} (it holds fewer VGG stages than asked for)")
            self.load_state_dict({k: state[k] for k in needed}, strict=True)
        else:
            self.load_stlpips(path)

    def save_slim(self, path: str | Path, dtype: torch.dtype = torch.float16) -> None:
        """Write just this trunk's stages (half precision by default: ~15 MB for stages 1-4 instead of the
        59 MB .pth), e.g. to carry to a machine without stlpips-pytorch."""
        from safetensors.torch import save_file

        from .atomic import atomic_path

        tensors = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous()
                   for k, v in self.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "mmfa-vgg16-st", "stages": str(self.stages[-1])})

    def load_stlpips(self, path: str | Path) -> None:
        """Load the trunk from stlpips' ``vgg_shift_tolerant.pth`` (tensors only, weights_only=True)."""
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        mine = {}
        for key, value in state.items():
            if key.startswith("net.slice"):
                stage = int(key[len("net.slice")]) - 1
                if stage < len(self.slices):
                    mine[f"slices.{stage}.{key.split('.', 2)[2]}"] = value
            elif key == "scaling_layer.shift":
                mine["shift"] = value
            elif key == "scaling_layer.scale":
                mine["scale"] = value
        self.load_state_dict(mine, strict=True)

    def train(self, mode: bool = True) -> VGGTrunk:
        return super().train(False)  # frozen: always in eval mode

    def forward(self, image: Tensor) -> list[Tensor]:
        h = ((image * 2 - 1) - self.shift.to(image.dtype)) / self.scale.to(image.dtype)
        out = []
        for i, block in enumerate(self.slices, start=1):
            h = block(h)
            if i in self.stages:
                out.append(h)
        return out


def find_vgg_weights(path: str | Path | None = None) -> Path | None:
    """The shift-tolerant VGG16 weights (stlpips' .pth or a slim .safetensors): ``path``, else
    $MMFA_VGG_WEIGHTS, else the installed stlpips-pytorch package's file (located without importing the
    package, which pulls IPython). None if not found."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"VGG weights {p} not found")
        return p
    env = os.environ.get(VGG_WEIGHTS_ENV)
    if env:
        return find_vgg_weights(env)
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        p = Path(folder) / "weights" / "vST0.0" / "vgg_shift_tolerant.pth"
        if p.is_file():
            return p
    return None


class LPIPSDistance(nn.Module):
    """LPIPS-style distance with the shift-tolerant VGG16 and its learned linear heads: B×3×H×W pairs → B."""

    def __init__(self):
        super().__init__()
        self.trunk = VGGTrunk((1, 2, 3, 4, 5))
        self.heads = nn.ModuleList(nn.Conv2d(stage[-1], 1, 1, bias=False) for stage in _VGG_STAGES)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        total = 0
        for fa, fb, head in zip(self.trunk(a), self.trunk(b), self.heads):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips(path: str | Path | None = None) -> LPIPSDistance:
    """The LPIPS distance from stlpips' full ``vgg_shift_tolerant.pth`` (a slim copy lacks the heads)."""
    path = find_vgg_weights(path)
    if path is None:
        raise FileNotFoundError(
            "pretrained VGG16 weights not found: install the 'eval' extra (stlpips-pytorch) or set "
            f"${VGG_WEIGHTS_ENV} to vgg_shift_tolerant.pth"
        )
    model = LPIPSDistance()
    model.trunk.load_stlpips(path)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for i, head in enumerate(model.heads):
        key = f"lin{i}.model.1.weight"
        if key not in state:
            raise ValueError(f"{path} has no LPIPS heads ({key}); give stlpips' full vgg_shift_tolerant.pth")
        head.weight.data.copy_(state[key])
    model.requires_grad_(False)
    return model.eval()
