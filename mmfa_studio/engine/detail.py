"""The render at the photo's own resolution: the generator's last blend made again at N×N from an N-px crop.

The model renders S×S (256): pasted into a large photo, that face kept 3–6 % of the photo's fine detail. But
its output is m · warp(source, flow) + (1 − m) · painted, and where the blend m is near 1 (skin, hair: almost
everywhere at small edits) the detail is the source's own. So the same blend is made here at N×N:

    detail = region · (m↑ · warp(photo crop, flow↑) + (1 − m↑) · painted↑) + (1 − region↑) · photo crop

with ↑ a bilinear upsampling (pixel centres, as the model's). Only the network's painting (mouth interior,
disocclusions) stays at the model's resolution. OpenCV does it on the host: its remap and blends are several
times faster than torch's CPU grid_sample at a megapixel, and the parts copied off a GPU are small.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from mmfa_studio.model import RenderResult


@dataclass
class DetailParts:
    """What the detail render needs from one batch of model renders (host arrays, float32 unless noted)."""

    blend: np.ndarray  # B×S×S, the weight of the warped source
    painted: np.ndarray  # B×S×S×3 uint8, the network's own painting
    flow: np.ndarray  # B×h×w×2, backward flow in normalised coordinates (grid_sample's, align_corners=False)
    region: np.ndarray | None  # B×h×w head region (the source outside it), or None

    @classmethod
    def of(cls, result: RenderResult) -> DetailParts:
        return cls.from_tensors(detail_tensors(result))

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor | None]) -> DetailParts:
        return cls(**{name: None if t is None else t.cpu().numpy() for name, t in tensors.items()})


def detail_tensors(result: RenderResult) -> dict[str, torch.Tensor | None]:
    """The parts as device tensors (what a CUDA graph keeps as its outputs), in :class:`DetailParts`' layout."""
    out = result.output
    painted = out.painted.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    region = None if result.region is None else result.region.float().contiguous()
    return {"blend": out.blend[:, 0].float().contiguous(), "painted": painted,
            "flow": out.image_flow.float().contiguous(), "region": region}


def render_detail(crop: np.ndarray, parts: DetailParts, i: int = 0, interpolation: int = cv2.INTER_CUBIC
                  ) -> np.ndarray:
    """Render ``i`` of ``parts`` at the size of ``crop`` (N×N×3 uint8, the model's source crop at N px).

    The warp samples the photo bicubically (the model's grid_sample is bilinear): under an edit every pixel is
    sampled between the photo's pixels, and bilinear sampling there blurs the finest detail."""
    n = crop.shape[0]
    up = lambda a: cv2.resize(a, (n, n), interpolation=cv2.INTER_LINEAR)
    flow = up(parts.flow[i])
    # normalised (align_corners=False) → pixel centres: x = ((u + 1)·N − 1) / 2
    map_x = (flow[..., 0] + 1.0) * (n / 2) - 0.5
    map_y = (flow[..., 1] + 1.0) * (n / 2) - 0.5
    warped = cv2.remap(crop, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)
    blend = up(parts.blend[i])
    out = cv2.blendLinear(warped, up(parts.painted[i]), blend, 1.0 - blend)
    if parts.region is not None:
        region = up(parts.region[i])
        out = cv2.blendLinear(out, crop, region, 1.0 - region)
    return out


__all__ = ["DetailParts", "detail_tensors", "render_detail"]
