"""``mmfa-studio crop INPUT -o OUTPUT``: the aligned face crop of a photo or a video, with boxes, pose, measures.

    mmfa-studio crop photo.jpg -o face.png [--size 256] [--face N] [--json]
    mmfa-studio crop clip.mp4 -o face.mp4 [--no-smooth] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import UserError
from .options import MAX_CROP_SIZE, float_in, int_in

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
IMAGE_OUTPUTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "crop", help="write the aligned face crop of a photo or video; print boxes, pose and measures",
        description="Detect the faces in a photo (or track one through a video), write the square face crop the "
                    "model uses, and print each face's box, head pose (yaw/pitch/roll in degrees: + = turned to "
                    "the image right / up / clockwise) and eye/mouth-open ratios.",
    )
    parser.add_argument("input", help="photo or video")
    parser.add_argument("-o", "--output", required=True, help="crop image (.png/.jpg/.webp) or video (.mp4)")
    parser.add_argument("--size", type=int_in(16, MAX_CROP_SIZE), default=256,
                        help=f"crop side in pixels, 16-{MAX_CROP_SIZE} (default 256)")
    parser.add_argument("--face", type=int_in(0, 99), default=0, help="which face, 0 = largest (default 0)")
    parser.add_argument("--scale", type=float_in(0, 100, low_open=True), default=None,
                        help="crop side / face size (default: training framing)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-smooth", action="store_true", help="video: no temporal smoothing of the crop box")
    parser.add_argument("--backend", default="auto", help="face tracker: auto, mediapipe, face-alignment")
    parser.set_defaults(func=run, writes=("output",), reads={"input": "input"})
    return parser


def _face_record(face, index: int) -> dict:
    from ..face import expression_measures

    record = {"index": index, "box": [round(float(v), 1) for v in face.box], "score": round(float(face.score), 3)}
    if face.pose is not None:
        record["pose"] = {k: round(float(v), 2) for k, v in vars(face.pose).items()}
    record.update({k: round(v, 4) for k, v in expression_measures(face).as_dict().items()})
    return record


def _describe(record: dict) -> str:
    pose = record.get("pose")
    pose_text = f"yaw {pose['yaw']:+.1f} pitch {pose['pitch']:+.1f} roll {pose['roll']:+.1f}" if pose else "pose ?"
    x0, y0, x1, y1 = record["box"]
    return (f"face {record['index']}: box {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}  {pose_text}  "
            f"eye-open {record['eye_open']:.2f}  mouth-open {record['mouth_open']:.2f}")


def _tracker(args, video: bool):
    from ..face import create_tracker

    try:
        # video: track only as many faces as needed (MediaPipe re-runs its detector while it tracks fewer)
        return create_tracker(args.backend, video=video, max_faces=args.face + 1 if video else max(4, args.face + 1))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    src, out = Path(args.input), Path(args.output)
    if not src.exists():
        raise UserError(f"input {src} does not exist")
    if not out.parent.is_dir() and str(out.parent):
        raise UserError(f"output folder {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"output {out} is a folder")
    if src.suffix.lower() in VIDEO_SUFFIXES:
        from ..engine.video import VIDEO_SUFFIXES as OUTPUT_VIDEO_SUFFIXES

        if out.suffix.lower() not in OUTPUT_VIDEO_SUFFIXES:
            raise UserError(f"the input is a video: the output must be one of {', '.join(OUTPUT_VIDEO_SUFFIXES)}, "
                            f"not {out.name}")
        return _crop_video(args, src, out)
    if out.suffix.lower() not in IMAGE_OUTPUTS:
        raise UserError(f"output {out.name}: use .png, .jpg or .webp for a photo's crop")
    return _crop_photo(args, src, out)


def _crop_photo(args, src: Path, out: Path) -> int:
    import cv2

    from ..atomic import atomic_path
    from ..face import CROP_SCALE, ImageError, NoFaceError, crop_face, load_image, select_face

    try:
        image = load_image(src)
    except ImageError as exc:
        raise UserError(str(exc)) from None
    tracker = _tracker(args, video=False)
    try:
        faces = tracker.detect(image)
    finally:
        tracker.close()
    try:
        face = select_face(faces, args.face, where=str(src))
    except NoFaceError as exc:
        raise UserError(str(exc)) from None
    crop, transform = crop_face(image, face, args.size, scale=args.scale or CROP_SCALE)
    ok, buf = cv2.imencode(out.suffix.lower(), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UserError(f"cannot encode {out.name}")
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(buf.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    records = [_face_record(f, i) for i, f in enumerate(faces)]
    if args.json:
        print(json.dumps({"input": str(src), "output": str(out), "image_size": [image.shape[1], image.shape[0]],
                          "face": args.face, "faces": records,
                          "crop_matrix": np.round(transform.matrix, 6).tolist()}, indent=1))
    else:
        print(f"{src}: {image.shape[1]}×{image.shape[0]}, {len(faces)} face(s)")
        for r in records:
            print(("* " if r["index"] == args.face else "  ") + _describe(r))
        print(f"wrote {out} ({args.size}×{args.size}, face {args.face})")
    return 0


def _crop_video(args, src: Path, out: Path) -> int:
    import cv2

    from ..engine.errors import VideoError
    from ..engine.frames import shortfall_note
    from ..engine.video import VideoExporter
    from ..face import CROP_SCALE, CropSmoother, crop_at, crop_box

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise UserError(f"{src}: cannot open the video (corrupt or unsupported)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    declared = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
    declared = declared if np.isfinite(declared) else 0.0
    if not 0.0 < fps <= 240.0:  # missing, NaN or nonsense (some containers report 1000): the exporter refuses those
        fps = 25.0
    try:
        tracker = _tracker(args, video=True)
    except UserError:
        cap.release()
        raise
    smoother = None if args.no_smooth else CropSmoother()
    per_frame, box, n, found = [], None, 0, 0
    try:
        with VideoExporter(out, fps=fps) as video:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                faces = tracker.detect(frame)
                record = None
                if len(faces) > args.face:
                    face = faces[args.face]
                    target = crop_box(face, scale=args.scale or CROP_SCALE)
                    box = smoother(target, n / fps) if smoother else target
                    record = _face_record(face, args.face)
                    found += 1
                if box is None:  # no face yet: nothing to crop; wait for the first one
                    per_frame.append({"frame": n, "face": None})
                    n += 1
                    continue
                crop, _ = crop_at(frame, box, args.size)
                video.write(crop)
                per_frame.append({"frame": n, "face": record, "crop_box": [round(float(v), 2) for v in box]})
                n += 1
            if found == 0:
                raise UserError(f"no face found in any of the {n} frames of {src}" if n else f"{src}: no frame decodes")
        note = shortfall_note(str(src), n, int(declared) if declared > 0 else None)
    except VideoError as exc:  # the exporter's one-line reasons (ffmpeg failed, cannot write) are exit 2
        raise UserError(str(exc)) from None
    finally:
        cap.release()
        tracker.close()
    written = sum(1 for r in per_frame if "crop_box" in r)
    if note:
        print(f"mmfa-studio crop: warning: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"input": str(src), "output": str(out), "fps": fps, "frames": n, "frames_with_face": found,
                          "face": args.face, "per_frame": per_frame}))
    else:
        poses = np.array([[r["face"]["pose"][k] for k in ("yaw", "pitch", "roll")] for r in per_frame
                          if r.get("face") and "pose" in r["face"]])
        print(f"{src}: {n} frames, face {args.face} found in {found}")
        if len(poses):
            lo, hi = poses.min(axis=0), poses.max(axis=0)
            print(f"  yaw {lo[0]:+.1f}…{hi[0]:+.1f}  pitch {lo[1]:+.1f}…{hi[1]:+.1f}  roll {lo[2]:+.1f}…{hi[2]:+.1f}")
        print(f"wrote {out} ({written} frames, {args.size}×{args.size})")
    return 0
