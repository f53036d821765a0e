"""Dense expression anchors in the engine: a source's tracked mesh anchors, its anchor-expression code, and where a
render must put the anchors.

With a checkpoint that has the anchor expression VAE (``model.anchor_latent_dim > 0``, ``mmfa-studio
fit-expression``), the expression latent users edit is that VAE's: δ = decode(z) moves the source's anchors in
the canonical frame, by decode(z) − decode(z_src) less any whole-face motion that change carries (so an
expression edit does not turn the head, and a zero edit leaves the anchors exactly where they are); the anchors
are then posed with the target's rotation, scale and translation like the keypoints (``model/anchors.py``) and
carried by the dense motion's spline. A driver's tracked non-rigid movement can be added in the image plane.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..face import Face
from ..face.anchors import (
    FaceAnchors,
    anchor_measures,
    canonical_anchors,
    closing_pairs,
    face_anchors,
    with_eye_openings,
    without_head_motion,
)
from ..model import TargetMotion
from ..model.anchor_expression import AnchorExpressionVAE
from ..model.anchors import pose_anchors
from ..model.closing_warp import ClosingRegion
from ..model.dense_motion import AnchorPoints
from ..motion import ExpressionControls


@dataclass(frozen=True)
class SourceAnchors:
    """A prepared source's anchors (:class:`~mmfa_studio.face.anchors.FaceAnchors`) and their expression code."""

    face: FaceAnchors
    code: np.ndarray  # (Z,) the anchor VAE's μ of the source's layout


def encode_layout(vae: AnchorExpressionVAE, layout: np.ndarray) -> np.ndarray:
    """The latent μ (Z,) of one canonical anchor layout (N×3)."""
    with torch.inference_mode():
        mu, _ = vae.encode(torch.as_tensor(layout, dtype=torch.float32, device=vae.scale.device)[None])
    return mu[0].cpu().numpy()


def face_layout(face: Face) -> np.ndarray | None:
    """A tracked face's canonical anchor layout (N×3; any image frame: it is pose- and size-free); None without a
    3D mesh."""
    if face.landmarks_3d is None or len(face.landmarks_3d) < 468:
        return None
    return canonical_anchors(face.landmarks_3d)


def face_code(vae: AnchorExpressionVAE, face: Face) -> np.ndarray | None:
    """The anchor latent of a tracked face; None without a 3D mesh."""
    layout = face_layout(face)
    return None if layout is None else encode_layout(vae, layout)


def follow_change(vae: AnchorExpressionVAE, source_code: np.ndarray, change: np.ndarray, start: np.ndarray,
                  openings: OpeningTargets | None = None, steps: int = 3, stay: float = 1e-4) -> np.ndarray:
    """The latent (Z,) whose decoded change from ``source_code`` is ``change`` (N×3, canonical units: the
    driver's anchor change since its reference, so pose- and size-free).

    ``start``, the encoder's relative code z_src + (z_drv − z_ref), is refined by ``steps`` Gauss-Newton steps
    on the decoder (``stay`` damps them and keeps the code near ``start``; no change asked, none made). The
    encoder reads one face at a time and cannot tell a new person's features from their expression, so on
    people it was not fitted to its relative code carries only part of the change (the model card has the
    figures). ``openings``: the mouth and eye openings the source should reach as well
    (:meth:`OpeningTargets.following`), weighed against the anchors' change."""
    device = vae.scale.device
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)
    with torch.inference_mode():
        own = vae.decode(as_tensor(source_code)[None])[0]  # N×3
        wanted = (own.flatten() + as_tensor(change).flatten()) / vae.scale  # in the offsets' RMS
        anchor = as_tensor(start)
        z = anchor.clone()
        eye = torch.eye(len(z), device=device)
        opened = None if openings is None else openings.on(vae, as_tensor(source_code), own)
        weight = None if openings is None else as_tensor(openings.weights)
        for _ in range(steps):
            decoded, jacobian = vae.decode_jacobian(z)  # (N·3,), (N·3)×Z
            miss = decoded / vae.scale - wanted
            jacobian = jacobian / vae.scale
            n = len(miss)
            normal, gradient = jacobian.T @ jacobian / n, jacobian.T @ miss / n
            if opened is not None:  # the openings' rows, weighted
                opening_miss, opening_slope = opened(z)
                normal = normal + opening_slope.T @ (weight[:, None] * opening_slope)
                gradient = gradient + opening_slope.T @ (weight * opening_miss)
            z = z - torch.linalg.solve(normal + stay * eye, gradient + stay * (z - anchor))
    return z.cpu().numpy()


@dataclass(frozen=True)
class OpeningTargets:
    """Mouth and eye openings (:data:`OPENINGS`, gap over width) for a source's anchors to reach: its canonical
    ``layout`` (N×3, at its own code) and the ``wanted`` openings (3,), each pulled with ``weight``."""

    layout: np.ndarray
    wanted: np.ndarray
    weights: tuple[float, float, float] = (0.0, 16.0, 16.0)

    @classmethod
    def following(cls, source: np.ndarray, reference: np.ndarray, driving: np.ndarray) -> OpeningTargets:
        """The openings that follow a driver (reference → driving layouts) on a source layout: the mouth and a
        widening eye by the driver's change of their ratio; a closing eye by the driver's factor, so that a
        driver's blink closes the source's eye however wide either is."""
        def openings(layout: np.ndarray) -> np.ndarray:
            measures = anchor_measures(layout)
            return np.array([float(measures[name]) for name in OPENINGS])

        src, ref, drv = map(openings, (source, reference, driving))
        wanted = src + drv - ref
        closing = (drv[1:] < ref[1:]) & (ref[1:] > 0.05)  # widening stays a change: a squinting reference's
        wanted[1:] = np.where(closing, src[1:] * drv[1:] / np.maximum(ref[1:], 1e-6), wanted[1:])  # factor bulged
        return cls(source, np.maximum(wanted, 0.0))

    def on(self, vae: AnchorExpressionVAE, source_code: torch.Tensor, decoded: torch.Tensor | None = None,
           step: float = 1e-2):
        """A function z (Z,) → (the openings' miss (3,), their slope 3×Z) for a source of code ``source_code``
        (``decoded``: its decoded offsets N×3, if the caller has them); the slope by finite differences over one
        batched decode (the measures' own Jacobian cost ~10 ms)."""
        device = source_code.device
        if decoded is None:
            decoded = vae.decode(source_code[None])[0]
        base = torch.as_tensor(self.layout, dtype=torch.float32, device=device) - decoded
        wanted = torch.as_tensor(self.wanted, dtype=torch.float32, device=device)
        steps = torch.eye(len(source_code), device=device) * step

        def opened(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            measures = anchor_measures(base + vae.decode(torch.cat([z[None], z + steps])))
            values = torch.stack([measures[name] for name in OPENINGS])  # 3×(1 + Z)
            return values[:, 0] - wanted, (values[:, 1:] - values[:, :1]) / step

        return opened


OPENINGS = ("mouth_open", "eye_open_left", "eye_open_right")  # what a photo's expression is matched on


def match_openings(vae: AnchorExpressionVAE, anchors: SourceAnchors, photo_layout: np.ndarray, start: np.ndarray,
                   steps: int = 4, stay: float = 1e-3) -> np.ndarray:
    """The latent (Z,) near ``start`` (the encoder's code of a photo) under which the source's anchors open the
    mouth and each eye as far as the photo's canonical anchors ``photo_layout`` (N×3) do, in the ratios of
    :func:`~mmfa_studio.face.anchors.anchor_measures` (gap over width, so one person's proportions carry to
    another's). ``steps`` Gauss-Newton steps; ``stay`` keeps the rest of the code near ``start``.

    Why: the encoder reads one face at a time and takes part of a new person's features for their expression
    (and part of their expression for features), so its code alone opened a source's mouth to about two thirds
    of the photo's (the model card has the figures). LivePortrait's eye and lip retargeting conditions on the
    same two ratios."""
    device = vae.scale.device
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)
    with torch.inference_mode(False), torch.no_grad():
        measured = anchor_measures(as_tensor(photo_layout))
        wanted = torch.stack([measured[name] for name in OPENINGS])
        base = as_tensor(anchors.face.layout) - vae.decode(as_tensor(anchors.code)[None])[0]

        def miss(z: torch.Tensor) -> torch.Tensor:
            layout = base + vae.decode(z[None])[0]
            measures = anchor_measures(layout)
            return torch.stack([measures[name] for name in OPENINGS]) - wanted

        anchor = as_tensor(start)
        z = anchor.clone()
        eye = torch.eye(len(z), device=device)
        for _ in range(steps):
            jacobian = torch.func.jacfwd(miss)(z).float()  # 3×Z (forward mode through a power gives fp64)
            z = z - torch.linalg.solve(jacobian.T @ jacobian + stay * eye,
                                       jacobian.T @ miss(z) + stay * (z - anchor))
    return z.cpu().numpy()


@dataclass(frozen=True)
class OpeningControl:
    """How an opening control is fitted to a face: the ``moved`` measures must change as the ``reference``
    control changes them on the mean face — ``kind`` "factor" (a closing eye closes by the same factor, so a wide
    eye closes as fully as a narrow one) or "rise" (a mouth opens by the same rise of its ratio) — while the
    ``held`` measures stay; ``helpers`` are other controls' steps that may be added (sign: which way)."""

    moved: tuple[str, ...]
    kind: str
    reference: str
    held: tuple[str, ...] = ()
    helpers: tuple[tuple[str, float], ...] = ()


# A wink closes its eye as far as a blink does (the training frames hold few one-eyed blinks: their 99th percentile
# closed the mean face's eye only to 0.14 of its width), and a blink closes both eyes alike (one step closed one
# eye of a held-out portrait and left the other half open).
OPENING_CONTROLS: dict[str, OpeningControl] = {
    "mouth_open": OpeningControl(("mouth_open",), "rise", "mouth_open"),
    "blink": OpeningControl(("eye_open_left", "eye_open_right"), "factor", "blink",
                            helpers=(("blink_left", 1.0), ("blink_right", 1.0))),
    "blink_left": OpeningControl(("eye_open_left",), "factor", "blink", held=("eye_open_right",),
                                 helpers=(("blink", 1.0), ("blink_right", -1.0))),
    "blink_right": OpeningControl(("eye_open_right",), "factor", "blink", held=("eye_open_left",),
                                  helpers=(("blink", 1.0), ("blink_left", -1.0))),
}
CONTROL_STRENGTHS = np.linspace(0.0, 3.0, 61)  # the per-source scales of a control's direction that are tried
TRUSTED_LATENT = 5.0  # |z| (σ of the prior) beyond which a stronger step is not tried: the decoder never saw it


def fitted_controls(vae: AnchorExpressionVAE, anchors: SourceAnchors, controls: ExpressionControls
                    ) -> ExpressionControls:
    """``controls`` with each opening control (:data:`OPENING_CONTROLS`) fitted to this source, so that at 1 its
    anchors make the change its reference control makes on the mean face (``fit-expression`` fitted them there,
    to the training frames' 99th percentile): the eyes close by a blink's factor, the mouth opens by the same rise
    of its ratio. The latent is nonlinear in a face's own expression: one step closed the mean face's eyes to 0.04
    of their width but a wide-eyed child's only from 0.46 to 0.26, and one validation source's not at all.

    The control's own step is scaled by the best of :data:`CONTROL_STRENGTHS`, then each helper's step added by the
    best of them (one pass, each choice keeping the latent within :data:`TRUSTED_LATENT` past the fitted step);
    the other controls are as fitted."""
    names = [name for name in OPENING_CONTROLS if name in controls.directions]
    if not names:
        return controls
    device = vae.scale.device
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)
    code = as_tensor(anchors.code)
    strengths = as_tensor(CONTROL_STRENGTHS)
    fitted = dict(controls.directions)
    with torch.inference_mode():
        base = as_tensor(anchors.face.layout) - vae.decode(code[None])[0]
        own = anchor_measures(as_tensor(anchors.face.layout)[None])  # the face as it is (base + decode(code))
        for name in names:
            spec = OPENING_CONTROLS[name]
            reference = as_tensor(controls.directions.get(spec.reference, controls.directions[name]))
            mean_face = anchor_measures(vae.neutral + vae.decode(torch.stack([torch.zeros_like(reference),
                                                                             reference])))  # (before, after) each
            wanted = {m: own[m][0] * mean_face[m][1] / mean_face[m][0].clamp_min(1e-6) if spec.kind == "factor"
                      else own[m][0] + mean_face[m][1] - mean_face[m][0] for m in spec.moved}
            wanted.update({m: own[m][0] for m in spec.held})
            def miss(steps: torch.Tensor, wanted=wanted) -> torch.Tensor:  # S×Z latent steps → S
                tried = anchor_measures(base + vae.decode(code + steps))  # one decode for every measure
                return sum((tried[m] - value).pow(2) for m, value in wanted.items())

            step = torch.zeros_like(code)
            for helper, sign in ((name, 1.0),) + spec.helpers:
                if helper not in controls.directions:
                    continue
                direction = sign * as_tensor(controls.directions[helper])
                steps = step + strengths[:, None] * direction  # S×Z
                trusted = (code + steps).abs().amax(-1) <= TRUSTED_LATENT
                allowed = trusted | ((strengths <= 1) & torch.tensor(helper == name, device=device))
                if not bool(allowed.any()):
                    continue
                scores = miss(steps).masked_fill(~allowed, float("inf"))
                step = steps[int(scores.argmin())]
            fitted[name] = step.tolist()
    return ExpressionControls(fitted, controls.ranges)


def source_anchors(vae: AnchorExpressionVAE, face: Face | None, crop_size: int) -> SourceAnchors | None:
    """:class:`SourceAnchors` of the source face tracked in its model crop; None without one."""
    found = face_anchors(face, crop_size) if face is not None else None
    if found is None:
        return None
    return SourceAnchors(found, encode_layout(vae, found.layout))


def render_anchors(vae: AnchorExpressionVAE, anchors: SourceAnchors, own_motion, target: TargetMotion,
                   latents: Sequence[np.ndarray | None], shifts: Sequence[np.ndarray | None] | None = None,
                   eye_openings: Sequence[np.ndarray | None] | None = None) -> AnchorPoints:
    """Where the B renders of ``target`` put the source's anchors.

    ``own_motion``: the source encoding's HeadMotion; ``latents``: per render the anchor latent to show (None:
    the source's own expression); ``shifts``: per render an N×2 image-plane movement (normalised units) or None;
    ``eye_openings``: per render the eyes' openings (left, right; NaN: as the latent leaves it) or None, reached
    by moving the lids after the latent (:func:`~mmfa_studio.face.anchors.with_eye_openings`).
    """
    device = target.yaw.device
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)
    batch = target.yaw.shape[0]
    points = as_tensor(anchors.face.points)[None].expand(batch, -1, -1).clone()  # B×N×3
    wanted = [i for i, z in enumerate(latents) if z is not None]
    change = np.zeros((batch, *anchors.face.layout.shape))  # canonical units
    if wanted:
        with torch.inference_mode():
            z = as_tensor(np.stack([latents[i] for i in wanted]))
            decoded = vae.decode(z) - vae.decode(as_tensor(anchors.code)[None])
        change[wanted] = without_head_motion(anchors.face.layout, decoded.cpu().numpy())
    reopened = [i for i, o in enumerate(eye_openings or ()) if o is not None]
    for i in reopened:
        layout = anchors.face.layout + change[i]
        change[i] = with_eye_openings(layout, eye_openings[i]) - anchors.face.layout
    moved = sorted(set(wanted) | set(reopened))
    if moved:
        points[moved] += as_tensor(change[moved]) @ as_tensor(anchors.face.to_points)
    shift = None
    if shifts is not None and any(s is not None for s in shifts):
        shift = torch.zeros(batch, points.shape[1], 2, device=device)
        for i, s in enumerate(shifts):
            if s is not None:
                shift[i] = as_tensor(s)
    posed = pose_anchors(points, own_motion.yaw, own_motion.pitch, own_motion.roll, own_motion.translation,
                         own_motion.scale, target.yaw, target.pitch, target.roll, target.translation, target.scale,
                         shift)
    # The source side is where the anchors lie in the source image: the unedited points.
    source = as_tensor(anchors.face.points[:, :2])[None].expand(batch, -1, -1)
    # the openings' mesh only where an expression moves them: a pose alone moves them rigidly, as the spline does
    closing = closing_regions(str(device)) if moved or shift is not None else ()
    return AnchorPoints(source=source, driving=keep_lids_apart(source, posed.driving), closing=closing)


@functools.lru_cache(maxsize=4)
def closing_regions(device: str) -> tuple[ClosingRegion, ...]:
    """The eyes' and the mouth's openings as the model's :class:`ClosingRegion` index tensors on ``device``, made
    once (every render with an expression asks)."""
    return ClosingRegion.all_of(closing_pairs(), device)


def keep_lids_apart(source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
    """``driving`` anchors (B×N×2) with no lid or inner lip taken past its partner (:func:`closing_pairs`):
    each facing pair keeps at least the pair's least gap across its corners' line, or the source's own gap
    where that is smaller (a closed mouth stays closed). A narrow eye under a blink made for the average one,
    or a wide-eyed driver's blink, would otherwise cross the lids and fold the warp."""
    def across(points, corners):  # B×2: unit normal of the corners' line, and the corner distance
        axis = points[:, corners[1]] - points[:, corners[0]]
        width = axis.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return torch.stack([-axis[:, 1], axis[:, 0]], dim=-1) / width, width

    driving = driving.clone()
    for pair in closing_pairs():
        normal_source, _ = across(source, pair.corners)
        normal, width = across(driving, pair.corners)
        gap_source = ((source[:, pair.lower] - source[:, pair.upper]) * normal_source[:, None]).sum(-1)  # B×K
        # the normal pointing from the upper to the lower side, in both frames (an in-plane turn keeps the side)
        side = torch.where(gap_source.sum(-1, keepdim=True) < 0, -1.0, 1.0)
        normal, gap_source = normal * side, gap_source * side
        gap = ((driving[:, pair.lower] - driving[:, pair.upper]) * normal[:, None]).sum(-1)
        least = torch.minimum(pair.least_gap * width, gap_source.clamp_min(0))
        lift = ((least - gap).clamp_min(0) / 2)[..., None] * normal[:, None]  # B×K×2, half to each side
        driving[:, pair.upper] -= lift
        driving[:, pair.lower] += lift
    return driving


__all__ = ["CONTROL_STRENGTHS", "OPENING_CONTROLS", "OPENINGS", "OpeningControl", "OpeningTargets", "SourceAnchors",
           "closing_regions", "encode_layout", "face_code", "face_layout", "fitted_controls", "follow_change",
           "keep_lids_apart", "match_openings", "render_anchors", "source_anchors"]
