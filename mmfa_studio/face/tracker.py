"""Face tracker backends: MediaPipe face mesh (offline default) and face-alignment (when its weights are local).

Every backend takes H×W×3 uint8 RGB and returns ``Face`` objects sorted largest first, in pixels of that image.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .pose import MESH_INDEX_OF_68, head_pose
from .types import Face

# Large photos are detected on a downscaled copy (landmarks are mapped back to full resolution): MediaPipe
# looks at 128-192 px inputs anyway, so more pixels only cost time.
DETECT_MAX_SIDE = 1280


@runtime_checkable
class FaceTracker(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an H×W×3 uint8 RGB image, largest first (empty list when there is none)."""
        ...

    def close(self) -> None: ...


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise TypeError(f"expected an H×W×3 uint8 RGB array, got {type(image).__name__} {shape}")


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(image resized so its longer side is ≤ max_side, factor from the original to it)."""
    h, w = image.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    if factor >= 1.0:
        return image, 1.0
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return small, factor


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box_of(points: np.ndarray) -> np.ndarray:
    return np.array([*points.min(axis=0), *points.max(axis=0)], dtype=np.float64)


_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def _native_stderr_silenced():
    """MediaPipe's C++ side writes absl/glog warnings ("W0000 … feedback tensors") straight to file descriptor 2
    and ignores GLOG_minloglevel & co.; users of the CLI and the app should not see them. Silences fd 2 for the
    block (only while a tracker starts, so other threads' errors are not hidden later)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):  # e.g. stderr captured by pytest
        yield
        return
    # One block at a time: two threads interleaving would save each other's /dev/null as "the real stderr" and
    # leave fd 2 silenced for good.
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            os.close(devnull)


class MediaPipeTracker:
    """MediaPipe 0.10.21 face mesh (478 points with iris), weights inside the wheel: works offline.

    Photos (``video=False``): the mesh runs in static mode on the whole (downscaled) image, and the full-range
    BlazeFace detector finds the faces the mesh's short-range detector misses (small faces, group photos), each
    then meshed on a crop around it. Video (``video=True``): the mesh runs in tracking mode (landmarks of the
    last frame seed the next), with the same detector fallback when the track is lost.
    """

    def __init__(self, video: bool = False, max_faces: int = 4, min_confidence: float = 0.5,
                 detect_max_side: int = DETECT_MAX_SIDE, with_pose: bool = True) -> None:
        import mediapipe as mp  # heavy import: only when a tracker is made

        with _native_stderr_silenced():
            self._build(mp, video, max_faces, min_confidence)
        self.max_faces, self.detect_max_side, self.with_pose = max_faces, detect_max_side, with_pose
        self._misses = 0
        self._seen_face = False
        self._closed = False

    def _build(self, mp, video: bool, max_faces: int, min_confidence: float) -> None:
        self.video = video
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence,
        )
        # Meshes single faces on crops found by the full-range detector.
        self._crop_mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3,
        )
        self._detector = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                   min_detection_confidence=min_confidence)
        # The graphs start (and log) on their first frame: run one now, while stderr is silenced.
        blank = np.zeros((64, 64, 3), np.uint8)
        for graph in (self._mesh, self._crop_mesh, self._detector):
            graph.process(blank)

    # --- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _faces_from(result, width: int, height: int, offset=(0.0, 0.0), scale: float = 1.0) -> list[Face]:
        faces = []
        for lm in result.multi_face_landmarks or []:
            arr = np.array([(p.x, p.y, p.z) for p in lm.landmark], dtype=np.float64)
            pts3 = np.empty_like(arr)
            # MediaPipe's x, y are fractions of the image (0 = left edge); ours put pixel centres at integers.
            pts3[:, 0] = (arr[:, 0] * width) / scale - 0.5 + offset[0]
            pts3[:, 1] = (arr[:, 1] * height) / scale - 0.5 + offset[1]
            pts3[:, 2] = arr[:, 2] * width / scale  # z uses the x scale; smaller = nearer the camera
            pts2 = pts3[:, :2].copy()
            faces.append(Face(box=_box_of(pts2[:468]), landmarks=pts2, score=1.0, landmarks_3d=pts3))
        return faces

    def _mesh_around(self, image: np.ndarray, box: np.ndarray, score: float) -> Face | None:
        """Run the static mesh on a square crop of ``image`` around a detector box (coordinates of ``image``)."""
        h, w = image.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = 2.2 * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = image[y0:y1, x0:x1]
        scale = 1.0
        if max(crop.shape[:2]) < 192:  # the mesh works at 192 px: upsample tiny faces rather than fail
            scale = 192.0 / max(crop.shape[:2])
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        result = self._crop_mesh.process(np.ascontiguousarray(crop))
        faces = self._faces_from(result, crop.shape[1], crop.shape[0], offset=(x0, y0), scale=scale)
        if not faces:
            return None
        faces[0].score = float(score)
        return faces[0]

    def _detections(self, image: np.ndarray, tiles: bool) -> list[tuple[np.ndarray, float]]:
        """Full-range BlazeFace boxes (pixels of ``image``); with ``tiles`` also on overlapping 384-px tiles,
        which finds faces down to ~40 px (the detector itself sees the image at 192 px)."""
        h, w = image.shape[:2]
        windows = [(0, 0, w, h)]
        if tiles and max(h, w) > 480:
            side, step = 384, 288
            xs = list(range(0, max(1, w - side), step)) + [max(0, w - side)]
            ys = list(range(0, max(1, h - side), step)) + [max(0, h - side)]
            windows += [(x, y, min(w, x + side), min(h, y + side)) for y in sorted(set(ys)) for x in sorted(set(xs))]
        boxes = []
        for x0, y0, x1, y1 in windows:
            result = self._detector.process(np.ascontiguousarray(image[y0:y1, x0:x1]))
            for det in result.detections or []:
                rb = det.location_data.relative_bounding_box
                tw, th = x1 - x0, y1 - y0
                box = np.array([x0 + rb.xmin * tw, y0 + rb.ymin * th, x0 + (rb.xmin + rb.width) * tw,
                                y0 + (rb.ymin + rb.height) * th])
                boxes.append((box, float(det.score[0]) if det.score else 0.5))
        boxes.sort(key=lambda b: -b[1])
        return boxes

    def _detector_faces(self, image: np.ndarray, known: list[Face]) -> list[Face]:
        found = []
        for box, score in self._detections(image, tiles=not self.video and not known):
            if any(_iou(box, f.box) > 0.2 for f in known + found):
                continue
            face = self._mesh_around(image, box, score)
            if face is not None and not any(_iou(face.box, f.box) > 0.3 for f in known + found):
                found.append(face)
            if len(known) + len(found) >= self.max_faces:
                break
        return found

    # --- API -----------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        small, factor = _downscaled(image, self.detect_max_side)
        small = np.ascontiguousarray(small)
        h, w = small.shape[:2]
        # The landmark stage logs one more native warning on the first face it sees: keep that quiet too.
        with _native_stderr_silenced() if not self._seen_face else contextlib.nullcontext():
            faces = self._faces_from(self._mesh.process(small), w, h)
            if len(faces) < self.max_faces and (not self.video or not faces):
                # Video: only when the track is lost (the detector costs as much as the mesh).
                faces += self._detector_faces(small, faces)
        self._seen_face = self._seen_face or bool(faces)
        if factor != 1.0:
            faces = [f.scaled(1.0 / factor) for f in faces]
        if self.with_pose:
            for f in faces:
                f.pose = head_pose(f.landmarks, image.shape)
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces[: self.max_faces]

    def close(self) -> None:
        """Release the MediaPipe graphs; closing again is a no-op (MediaPipe itself raises on a second close)."""
        if self._closed:
            return
        self._closed = True
        for part in (self._mesh, self._crop_mesh, self._detector):
            part.close()

    def __enter__(self) -> MediaPipeTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- face-alignment ----------------------------------------------------------------------------------------
# face-alignment (pip extra ``mmfa-studio[face-alignment]``) downloads its weights on first use, which fails
# offline. Put these files in ``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch/hub/checkpoints/``):
FACE_ALIGNMENT_FILES = ("2DFAN4-cd938726ad.zip", "s3fd-619a316812.pth")


def face_alignment_weights_dir() -> Path:
    try:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    except ImportError:
        return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"


def face_alignment_available() -> tuple[bool, str]:
    """(usable, reason): the package is importable and both weight files are present locally."""
    try:
        import face_alignment  # noqa: F401
    except ImportError:
        return False, "face-alignment is not installed (pip install 'mmfa-studio[face-alignment]')"
    folder = face_alignment_weights_dir()
    missing = [name for name in FACE_ALIGNMENT_FILES if not (folder / name).is_file()]
    if missing:
        return False, f"face-alignment weights missing in {folder}: {', '.join(missing)}"
    return True, "ok"


class FaceAlignmentTracker:
    """68 landmarks from FAN (face-alignment) with its S3FD detector; used only when the weights are local.

    Slow on CPU (S3FD ~1.4 s per 640×480 frame, FAN ~0.4 s per face): for photos and offline jobs.
    """

    def __init__(self, max_faces: int = 4, device: str = "cpu", detect_max_side: int = 640,
                 with_pose: bool = True) -> None:
        ok, reason = face_alignment_available()
        if not ok:
            raise RuntimeError(reason)
        import face_alignment

        kwargs = dict(device=device, flip_input=False, face_detector="sfd",
                      face_detector_kwargs={
                          "path_to_detector": str(face_alignment_weights_dir() / FACE_ALIGNMENT_FILES[1])})
        landmarks_type = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        try:  # compile=False: compiling costs minutes on a small CPU for no gain
            self._fa = face_alignment.FaceAlignment(landmarks_type, compile=False, **kwargs)
        except TypeError:  # releases without the ``compile`` argument
            self._fa = face_alignment.FaceAlignment(landmarks_type, **kwargs)
        self.max_faces, self.detect_max_side, self.with_pose = max_faces, detect_max_side, with_pose

    def detect(self, image: np.ndarray) -> list[Face]:
        _check_image(image)
        small, factor = _downscaled(image, self.detect_max_side)
        boxes = self._fa.face_detector.detect_from_image(small[..., ::-1].copy())  # S3FD expects BGR
        boxes = [np.asarray(b[:4], dtype=np.float64) / factor for b in boxes if len(b) < 5 or b[4] > 0.5]
        if not boxes:
            return []
        result = self._fa.get_landmarks_from_image(image, detected_faces=boxes, return_landmark_score=True)
        landmarks, scores = result[0] or [], result[1] or []
        faces = []
        for pts, sc in zip(landmarks, scores):
            pts = np.asarray(pts, dtype=np.float64)[:, :2]
            box = _box_of(pts)
            # 68-point boxes stop at the brows: extend them to the hairline like the mesh's, so crops match.
            box[1] -= 0.25 * (box[3] - box[1])
            face = Face(box=box, landmarks=pts, score=float(np.mean(sc)))
            if self.with_pose:
                face.pose = head_pose(pts, image.shape)
            faces.append(face)
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces[: self.max_faces]

    def close(self) -> None:
        self._fa = None


def create_tracker(backend: str = "auto", video: bool = False, max_faces: int = 4, **kwargs) -> FaceTracker:
    """A face tracker. ``"auto"``/``"mediapipe"``: the offline MediaPipe mesh; ``"face-alignment"``: FAN, which
    needs its weights in ``$TORCH_HOME/hub/checkpoints/`` (see ``FACE_ALIGNMENT_FILES``); raises ValueError with
    the reason when that backend cannot be used. ``video=True`` tracks across consecutive frames."""
    if backend in ("auto", "mediapipe"):
        return MediaPipeTracker(video=video, max_faces=max_faces, **kwargs)
    if backend == "face-alignment":
        ok, reason = face_alignment_available()
        if not ok:
            raise ValueError(f"face tracker 'face-alignment' unavailable: {reason}")
        return FaceAlignmentTracker(max_faces=max_faces, **kwargs)
    raise ValueError(f"unknown face tracker {backend!r} (choose auto, mediapipe or face-alignment)")


__all__ = ["FaceTracker", "MediaPipeTracker", "FaceAlignmentTracker", "create_tracker", "face_alignment_available",
           "FACE_ALIGNMENT_FILES", "face_alignment_weights_dir", "MESH_INDEX_OF_68"]
