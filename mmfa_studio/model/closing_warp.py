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
from dataclasses import dataclass

import cv2
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
    # As complex numbers the best similarity is q ≈ c·p + t, with c = Σ conj(p̃)·q̃ / Σ |p̃|² over the centred
    # points: a closed form, no linear solve.
    p_mean, q_mean = source.mean(1, keepdim=True), driving.mean(1, keepdim=True)
    p, q = source - p_mean, driving - q_mean
    norm = p.pow(2).sum((1, 2)).clamp_min(1e-12)[:, None]
    a = (p * q).sum((1, 2))[:, None] / norm  # the real part of c
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(1, keepdim=True) / norm  # its imaginary part
    fitted = torch.stack([a * p[..., 0] - b * p[..., 1], b * p[..., 0] + a * p[..., 1]], dim=-1)
    return (fitted - q).norm(dim=-1).amax(dim=-1)


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


SUBPIXEL_BITS = 4  # the triangles' corners are rasterised to 1/16 of a pixel


def _map_triangles(flow: Tensor, replaced: Tensor, vertices_d: Tensor, vertices_s: Tensor, triangles: Tensor,
                   h: int, w: int) -> None:
    """Write into ``flow`` (H×W×2) the piecewise-affine map of the triangles (driving → source vertices, V×2), and
    mark in ``replaced`` (H×W×1) the pixels it covers.

    Each pixel takes the affine map of the triangle drawn over it: the triangles are rasterised into a label
    image on the host (OpenCV), then every pixel's map is one small product, rather than every pixel tested
    against every triangle. Thin triangles are drawn first, so a lid closed to a line, whose strip of triangles
    has next to no area, shows its neighbours' maps; an edge pixel drawn by either neighbour gets nearly the same
    source point, since their maps agree along the edge."""
    corners = vertices_d[triangles].transpose(1, 2)  # T×2×3
    frame = torch.cat([corners, torch.ones_like(corners[:, :1])], dim=1)  # T×3×3, columns (x, y, 1)
    to_weights, info = torch.linalg.inv_ex(frame)  # (x, y, 1) → the triangle's barycentric weights
    area = (frame[:, 0, 1] - frame[:, 0, 0]) * (frame[:, 1, 2] - frame[:, 1, 0]) \
        - (frame[:, 1, 1] - frame[:, 1, 0]) * (frame[:, 0, 2] - frame[:, 0, 0])  # signed, twice the area
    usable = (info == 0) & (area.abs() > 1e-12) & torch.isfinite(to_weights).flatten(1).all(1)
    to_source = vertices_s[triangles].transpose(1, 2) @ to_weights  # T×2×3: (x, y, 1) → source point
    host = vertices_d.detach().double().cpu().numpy()  # one read to the host
    if not np.isfinite(host).all():
        return
    pixels = (host + 1) * np.array([w, h]) / 2 - 0.5  # pixel centres at integers
    x0, y0 = np.maximum(np.floor(pixels.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(pixels.max(0)).astype(int), [w - 1, h - 1])
    if x1 < x0 or y1 < y0:
        return
    labels = np.full((y1 - y0 + 1, x1 - x0 + 1), -1, dtype=np.int32)
    fixed = np.round((pixels[triangles.cpu().numpy()] - [x0, y0]) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    usable_host, area_host = usable.cpu().numpy(), area.abs().cpu().numpy()
    for t in np.argsort(area_host, kind="stable"):
        if usable_host[t]:
            cv2.fillConvexPoly(labels, fixed[t], int(t), lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    label = torch.from_numpy(labels).to(flow.device)
    xs = (torch.arange(x0, x1 + 1, device=flow.device, dtype=torch.float32) + 0.5) * 2 / w - 1
    ys = (torch.arange(y0, y1 + 1, device=flow.device, dtype=torch.float32) + 0.5) * 2 / h - 1
    # each pixel's map (its triangle's 2×3 matrix) applied as three products and a sum, not a matrix product per
    # pixel
    maps = to_source[label.clamp_min(0)]  # h'×w'×2×3
    values = maps[..., 0] * xs[None, :, None] + maps[..., 1] * ys[:, None, None] + maps[..., 2]  # h'×w'×2
    inside = ((label >= 0) & torch.isfinite(values).all(-1))[..., None]
    window = flow[y0:y1 + 1, x0:x1 + 1]
    window.copy_(torch.where(inside, values, window))
    replaced[y0:y1 + 1, x0:x1 + 1] |= inside


__all__ = ["ClosingRegion", "similarity_misfit", "closing_flow", "mesh_triangles", "outer_ring"]
