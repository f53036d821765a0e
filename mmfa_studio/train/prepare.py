"""Raw talking-head videos → face-centred training crops (the format of :mod:`mmfa_studio.train.prepared`).

Per source video (or folder of frames): pass 1 decodes every frame, finds shot changes (thumbnail
differences) and tracks the face (MediaPipe in tracking mode, every ``detect_every`` kept frames and at every
cut); the kept frames are split into segments at cuts, at lost faces and where the face drifts too far from
the segment's box; each segment gets ONE fixed crop box (the median of its detections, framed like
``face.crop_face``). Pass 2 decodes again and writes the crops. Results are written per source, atomically,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mmfa_studio.atomic import atomic_path, write_text_atomic
from mmfa_studio.face import CROP_OFFSET, CROP_SCALE, box_transform, crop_at, head_placement
from mmfa_studio.face.tracker import MediaPipeTracker

from .prepared import CLIPS_DIR, FRAMES_SUFFIX, ClipInfo, encode_frame, write_index

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SOURCES_DIR = "sources"  # one JSON per finished source: what makes a run resumable
OPTIONS_NAME = "prepare.json"


@dataclass(frozen=True)
class PrepareOptions:
    size: int = 256
    stride: int = 1  # keep every stride-th source frame
    max_frames_per_clip: int = 0  # at most this many kept frames per source video (0 = all)
    detect_every: int = 3  # run the tracker on every n-th kept frame (and at every cut)
    min_face: int = 64  # faces smaller than this (px, in the source) are unusable
    min_frames: int = 8  # shorter segments are dropped
    cut_threshold: float = 28.0  # mean abs difference of 32×32 gray thumbnails (0-255) that marks a cut
    scale: float = CROP_SCALE
    offset: tuple[float, float] = CROP_OFFSET
    codec: str = "webp"
    quality: int = 85
    detect_max_side: int = 640
    frames_fps: float = 25.0  # frame rate assumed for folders of frames

    def output_settings(self) -> dict:
        """The options that change the output (a resumed run must use the same)."""
        d = asdict(self)
        d.pop("detect_max_side")
        d["offset"] = list(d["offset"])
        return d


@dataclass
class Source:
    path: Path
    rel: str  # relative to the input folder, "/"-separated
    is_frames_folder: bool = False

    @property
    def key(self) -> str:
        stem = self.rel.rsplit(".", 1)[0] if not self.is_frames_folder else self.rel
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace("/", "__")).strip("_") or "clip"


@dataclass
class SourceResult:
    source: str
    status: str  # "ok" (≥ 1 clip), "no-face" (readable, no usable face), "failed" (corrupt/truncated/unreadable)
    reason: str = ""
    clips: list[dict] = field(default_factory=list)
    frames_read: int = 0
    seconds: float = 0.0


@dataclass
class PrepareSummary:
    sources: int = 0
    prepared: int = 0
    no_face: int = 0
    failed: int = 0
    resumed: int = 0
    clips: int = 0
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.sources} sources: {self.prepared} prepared, {self.no_face} without a usable face, "
               f"{self.failed} failed ({self.resumed} already done before this run)",
               f"{self.clips} clips, {self.frames} frames, {self.bytes / 1e6:.1f} MB, {self.seconds:.1f} s"]
        out += [f"  skipped {p}" for p in self.problems]
        return out


# --- sources ---------------------------------------------------------------------------------------------------
def find_sources(input_path: Path) -> list[Source]:
    """Video files, and folders of frames (VoxCeleb layout: a leaf folder of ≥ 2 images = one clip)."""
    input_path = Path(input_path)
    if input_path.is_file():
        return [Source(input_path, input_path.name)]
    sources = []
    for folder, dirs, files in os.walk(input_path):
        dirs.sort()
        folder = Path(folder)
        images = [f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        if len(images) >= 2 and not dirs:
            sources.append(Source(folder, folder.relative_to(input_path).as_posix() or folder.name, True))
            continue
        for name in sorted(files):
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                path = folder / name
                sources.append(Source(path, path.relative_to(input_path).as_posix()))
    return sources


class SourceError(Exception):
    """A source that cannot be decoded (reported and skipped)."""


def _open_frames(source: Source) -> tuple[Iterator[np.ndarray], float, int]:
    """(iterator over RGB frames, fps, frame count the container claims or -1)."""
    if source.is_frames_folder:
        files = sorted(p for p in source.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

        def gen_images():
            for p in files:
                bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise SourceError(f"frame {p.name} is unreadable")
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        return gen_images(), 0.0, len(files)
    cap = cv2.VideoCapture(str(source.path))
    if not cap.isOpened():
        raise SourceError("cannot open (not a video, or an unsupported/corrupt file)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or -1)

    def gen_video():
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return gen_video(), fps, count


# --- pass 1: cuts and face track --------------------------------------------------------------------------------
@dataclass
class _Track:
    kept: list[int] = field(default_factory=list)  # source frame index of each kept frame
    boxes: list[np.ndarray | None] = field(default_factory=list)  # (cx, cy, size) at detection frames, else None
    detected: list[bool] = field(default_factory=list)  # a detection ran on this kept frame
    poses: list[np.ndarray | None] = field(default_factory=list)
    placements: list[np.ndarray | None] = field(default_factory=list)  # (scale, x, y) in source pixels
    cuts: list[bool] = field(default_factory=list)  # a shot change happens just before this kept frame
    shape: tuple[int, int] = (0, 0)
    decoded: int = 0


def _scan(source: Source, opts: PrepareOptions, tracker: MediaPipeTracker) -> tuple[_Track, float, int]:
    frames, fps, claimed = _open_frames(source)
    limit = opts.max_frames_per_clip * opts.stride if opts.max_frames_per_clip > 0 else None
    track = _Track()
    prev_thumb = None
    since_detect = opts.detect_every
    last_failed = hit_limit = False
    for i, frame in enumerate(frames):
        if limit is not None and i >= limit:
            hit_limit = True
            break
        track.decoded = i + 1
        if i % opts.stride:
            continue
        track.shape = frame.shape[:2]
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        cut = prev_thumb is not None and float(np.abs(thumb - prev_thumb).mean()) > opts.cut_threshold
        prev_thumb = thumb
        detect = cut or last_failed or since_detect >= opts.detect_every
        box = pose = place = None
        if detect:
            faces = tracker.detect(frame)
            since_detect = 1
            if faces and faces[0].size >= opts.min_face:
                f = faces[0]
                box = np.array([*f.centre, f.size])
                pose = f.pose.as_array() if f.pose is not None else None
                fitted = head_placement(f.landmarks, f.pose) if f.pose is not None else None
                place = None if fitted is None else np.array([fitted.scale, *fitted.centre])
            last_failed = box is None
        else:
            since_detect += 1
        track.kept.append(i)
        track.boxes.append(box)
        track.detected.append(detect)
        track.poses.append(pose)
        track.placements.append(place)
        track.cuts.append(cut)
    if not hit_limit and claimed > 0 and track.decoded < 0.9 * claimed and claimed - track.decoded > 5:
        raise SourceError(f"truncated: only {track.decoded} of {claimed} frames decode")
    if track.decoded == 0:
        raise SourceError("no frame decodes")
    return track, fps, claimed


def _segments(track: _Track, opts: PrepareOptions) -> list[tuple[int, int]]:
    """[start, end) ranges of kept-frame positions, each one shot with a steady, usable face."""
    segments = []
    start = last_good = None
    ref = None  # running mean (cx, cy, size) of the segment's detections
    count = 0

    def close(boundary: int | None = None):
        """End the open segment; at a cut or the end of the video (``boundary``) keep the frames after the
        last detection (fewer than detect_every, no sign of trouble), after a lost face or a jump don't."""
        if start is None or last_good is None:
            return
        end = last_good + 1
        if boundary is not None and boundary - end < opts.detect_every:
            end = boundary
        if end - start >= opts.min_frames:
            segments.append((start, end))

    for k in range(len(track.kept)):
        if track.cuts[k] and start is not None:
            close(boundary=k)
            start = last_good = ref = None
        if not track.detected[k]:
            continue
        box = track.boxes[k]
        if box is None:  # face lost: the segment ends at its last good detection
            close()
            start = last_good = ref = None
            continue
        if ref is not None:
            drift = np.hypot(box[0] - ref[0], box[1] - ref[1]) / ref[2]
            ratio = box[2] / ref[2]
            # A fixed crop 1.6× the face leaves ~0.3 face sizes of slack. Frames already cropped to about that
            # size (VoxCeleb-style clips) are never split for drift: the crop is the frame itself.
            precropped = min(track.shape) <= 1.2 * opts.scale * ref[2]
            if (drift > 0.3 and not precropped) or not 0.7 < ratio < 1.43:
                close()
                start = last_good = ref = None
        if start is None:
            start, ref, count = k, box.copy(), 0
        count += 1
        ref = ref + (box - ref) / count
        last_good = k
    close(boundary=len(track.kept))
    return segments


def _fit_box(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Keep the crop square inside the frame where possible (avoids repeated-border stripes in training data):
    shrink it by at most 20 % to fit, then shift it inside."""
    h, w = shape
    cx, cy, side = (float(v) for v in box)
    side = min(side, max(min(h, w), 0.8 * side))
    if side <= w:
        cx = min(max(cx, side / 2), w - side / 2)
    if side <= h:
        cy = min(max(cy, side / 2), h - side / 2)
    return np.array([cx, cy, side])


def _interpolated(readings: list[np.ndarray | None], a: int, b: int) -> np.ndarray | None:
    """(b − a)×3 of the 3-vectors read on kept frames a..b−1, linearly interpolated between readings."""
    ks = [k for k in range(a, b) if readings[k] is not None]
    if not ks:
        return None
    values = np.stack([readings[k] for k in ks])
    return np.stack([np.interp(np.arange(a, b), ks, values[:, j]) for j in range(3)], axis=1).astype(np.float32)


def _in_crop(placement: np.ndarray | None, box: np.ndarray, size: int, shape: tuple[int, int]) -> np.ndarray | None:
    """N×(scale, x, y) placements in the pixels of a ``shape`` frame → in those of its size×size crop of ``box``."""
    if placement is None:
        return None
    transform = box_transform(box, size, shape)
    zoom = transform.matrix[0, 0]
    return np.concatenate([placement[:, :1] * zoom, transform.to_crop(placement[:, 1:])], axis=1).astype(np.float32)


# --- one source --------------------------------------------------------------------------------------------------
def prepare_source(source: Source, out_root: Path, opts: PrepareOptions,
                   tracker: MediaPipeTracker | None = None) -> SourceResult:
    """Prepare one source into ``out_root/clips``; never raises for bad input (the result says why)."""
    started = time.perf_counter()
    own_tracker = tracker is None
    if own_tracker:
        tracker = MediaPipeTracker(video=True, max_faces=1, detect_max_side=opts.detect_max_side)
    try:
        try:
            track, fps, _claimed = _scan(source, opts, tracker)
        except SourceError as exc:
            return SourceResult(source.rel, "failed", str(exc), seconds=time.perf_counter() - started)
        fps = fps if fps > 0 else opts.frames_fps
        segments = _segments(track, opts)
        if not segments:
            found = sum(b is not None for b in track.boxes)
            reason = "no usable face" if not found else f"no steady face shot of ≥ {opts.min_frames} frames"
            return SourceResult(source.rel, "no-face", reason, frames_read=track.decoded,
                                seconds=time.perf_counter() - started)
        clips = _write_segments(source, out_root, opts, track, segments, fps / opts.stride)
        return SourceResult(source.rel, "ok", clips=[c.to_json() for c in clips], frames_read=track.decoded,
                            seconds=time.perf_counter() - started)
    except SourceError as exc:
        return SourceResult(source.rel, "failed", str(exc), seconds=time.perf_counter() - started)
    finally:
        if own_tracker:
            tracker.close()


def _write_segments(source: Source, out_root: Path, opts: PrepareOptions, track: _Track,
                    segments: list[tuple[int, int]], fps: float) -> list[ClipInfo]:
    # Plan: one fixed box and clip per segment, keyed by source frame index.
    plan = []
    for n, (a, b) in enumerate(segments):
        dets = np.stack([track.boxes[k] for k in range(a, b) if track.boxes[k] is not None])
        cx, cy, size = np.median(dets, axis=0)
        box = np.array([cx + opts.offset[0] * size, cy + opts.offset[1] * size, opts.scale * size])
        plan.append((f"{source.key}_{n:03d}", a, b, _fit_box(box, track.shape)))
    by_frame = {}
    for p, (_cid, a, b, _box) in enumerate(plan):
        for k in range(a, b):
            by_frame[track.kept[k]] = p
    last_frame = max(by_frame)
    clips_dir = out_root / CLIPS_DIR
    buffers: dict[int, list[bytes]] = {p: [] for p in range(len(plan))}
    frames, _fps, _claimed = _open_frames(source)
    for i, frame in enumerate(frames):
        if i > last_frame:
            break
        p = by_frame.get(i)
        if p is None:
            continue
        crop, _ = crop_at(frame, plan[p][3], opts.size)
        buffers[p].append(encode_frame(crop, opts.codec, opts.quality))
    clips = []
    for p, (cid, a, b, box) in enumerate(plan):
        data = buffers[p]
        if len(data) != b - a:
            raise SourceError(f"decoded {len(data)} frames of segment {cid} on the second pass, expected {b - a}")
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in data])]).astype(np.int64)
        with atomic_path(clips_dir / f"{cid}{FRAMES_SUFFIX}") as tmp:
            tmp.write_bytes(b"".join(data))
        clips.append(ClipInfo(id=cid, frames=b - a, fps=round(fps, 3), source=source.rel,
                              pose=_interpolated(track.poses, a, b), offsets=offsets, first_frame=track.kept[a],
                              stride=opts.stride, box=tuple(float(v) for v in box),
                              placement=_in_crop(_interpolated(track.placements, a, b), box, opts.size, track.shape)))
    return clips


def _worker(args: tuple[Source, Path, PrepareOptions]) -> SourceResult:
    source, out_root, opts = args
    result = prepare_source(source, out_root, opts)
    _record(out_root, source, result)
    return result


def _record(out_root: Path, source: Source, result: SourceResult) -> None:
    write_text_atomic(out_root / SOURCES_DIR / f"{source.key}.json", json.dumps(asdict(result)))


# --- whole dataset ------------------------------------------------------------------------------------------------
def prepare_dataset(input_path: Path, out_root: Path, opts: PrepareOptions = PrepareOptions(), workers: int = 1,
                    progress: bool = True, log=print, exclude: Collection[str] = ()) -> PrepareSummary:
    """Prepare every source under ``input_path`` into ``out_root`` (resumable), then write the index.

    ``exclude``: source names (file or folder name, or path relative to the input) to leave out, e.g. held-out
    validation clips; the index then lists only the others.
    Raises FileNotFoundError for a missing input, ValueError when it holds no video and when ``out_root`` was
    prepared with other options.
    """
    from tqdm import tqdm

    input_path, out_root = Path(input_path), Path(out_root)
    if not input_path.exists():
        raise FileNotFoundError(f"input {input_path} does not exist")
    sources = [s for s in find_sources(input_path) if s.rel not in exclude and s.path.name not in exclude]
    if not sources:
        raise ValueError(f"no videos or frame folders found in {input_path}"
                         + (" (after --exclude)" if exclude else ""))
    keys = [s.key for s in sources]
    if len(set(keys)) != len(keys):
        raise ValueError("two sources map to the same clip name; rename one of them")
    started = time.perf_counter()
    (out_root / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    (out_root / SOURCES_DIR).mkdir(exist_ok=True)
    settings = opts.output_settings()
    options_path = out_root / OPTIONS_NAME
    if options_path.is_file():
        previous = json.loads(options_path.read_text())
        if previous != settings:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise ValueError(f"{out_root} was prepared with other options ({', '.join(changed)}); "
                             "use a new output folder to prepare with these")
    else:
        write_text_atomic(options_path, json.dumps(settings, indent=1))

    summary = PrepareSummary(sources=len(sources))
    results: dict[str, SourceResult] = {}
    todo = []
    for s in sources:
        done = out_root / SOURCES_DIR / f"{s.key}.json"
        if done.is_file():
            try:
                results[s.key] = SourceResult(**json.loads(done.read_text()))
                summary.resumed += 1
                continue
            except (ValueError, TypeError):
                pass  # unreadable record: do the source again
        todo.append(s)
    bar = tqdm(total=len(sources), initial=len(sources) - len(todo), unit="video", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers > 1 and len(todo) > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                jobs = [(s, out_root, opts) for s in todo]
                for s, result in zip(todo, pool.imap(_worker, jobs)):
                    results[s.key] = result
                    bar.set_postfix_str(f"{s.rel[:40]} {result.status}")
                    bar.update(1)
        else:
            tracker = MediaPipeTracker(video=True, max_faces=1, detect_max_side=opts.detect_max_side)
            try:
                for s in todo:
                    bar.set_postfix_str(s.rel[:40])
                    result = prepare_source(s, out_root, opts, tracker)
                    _record(out_root, s, result)
                    results[s.key] = result
                    bar.update(1)
            finally:
                tracker.close()
    finally:
        bar.close()
        clips = [ClipInfo.from_json(c) for s in sources if s.key in results for c in results[s.key].clips]
        if clips:
            write_index(out_root, opts.size, clips, opts.codec)

    for s in sources:
        r = results[s.key]
        if r.status == "ok":
            summary.prepared += 1
        elif r.status == "no-face":
            summary.no_face += 1
            summary.problems.append(f"{r.source}: {r.reason}")
        else:
            summary.failed += 1
            summary.problems.append(f"{r.source}: {r.reason}")
    summary.clips = len(clips)
    summary.frames = sum(c.frames for c in clips)
    summary.bytes = sum(int(c.offsets[-1]) for c in clips)
    summary.seconds = time.perf_counter() - started
    return summary
