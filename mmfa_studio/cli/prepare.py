"""``mmfa-studio prepare INPUT OUTPUT``: raw talking-head videos → face-centred training crops.

    mmfa-studio prepare VIDEOS DATA [--size 256] [--stride 1] [--max-frames-per-clip N] [--workers 1] [--landmarks]

INPUT: a video, or a folder of videos and/or folders of frames (VoxCeleb layout). OUTPUT: index.json +
clips/ (see mmfa_studio/train/prepared.py). Resumable: run the same command again to continue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import UserError
from .options import int_in


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prepare", help="turn raw talking-head videos into a training set of face crops",
        description="Find and track the face in every video (or folder of frames) under INPUT, split at shot "
                    "changes, and write fixed face-centred crops per shot with per-frame head pose to OUTPUT. "
                    "Videos without a usable face, truncated or undecodable files are reported and skipped. "
                    "Running it again on the same OUTPUT resumes.",
    )
    parser.add_argument("input", help="a video, or a folder of videos / frame folders")
    parser.add_argument("output", help="output folder (created; resumes when it exists)")
    parser.add_argument("--size", type=int_in(32, 4096), default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--stride", type=int_in(1, 100_000), default=1, help="keep every N-th source frame (default 1)")
    parser.add_argument("--max-frames-per-clip", type=int_in(0, 10_000_000), default=0, metavar="N",
                        help="keep at most N frames per source video (default: all); with --stride makes a subset")
    parser.add_argument("--detect-every", type=int_in(1, 100_000), default=3, metavar="N",
                        help="track the face on every N-th kept frame and at shot changes (default 3)")
    parser.add_argument("--min-face", type=int_in(1, 100_000), default=64,
                        help="smallest usable face in source pixels (default 64)")
    parser.add_argument("--min-frames", type=int_in(1, 100_000), default=8,
                        help="drop shots shorter than this (default 8)")
    parser.add_argument("--codec", choices=["webp", "jpg"], default="webp", help="frame encoding (default webp)")
    parser.add_argument("--quality", type=int_in(1, 100), default=85, help="encoder quality 1-100 (default 85)")
    parser.add_argument("--workers", type=int_in(1, 256), default=1, help="parallel processes (default 1)")
    parser.add_argument("--exclude", metavar="FILE",
                        help="text file of source names to leave out, one per line (# comments), e.g. "
                             "models/validation_clips.txt")
    parser.add_argument("--landmarks", action="store_true",
                        help="also track the face's landmarks on every crop (for train.landmark_expression)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..train.prepare import PrepareOptions, prepare_dataset

    src, out = Path(args.input), Path(args.output)
    if not src.exists():
        raise UserError(f"input {src} does not exist")
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    exclude: set[str] = set()
    if args.exclude:
        try:
            lines = Path(args.exclude).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UserError(f"cannot read --exclude file {args.exclude}: {exc.strerror}") from None
        exclude = {ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}
    opts = PrepareOptions(size=args.size, stride=args.stride, max_frames_per_clip=args.max_frames_per_clip,
                          detect_every=args.detect_every, min_face=args.min_face, min_frames=args.min_frames,
                          codec=args.codec, quality=args.quality)
    try:
        summary = prepare_dataset(src, out, opts, workers=args.workers, progress=not args.no_progress,
                                  exclude=exclude)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    for line in summary.lines():
        print(line)
    if summary.clips == 0:
        print(f"mmfa-studio prepare: error: no usable face in any of the {summary.sources} sources; nothing to "
              "train on", file=sys.stderr)
        return 2
    print(f"wrote {out / 'index.json'}")
    if args.landmarks:
        from ..train.landmarks import LANDMARKS_DIR, track_landmarks
        from ..train.prepared import load_index

        tracked = track_landmarks(load_index(out), progress=not args.no_progress)
        print(f"tracked the landmarks of {tracked} clips into {out / LANDMARKS_DIR}")
    return 0
