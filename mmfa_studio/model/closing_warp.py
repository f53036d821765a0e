"""Closing warp: around each eye and the mouth, the backward flow is a piecewise-affine map through the anchors.

A lid that closes must hide the eye: the band between the closed lids is thinner than a pixel, and the lid's
skin, stretched, covers the rest. The thin-plate spline through the anchors cannot fold that sharply: regularised,
it misses the lids and leaves a slit of iris; exact, it overshoots far above and below them. A triangle mesh maps
each triangle affinely: exact at the anchors, no overshoot, no fold while the lids keep apart
(``engine.anchors.keep_lids_apart``). The model card has the measurements.

Each region's mesh has two rings: the opening's own (the corners and the facing upper and lower anchors) and an
ellipse around it, 1.5 openings wide and one tall, set by the corners in the driving frame. The inner ring's
triangles map the opening, the band between the rings maps the lids and lips; the outer ring takes its source
points from the flow itself, so the mesh meets the rest of the map where it ends. Evaluated at the image's
resolution, since a closed lid's band is far below a pixel of the 64² flow, and only for an opening that an
expression reshaped.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .blocks import full_precision

OUTER_WIDTH = 1.5  # the outer ring's width, in opening widths (corner to corner)
OUTER_HEIGHT = 1.0  # its height
OUTER_MARGIN = 0.15  # the least room between an opened lip or lid and the outer ring, in opening widths
# An opening whose anchors moved, to within this many pixels, only as the image-plane turn, zoom and shift that
# fits them best keeps the flow: the spline follows such a move as closely as the mesh (a zero or small edit then
# costs nothing here, and switching at a pixel moves no lid by more than a fraction of one).
RESHAPED_PX = 1.0


@dataclass(frozen=True)
class ClosingRegion:
    """An opening (an eye, the mouth) as rows of the anchors: ``upper``[i] faces ``lower``[i] (K each), both
    running from ``corners``[0] to ``corners``[1]."""

    upper: Tensor  # K, long
    lower: Tensor  # K, long
    corners: Tensor  # 2, long

    @classmethod
    def of(cls, upper, lower, corners, device: torch.device | str = "cpu") -> ClosingRegion:
        as_rows = lambda rows: torch.as_tensor(np.asarray(rows), dtype=torch.long, device=device)
        return cls(as_rows(upper), as_rows(lower), as_rows(corners))

    @classmethod
    def all_of(cls, openings, device: torch.device | str = "cpu") -> tuple[ClosingRegion, ...]:
        """Regions of openings given as objects with ``upper``, ``lower`` and ``corners`` rows
        (``face.anchors.closing_pairs()``)."""
        return tuple(cls.of(o.upper, o.lower, o.corners, device) for o in openings)

    @property
    def ring(self) -> Tensor:
        """The opening's outline, M = 2K + 2 rows: a corner, the upper side, the other corner, the lower side back."""
        return torch.cat([self.corners[:1], self.upper, self.corners[1:], self.lower.flip(0)])


@functools.lru_cache(maxsize=8)
def mesh_triangles(k: int) -> Tensor:
    """T×3 vertex indices of a region's mesh: the inner ring (M = 2K + 2 vertices, :attr:`ClosingRegion.ring`
    order) then the outer ring (M more, the same order). Inside the opening a strip between facing anchors; between
    the rings a band of quads, each split in two. Cached (every render asks): do not modify it."""
    m = 2 * k + 2
    upper = lambda i: 1 + i
    lower = lambda i: m - 1 - i
    inner = [(0, upper(0), lower(0))]
    for i in range(k - 1):
        inner += [(upper(i), upper(i + 1), lower(i)), (upper(i + 1), lower(i + 1), lower(i))]
    inner.append((upper(k - 1), k + 1, lower(k - 1)))
    band = []
    for j in range(m):
        n = (j + 1) % m
        band += [(j, m + j, m + n), (j, m + n, n)]
    return torch.tensor(inner + band, dtype=torch.long)


def outer_ring(driving_ring: Tensor, source_ring: Tensor, k: int) -> Tensor:
    """B×M×2 driving points of the outer ring: an ellipse around the driving corners (axis from corner 0 to corner
    ``k + 1`` of the ring), each point at its inner vertex's place along the axis in the source."""
    def frame(ring):
        c0, c1 = ring[:, 0], ring[:, k + 1]
        axis = c1 - c0
        width = axis.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        along = axis / width
        return (c0 + c1) / 2, along, torch.stack([-along[:, 1], along[:, 0]], dim=-1), width

    centre_s, along_s, normal_s, width_s = frame(source_ring)
    centre_d, along_d, normal_d, width_d = frame(driving_ring)
    # each vertex's place along the corners' axis, −1 … 1 (the corners at ±1)
    t = (2 * ((source_ring - centre_s[:, None]) * along_s[:, None]).sum(-1) / width_s).clamp(-1, 1)  # B×M
    # which side of the axis the lower anchors lie on, in the source (open) where it is clear; a turn of the
    # corners turns the normal with them, so it holds in the driving frame too
    across = ((source_ring - centre_s[:, None]) * normal_s[:, None]).sum(-1)  # B×M
    down = torch.where(across[:, k + 2:].mean(-1) >= across[:, 1:k + 1].mean(-1), 1.0, -1.0)[:, None]  # B×1
    side = torch.zeros_like(t)
    side[:, 1:k + 1], side[:, k + 2:] = -1.0, 1.0  # upper, lower; the corners stay on the axis
    height = OUTER_HEIGHT / 2 * width_d * (1 - t.pow(2)).clamp_min(0).sqrt()  # B×M
    # a lip opened wider than the ellipse keeps a margin inside it (no fold between the rings)
    reach = ((driving_ring - centre_d[:, None]) * normal_d[:, None]).sum(-1).abs()
    height = torch.where(side != 0, torch.maximum(height, reach + OUTER_MARGIN * width_d), height)
    offset = ((OUTER_WIDTH / 2 * width_d * t)[..., None] * along_d[:, None]
              + (down * side * height)[..., None] * normal_d[:, None])
    return centre_d[:, None] + offset


def similarity_misfit(source: Tensor, driving: Tensor) -> Tensor:
    """B: the largest distance (normalised units) of ``driving`` points (B×M×2) from the similarity (turn in the
    image plane, zoom, shift) of ``source`` (B×M×2) that fits them best."""
    x, y = source[..., 0], source[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # x' = a·x − b·y + u, y' = b·x + a·y + v: linear in (a, b, u, v)
    rows = torch.cat([torch.stack([x, -y, one, zero], -1), torch.stack([y, x, zero, one], -1)], dim=1)  # B×2M×4
    target = torch.cat([driving[..., 0], driving[..., 1]], dim=1)[..., None]  # B×2M×1
    normal = rows.transpose(1, 2) @ rows + 1e-9 * torch.eye(4, device=rows.device)
    fitted = rows @ torch.linalg.solve(normal, rows.transpose(1, 2) @ target)
    m = source.shape[1]
    return (fitted - target)[..., 0].view(-1, 2, m).norm(dim=1).amax(dim=-1)


def closing_flow(flow: Tensor, source: Tensor, driving: Tensor, regions: tuple[ClosingRegion, ...]) -> Tensor:
    """``flow`` (B×H×W×2, backward, normalised coordinates) with each region replaced by its mesh's map.

    source, driving: B×N×2 anchors (normalised). Pixels outside every region's outer ring keep ``flow``. The mesh's
    map is a constant to training: a degenerate triangle (a tracked driving lid crossing its partner) has an
    infinite slope, and its gradient, though multiplied by zero, turned the dense motion's weights to NaN."""
    if not regions:
        return flow
    with full_precision(flow), torch.no_grad():
        b, h, w, _ = flow.shape
        mapped = flow.detach().float().clone()
        replaced = torch.zeros(b, h, w, 1, dtype=torch.bool, device=flow.device)
        for region in regions:
            k = len(region.upper)
            ring = region.ring
            inner_d, inner_s = driving[:, ring].float(), source[:, ring].float()
            reshaped = (similarity_misfit(inner_s, inner_d) * (h / 2) > RESHAPED_PX).tolist()  # B, one read
            if not any(reshaped):
                continue
            outer_d = outer_ring(inner_d, inner_s, k)
            # the outer ring's source points are where the flow takes them: the mesh meets the map it replaces
            outer_s = F.grid_sample(flow.detach().float().permute(0, 3, 1, 2), outer_d[:, None],
                                    align_corners=False, padding_mode="border")[:, :, 0].transpose(1, 2)  # B×M×2
            vertices_d, vertices_s = torch.cat([inner_d, outer_d], 1), torch.cat([inner_s, outer_s], 1)
            triangles = mesh_triangles(k).to(flow.device)
            for i in range(b):
                if reshaped[i]:
                    _map_triangles(mapped[i], replaced[i], vertices_d[i], vertices_s[i], triangles, h, w)
    if not bool(replaced.any()):
        return flow
    with full_precision(flow):
        return torch.where(replaced, mapped, flow.float()).to(flow.dtype)


def _map_triangles(flow: Tensor, replaced: Tensor, vertices_d: Tensor, vertices_s: Tensor, triangles: Tensor,
                   h: int, w: int) -> None:
    """Write into ``flow`` (H×W×2) the piecewise-affine map of the triangles (driving → source vertices, V×2), and
    mark in ``replaced`` (H×W×1) the pixels it covers."""
    # the pixels of the mesh's bounding box (pixel centres, normalised as grid_sample's align_corners=False)
    (lx, ly), (hx, hy) = torch.stack([vertices_d.amin(0), vertices_d.amax(0)]).tolist()  # one read to the host
    if not all(math.isfinite(v) for v in (lx, ly, hx, hy)):
        return
    to_px = lambda v, n: (v + 1) * n / 2 - 0.5
    x0, x1 = max(0, math.floor(to_px(lx, w))), min(w - 1, math.ceil(to_px(hx, w)))
    y0, y1 = max(0, math.floor(to_px(ly, h))), min(h - 1, math.ceil(to_px(hy, h)))
    if x1 < x0 or y1 < y0:
        return
    xs = (torch.arange(x0, x1 + 1, device=flow.device, dtype=torch.float32) + 0.5) * 2 / w - 1
    ys = (torch.arange(y0, y1 + 1, device=flow.device, dtype=torch.float32) + 0.5) * 2 / h - 1
    points = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).reshape(-1, 2)  # P×2 (x, y)
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)  # P×3
    # Per triangle, the 3×3 matrix taking (x, y, 1) to its barycentric weights, and the source affine map
    # (2×3) those weights give: each pixel's weights for every triangle in one product.
    corners = vertices_d[triangles].transpose(1, 2)  # T×2×3
    frame = torch.cat([corners, torch.ones_like(corners[:, :1])], dim=1)  # T×3×3, columns (x, y, 1)
    to_weights, info = torch.linalg.inv_ex(frame)
    flat = (frame[:, 0, 1] - frame[:, 0, 0]) * (frame[:, 1, 2] - frame[:, 1, 0]) \
        - (frame[:, 1, 1] - frame[:, 1, 0]) * (frame[:, 0, 2] - frame[:, 0, 0])
    usable = (info == 0) & (flat.abs() > 1e-12) & torch.isfinite(to_weights).flatten(1).all(1)
    to_weights = torch.where(usable[:, None, None], to_weights, torch.zeros_like(to_weights))
    weights = (homogeneous @ to_weights.reshape(-1, 3).T).view(len(points), -1, 3)  # P×T×3
    score = weights.amin(-1).masked_fill(~usable, -1.0)  # ≥ 0 inside a triangle
    best, index = score.max(dim=1)  # P
    to_source = vertices_s[triangles].transpose(1, 2) @ to_weights  # T×2×3
    values = (to_source[index] @ homogeneous[:, :, None])[..., 0]  # P×2
    window = flow[y0:y1 + 1, x0:x1 + 1]
    inside = ((best >= -1e-4) & torch.isfinite(values).all(-1)).view(window.shape[:2] + (1,))
    window.copy_(torch.where(inside, values.view(window.shape), window))
    replaced[y0:y1 + 1, x0:x1 + 1] |= inside


__all__ = ["ClosingRegion", "similarity_misfit", "closing_flow", "mesh_triangles", "outer_ring"]
