"""A loaded model's expression space: the latent z (Z values) that users edit, and what it stands for.

Where a checkpoint has the dense-anchor expression VAE (``mmfa-studio fit-expression``) the latent is that VAE's
and δ = decode(z) moves the face's mesh anchors (:mod:`.anchors`); otherwise it is the keypoint expression VAE's
and δ moves the K keypoints. :class:`ExpressionSpace` — an :class:`~.core.Engine`'s ``expressions`` — reads the
latent of a photo or of a tracked face, samples the prior, interpolates, adds named controls, decodes, and
measures how far the latent can move a face:

    z = engine.expressions.encode("smile.jpg")                  # (Z,) float32
    path = engine.expressions.interpolate(z, engine.expressions.sample(7), [0, 0.5, 1], mode="slerp")  # 3×Z
    engine.expressions.reach(3.0)                               # px a latent at ±3σ moves the face

Rendering a latent is the engine's (``Motion(expression=z)``); this module only reads and makes latents.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmfa_studio.face import Face
from mmfa_studio.model import MMFA

from ..motion import CONTROLS_KEY, INTERPOLATION_MODES, ExpressionControls, interpolate_latents
from .anchors import OpeningTargets, SourceAnchors, encode_layout, face_layout, follow_change, match_openings
from .errors import NoFaceFoundError

if TYPE_CHECKING:
    from .core import PreparedSource

# The engine's photo path, so that a photo is read one way: image → (H×W×3 uint8 RGB, the chosen face, a name
# for messages); and (photo, face) → the keypoint model's expression μ (Z,) of that face's crop.
FindFace = Callable[[np.ndarray | str | Path, int | None], tuple[np.ndarray, Face, str]]
ReadExpression = Callable[[np.ndarray, Face], np.ndarray]


def read_controls(metadata: Mapping[str, Any]) -> ExpressionControls | None:
    """A checkpoint header's named expression controls (None without); ValueError when they are malformed."""
    data = metadata.get(CONTROLS_KEY)
    return None if data is None else ExpressionControls.from_json(data)


class ExpressionSpace:
    """One model's expression latent: encode, sample, interpolate, control, decode, and its reach.

    Built by the engine, sharing its lock (model calls are serialised) and its precision (``autocast(cache)``).
    """

    def __init__(self, model: MMFA, device: torch.device, lock: threading.RLock,
                 autocast: Callable[[bool], AbstractContextManager], controls: ExpressionControls | None,
                 find_face: FindFace, read_expression: ReadExpression):
        self._model = model
        self._vae = model.expression_vae
        self._anchor_vae = model.anchor_expression  # None: the keypoint VAE's latent is the edited one
        self._device = device
        self._lock = lock
        self._autocast = autocast
        self.controls = controls  # named controls (``fit-expression``), or None
        self._find_face = find_face
        self._read_expression = read_expression
        self._recent_faces: deque[tuple[Face, np.ndarray, np.ndarray, np.ndarray]] = deque(maxlen=4)  # see _read_face
        self._last_following: tuple[tuple[np.ndarray, ...], OpeningTargets] | None = None  # see _following

    @property
    def latent_dim(self) -> int:
        """Z, the size of the latent that :class:`Motion`'s ``expression`` sets."""
        if self._anchor_vae is not None:
            return self._anchor_vae.latent_dim
        return self._model.cfg.latent_dim

    @property
    def image_size(self) -> int:
        return self._model.cfg.image_size

    # -- reading and making latents --------------------------------------------------------------------
    def encode(self, image: np.ndarray | str | Path, face_index: int | None = None,
               source: PreparedSource | None = None) -> np.ndarray:
        """The expression latent z = μ (Z,) of the face in a photo (largest face unless ``face_index``);
        ``NoFaceFoundError`` for no face (or, with the anchor VAE, no 3D mesh).

        ``source``: the photo's expression is for this prepared source, and with the anchor VAE the code is then
        refined so that the source's mouth and eyes open as far as the photo's do (:func:`.anchors.match_openings`)."""
        array, face, name = self._find_face(image, face_index)
        if self._anchor_vae is not None:
            read = self._read_face(face)
            if read is None:
                raise NoFaceFoundError(f"the face in {name} has no 3D mesh to read its expression from")
            layout, code = read
            if source is None or source.anchors is None:
                return code.copy()
            with self._lock:
                return match_openings(self._anchor_vae, source.anchors, layout, code).astype(np.float32)
        return self._read_expression(array, face)

    def of_face(self, face: Face) -> np.ndarray | None:
        """The anchor expression latent (Z,) of a tracked face in any image (None without a 3D mesh, or for a
        model without the anchor expression)."""
        read = self._read_face(face)
        return None if read is None else read[1].copy()

    def relative(self, source_code: np.ndarray, reference: Face, driving: Face,
                 source_anchors: SourceAnchors | None = None) -> np.ndarray | None:
        """Reenactment's latent (Z,): the source's code ``source_code`` moved by the driving face's expression
        change since its reference face, so that the source's anchors move as the driver's did
        (:func:`.anchors.follow_change`). None without the anchor expression or a 3D mesh on both faces.

        ``source_anchors``: the source's (``PreparedSource.anchors``); with them its mouth and eyes also open and
        close in proportion to the driver's (:meth:`.anchors.OpeningTargets.following`): a driver's blink closes
        a wider or narrower eye than the driver's own."""
        ref, drv = self._read_face(reference), self._read_face(driving)
        if ref is None or drv is None:
            return None
        start = np.asarray(source_code, dtype=np.float32) + drv[1] - ref[1]
        openings = None if source_anchors is None else self._following(source_anchors, ref[0], drv[0])
        with self._lock:
            return follow_change(self._anchor_vae, source_code, drv[0] - ref[0], start,
                                 openings).astype(np.float32)

    def following_eyes(self, source_anchors: SourceAnchors | None, reference: Face, driving: Face
                       ) -> np.ndarray | None:
        """The eye openings (left, right: gap over width) that a source's anchors should show when driven by the
        driving face's change since its reference face (:meth:`.anchors.OpeningTargets.following`: a closing eye
        by the driver's factor, a widening one by its change); None without the anchor expression, the source's
        anchors or a 3D mesh on both faces. :meth:`~.core.Engine.render`'s ``eye_openings`` takes them: the
        latent alone closed another person's eyes by about half the driver's blink (the model card's figures)."""
        ref, drv = self._read_face(reference), self._read_face(driving)
        if ref is None or drv is None or source_anchors is None:
            return None
        wanted = self._following(source_anchors, ref[0], drv[0]).wanted
        return wanted[1:].astype(np.float64)  # OPENINGS: mouth, left eye, right eye

    def _following(self, source_anchors: SourceAnchors, reference: np.ndarray, driving: np.ndarray
                   ) -> OpeningTargets:
        """:meth:`.anchors.OpeningTargets.following` for the source's layout and the reference and driving
        layouts (:meth:`_read_face`'s); the last is remembered by identity, since reenactment asks for each
        frame's twice (for the latent, :meth:`relative`, and for the lids, :meth:`following_eyes`)."""
        layouts = (source_anchors.face.layout, reference, driving)
        with self._lock:
            last = self._last_following
            if last is not None and all(a is b for a, b in zip(last[0], layouts)):
                return last[1]
            targets = OpeningTargets.following(*layouts)
            self._last_following = (layouts, targets)
            return targets

    def _read_face(self, face: Face) -> tuple[np.ndarray, np.ndarray] | None:
        """(canonical anchor layout N×3, its code Z) of a tracked face, or None (no mesh or no anchor VAE).
        The last few faces are remembered by identity: reenactment reads its reference and each driving face
        twice a frame."""
        if self._anchor_vae is None:
            return None
        with self._lock:
            for known, mesh, layout, code in self._recent_faces:
                if known is face and mesh is face.landmarks_3d:  # the same face, its mesh not replaced
                    return layout, code
            layout = face_layout(face)
            if layout is None:
                return None
            code = encode_layout(self._anchor_vae, layout).astype(np.float32)
            self._recent_faces.append((face, face.landmarks_3d, layout, code))
            return layout, code

    def with_controls(self, z: np.ndarray, values: dict[str, float], source: PreparedSource | None = None
                      ) -> np.ndarray:
        """The latent (Z,) that adds named expression controls (name → value, e.g. ``{"mouth_open": 0.8}``) to
        ``z`` (Z,), e.g. a source's own ``source.expression``; ValueError for a model without controls or an
        unknown name. ``source``: the controls fitted to that face (``PreparedSource.controls``), so that
        ``blink=1`` closes its eyes however wide they are."""
        controls = source.controls if source is not None and source.controls is not None else self.controls
        if controls is None:
            raise ValueError("this model has no named expression controls (see `mmfa-studio fit-expression`)")
        return np.asarray(controls.apply(np.asarray(z, dtype=np.float64).tolist(), values), dtype=np.float32)

    def sample(self, seed: int | None = None) -> np.ndarray:
        """A latent drawn from the VAE prior N(0, I), (Z,); the same seed gives the same latent."""
        generator = torch.Generator(device="cpu")  # on the CPU, so a seed gives the same latent on every device
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return torch.randn(self.latent_dim, generator=generator).numpy().astype(np.float32)

    def interpolate(self, z0: np.ndarray, z1: np.ndarray, ts: Sequence[float] | np.ndarray,
                    mode: str = "linear") -> np.ndarray:
        """Latents from z0 (t = 0) to z1 (t = 1), N×Z float32 for N values of ``ts``, linear or spherical
        (``motion.interpolate_latents``, the keyframes' interpolation too)."""
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"interpolation mode must be 'linear' or 'slerp', not {mode!r}")
        a = np.asarray(z0, dtype=np.float32).reshape(1, -1)
        b = np.asarray(z1, dtype=np.float32).reshape(1, -1)
        for z in (a, b):
            if z.shape[1] != self.latent_dim:
                raise ValueError(f"an expression latent has {z.shape[1]} values; this model's has {self.latent_dim}")
        t = np.asarray(ts, dtype=np.float32).reshape(-1)
        return interpolate_latents(a, b, t, mode).astype(np.float32)

    # -- what a latent stands for ----------------------------------------------------------------------
    def decode(self, z: np.ndarray) -> np.ndarray:
        """δ (K×3) for a latent z (Z,): the keypoint deformation the expression stands for."""
        with self._lock, torch.inference_mode():
            zt = torch.as_tensor(np.asarray(z, dtype=np.float32).reshape(1, -1), device=self._device)
            return self._vae.decode(zt)[0].float().cpu().numpy()

    def decode_latents(self, z: torch.Tensor, cache: bool = True) -> torch.Tensor:
        """The keypoint VAE's δ (B×K×3) for latents B×Z on the device, under the engine's precision (the render
        target's step; ``cache=False`` while a CUDA graph captures it)."""
        with self._autocast(cache):
            return self._vae.decode(z)

    def reach(self, sigmas: float = 3.0) -> float:
        """How far the latent can move a face: the largest on-screen movement, in pixels of the model's crop, that
        setting one latent to ±``sigmas`` prior standard deviations makes against the prior's mean (anchors of a
        frontal face with the anchor VAE, keypoints at scale 1 otherwise). Under a pixel or two, edits are
        invisible."""
        if self._anchor_vae is not None:
            return self._anchor_reach(sigmas)
        return self._keypoint_reach(sigmas)

    def _anchor_reach(self, sigmas: float) -> float:
        """Anchor models: the largest anchor movement (pixels of a frontal face in the crop) one latent at ±σ
        makes against the prior's mean."""
        from ..face.depth import CROP_FACE_SCALE  # canonical units → normalised units of a framed face

        vae = self._anchor_vae
        eye = torch.eye(self.latent_dim, device=self._device) * sigmas
        with self._lock, torch.inference_mode():
            delta = vae.decode(torch.cat([eye, -eye, torch.zeros(1, self.latent_dim, device=self._device)]))
        movement = (delta[:-1, :, :2] - delta[-1:, :, :2]).norm(dim=-1)
        return float(movement.max()) * CROP_FACE_SCALE * self.image_size / 2

    def _keypoint_reach(self, sigmas: float = 3.0) -> float:
        """Keypoint models: the largest keypoint movement (pixels of the crop, keypoint scale 1) one latent at ±σ
        makes against the prior's mean."""
        eye = torch.eye(self.latent_dim, device=self._device) * sigmas
        with self._lock, torch.inference_mode():
            z = torch.cat([eye, -eye, torch.zeros(1, self.latent_dim, device=self._device)])
            delta = self._vae.decode(z).float()  # (2Z+1)×K×3
        movement = (delta[:-1, :, :2] - delta[-1:, :, :2]).norm(dim=-1)  # x, y: what shows on screen
        return float(movement.max()) * self.image_size / 2  # normalised units span 2 across the crop


__all__ = ["ExpressionSpace", "read_controls"]
